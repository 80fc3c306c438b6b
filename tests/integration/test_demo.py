"""``anonsip demo`` as a new user meets it: one command in a terminal, a chat with the
demo peer, quit, and nothing it started is left running."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import pytest
import trio

from anonsip.demo import PEER_NICK
from tests.integration._tmux import (
    TmuxScreen,
    in_contacts,
    in_conversation,
    open_first_conversation,
)

pytestmark = pytest.mark.integration

READY_TIMEOUT = 240.0  # a private Tor network (20-45 s here), two nodes, the greeting
ECHO_TIMEOUT = 60.0
CLEANUP_TIMEOUT = 60.0  # unregistering both nodes, then stopping eight tors


def _live_pids_mentioning(
    text: str, *, besides: frozenset[int] | set[int] = frozenset()
) -> list[int]:
    pids = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes()
            state = (proc / "stat").read_text().rpartition(")")[2].split()[0]
        except OSError:
            continue
        # Zombies do not count: nothing reaps orphans when PID 1 is not an init.
        if state != "Z" and text.encode() in cmdline and int(proc.name) not in besides:
            pids.append(int(proc.name))
    return pids


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return f"{pid} (gone)"


@pytest.mark.timeout(480)
async def test_demo_chats_then_leaves_nothing_running(tmp_path: Path) -> None:
    directory = tmp_path / "demo"
    screen = TmuxScreen("demo")
    begun = time.monotonic()
    try:
        await screen.start([sys.executable, "-m", "anonsip.cli", "demo", "--dir", str(directory)])
        tmux = await screen.own_pids()
        await screen.wait_for(
            lambda s: in_contacts(s, PEER_NICK),
            READY_TIMEOUT,
            "the demo peer among the contacts",
        )
        ready = time.monotonic() - begun
        # Every process the demo runs names its directory: tors, nodes, the UI.
        running = _live_pids_mentioning(str(directory))
        assert len(running) >= 8 + 2 + 2 + 1, running

        await open_first_conversation(screen, PEER_NICK, ECHO_TIMEOUT)
        await screen.wait_for(
            lambda s: in_conversation(s, "Write anything and I will echo it back"),
            ECHO_TIMEOUT,
            "the demo peer's greeting",
        )
        text = f"is anyone there {time.monotonic_ns() % 100000}"
        await screen.type_text(text)
        await screen.send_keys("Enter")
        await screen.wait_for(
            lambda s: f"me: {text}  ✓✓ delivered" in s and f"echo: {text}" in s,
            ECHO_TIMEOUT,
            "the message delivered and echoed",
        )
        chatting = time.monotonic() - begun

        await screen.send_keys("C-q")
        assert await screen.wait_exit(CLEANUP_TIMEOUT) == 0
        history = await screen.history()
        assert "demo: stopped the private Tor network" in history
        assert "UNENCRYPTED" in history
        left = _live_pids_mentioning(str(directory), besides=tmux)
        assert left == [], [_cmdline(pid) for pid in left]
        print(f"demo: contacts shown after {ready:.1f} s, echo after {chatting:.1f} s")
    finally:
        await screen.close()
        with trio.move_on_after(10):
            while _live_pids_mentioning(str(directory)):
                await trio.sleep(0.2)
