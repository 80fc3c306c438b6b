"""The real ``anonsip tui`` in a real terminal (tmux), on a real node, talking over
the private Tor network to a second real node that echoes every message."""

from __future__ import annotations

import sys
import time
from functools import partial
from pathlib import Path

import pytest
import trio

from anonsip.demo import PEER_NICK, befriend
from anonsip.nodeproc import init_home, run_node
from onion.testnet import TestnetInfo
from tests.integration._tmux import TmuxScreen, in_contacts, open_first_conversation

pytestmark = pytest.mark.integration

SCREEN_TIMEOUT = 60.0  # from Enter to the echo: two onion deliveries and a DHT lookup


@pytest.mark.timeout(300)
async def test_tui_chats_with_an_echoing_peer_over_tor(
    testnet: TestnetInfo, tmp_path: Path
) -> None:
    me_home, peer_home = tmp_path / "me", tmp_path / "peer"
    async with trio.open_nursery() as nursery:
        nursery.start_soon(partial(trio.to_thread.run_sync, init_home, me_home, "tester"))
        nursery.start_soon(partial(trio.to_thread.run_sync, init_home, peer_home, "echo"))
    network = Path(testnet.directory)
    screen = TmuxScreen("e2e")
    async with (
        run_node(
            "peer",
            peer_home,
            testnet=network,
            output=tmp_path / "peer.log",
            options=["--echo-bot", "--pow-bits", "16"],
        ) as peer,
        run_node("me", me_home, testnet=network, output=tmp_path / "me.log") as me,
    ):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(peer.wait_ready)
            nursery.start_soon(me.wait_ready)
        assert await befriend(me, peer), "the peer's greeting was never delivered"
        try:
            await screen.start([sys.executable, "-m", "anonsip.cli", "--home", str(me_home), "tui"])
            await screen.wait_for(
                lambda s: in_contacts(s, PEER_NICK), SCREEN_TIMEOUT, "the peer in contacts"
            )
            await open_first_conversation(screen, PEER_NICK, SCREEN_TIMEOUT)
            await screen.wait_for(
                lambda s: "Write anything and I will echo it back" in s,
                SCREEN_TIMEOUT,
                "the peer's greeting in the open conversation",
            )
            text = f"hello over onions {time.monotonic_ns() % 100000}"
            await screen.type_text(text)
            await screen.send_keys("Enter")
            shown = await screen.wait_for(
                lambda s: f"me: {text}  ✓✓ delivered" in s and f"echo: {text}" in s,
                SCREEN_TIMEOUT,
                "the message delivered and its echo",
            )
            lines = shown.splitlines()
            mine = next(i for i, line in enumerate(lines) if f"me: {text}" in line)
            echo = next(i for i, line in enumerate(lines) if f"echo: {text}" in line)
            assert mine < echo, shown

            await screen.send_keys("C-q")
            assert await screen.wait_exit(10.0) == 0
            # The UI attached to a running node, so quitting it leaves the node running.
            assert me.process.poll() is None
            history = await me.call("history", peer=PEER_NICK, limit=10)
            assert [m["text"] for m in history[-2:]] == [text, f"echo: {text}"]
        finally:
            await screen.close()


def _anonsip(home: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "anonsip.cli", "--home", str(home), *args]


def _live_pids_mentioning(text: str) -> list[int]:
    pids = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes()
            state = (proc / "stat").read_text().rpartition(")")[2].split()[0]
        except OSError:
            continue
        if state != "Z" and text.encode() in cmdline:
            pids.append(int(proc.name))
    return pids


@pytest.mark.timeout(300)
async def test_tui_starts_a_node_when_none_runs(testnet: TestnetInfo, tmp_path: Path) -> None:
    home, other = tmp_path / "solo", tmp_path / "other"
    async with trio.open_nursery() as nursery:
        nursery.start_soon(partial(trio.to_thread.run_sync, init_home, home, "solo"))
        nursery.start_soon(partial(trio.to_thread.run_sync, init_home, other, "other"))
    network = Path(testnet.directory)
    screen, again = TmuxScreen("solo"), TmuxScreen("solo-again")
    # A DHT of one cannot store a registration: another node keeps it company.
    async with run_node("other", other, testnet=network, output=tmp_path / "other.log") as peer:
        await peer.wait_ready(registered=False)  # alone, it may have no one to store at
        try:
            await _tui_starts_and_leaves_a_node(home, network, screen, again)
        finally:
            await screen.close()
            await again.close()
            await trio.run_process(_anonsip(home, "shutdown"), capture_stdout=True, check=False)
            with trio.move_on_after(30.0):
                while _live_pids_mentioning(str(home)):
                    await trio.sleep(0.2)
    assert _live_pids_mentioning(str(home)) == [], "the node or its tor is still running"


async def _tui_starts_and_leaves_a_node(
    home: Path, network: Path, screen: TmuxScreen, again: TmuxScreen
) -> None:
    await screen.start(_anonsip(home, "tui", "--testnet", str(network)))
    await screen.wait_for(
        lambda s: "│ registered" in s.splitlines()[0], 120.0, "the node registered"
    )
    await screen.send_keys("C-q")
    assert await screen.wait_exit(10.0) == 0
    # The node it started outlives the UI...
    status = await trio.run_process(
        _anonsip(home, "status", "--json"), capture_stdout=True, check=True
    )
    assert b'"phase": "running"' in status.stdout
    nodes = _live_pids_mentioning(f"{home}\0run")
    assert len(nodes) == 1, nodes
    # ...and the next `tui` attaches to it instead of starting another.
    await again.start(_anonsip(home, "tui", "--testnet", str(network)))
    await again.wait_for(
        lambda s: "│ registered" in s.splitlines()[0], 30.0, "the running node's state"
    )
    await again.send_keys("C-q")
    assert await again.wait_exit(10.0) == 0
    assert _live_pids_mentioning(f"{home}\0run") == nodes
