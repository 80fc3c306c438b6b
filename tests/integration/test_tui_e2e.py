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
from tests.integration._tmux import (
    TmuxScreen,
    in_contacts,
    in_conversation,
    open_first_conversation,
)

pytestmark = pytest.mark.integration

SCREEN_TIMEOUT = 60.0  # from Enter to the echo: two onion deliveries and a DHT lookup
RETRY_TIMEOUT = 240.0  # a message queued for a node that was down: its next attempt


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
                lambda s: in_conversation(s, "Write anything and I will echo it back"),
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


class ScreenLog:
    """The screens of a run, as text, in a file under the test's directory (and on stdout)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.path.write_text("")

    def add(self, who: str, step: str, screen: str) -> None:
        entry = f"=== {who}: {step} ===\n{screen.rstrip()}\n\n"
        with self.path.open("a") as f:
            f.write(entry)
        print(entry, flush=True)


def _words(screen: str) -> str:
    """A screen's text with rows joined, for a sentence the UI wrapped."""
    return " ".join(line.strip() for line in screen.splitlines())


def _conversation_title(screen: str) -> str:
    lines = screen.splitlines()
    return lines[1].partition("│")[2].strip() if len(lines) > 1 else ""


async def _open(screen: TmuxScreen, nick: str) -> str:
    await screen.type_text(f"/open {nick}")
    await screen.send_keys("Enter")
    return await screen.wait_for(
        lambda s: _conversation_title(s).startswith(nick), SCREEN_TIMEOUT, f"{nick}'s conversation"
    )


async def _say(screen: TmuxScreen, text: str) -> None:
    await screen.type_text(text)
    await screen.send_keys("Enter")


async def _never_sent(screen: TmuxScreen, text: str, seconds: float) -> str:
    """The screen after ``seconds`` in which ``text`` went from queued to the
    recipient's mailbox (its node is down) and was never shown as sent."""
    queued, boxed = f"me: {text}  … queued", f"me: {text}  ✓ in mailbox"
    await screen.wait_for(lambda s: queued in s or boxed in s, SCREEN_TIMEOUT, f"{text!r} queued")
    await screen.wait_for(lambda s: boxed in s, SCREEN_TIMEOUT, f"{text!r} in the mailbox")
    with trio.move_on_after(seconds):
        while True:
            shown = await screen.screen()
            assert boxed in shown, shown
            await trio.sleep(1.0)
    return screen.last


@pytest.mark.timeout(900)
async def test_two_tuis_at_80x24_while_one_node_stops(testnet: TestnetInfo, tmp_path: Path) -> None:
    """Alice and Bob chat in two real ``anonsip tui`` at 80x24; Bob's node stops
    mid-conversation: his UI says how to start it again, Alice's message to him
    goes to his mailbox (never "sent"), and it is delivered once his node is back."""
    alice_home, bob_home = tmp_path / "alice", tmp_path / "bob"
    network = Path(testnet.directory)
    log = ScreenLog(tmp_path / "screens.txt")
    alice_ui, bob_ui = TmuxScreen("alice"), TmuxScreen("bob")
    size = {"width": 80, "height": 24}
    async with (
        run_node("bob", bob_home, testnet=network, output=tmp_path / "bob.log", pow_bits=16) as bob,
        run_node(
            "alice", alice_home, testnet=network, output=tmp_path / "alice.log", pow_bits=16
        ) as alice,
    ):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(bob.wait_ready)
            nursery.start_soon(alice.wait_ready)
        assert await befriend(
            alice, bob, me_nick="alice", peer_nick="bob", greeting="hi alice, it's bob"
        ), "bob's greeting was never delivered"
        try:
            await alice_ui.start(_anonsip(alice_home, "tui"), **size)
            await bob_ui.start(_anonsip(bob_home, "tui"), **size)
            await alice_ui.wait_for(lambda s: in_contacts(s, "bob"), SCREEN_TIMEOUT, "bob")
            await bob_ui.wait_for(lambda s: in_contacts(s, "alice"), SCREEN_TIMEOUT, "alice")

            shown = await _open(alice_ui, "bob")
            shown = await alice_ui.wait_for(
                lambda s: "bob: hi alice, it's bob" in s, SCREEN_TIMEOUT, "bob's greeting"
            )
            log.add("alice", "opened bob's conversation", shown)
            shown = await _open(bob_ui, "alice")
            log.add("bob", "opened alice's conversation", shown)

            await _say(alice_ui, "hello bob, are you there?")
            shown = await alice_ui.wait_for(
                lambda s: "me: hello bob, are you there?  ✓✓ delivered" in s,
                SCREEN_TIMEOUT,
                "alice's message delivered",
            )
            log.add("alice", "wrote to bob: delivered", shown)
            shown = await bob_ui.wait_for(
                lambda s: "alice: hello bob, are you there?" in s, SCREEN_TIMEOUT, "it at bob's"
            )
            log.add("bob", "alice's message arrived", shown)

            await _say(bob_ui, "yes, here")
            shown = await alice_ui.wait_for(
                lambda s: "bob: yes, here" in s, SCREEN_TIMEOUT, "bob's answer"
            )
            log.add("alice", "bob answered", shown)

            # Bob's node stops mid-conversation.
            assert await bob.shutdown() == 0
            shown = await bob_ui.wait_for(
                lambda s: "Node: not connected" in s and "Start it again with:" in s,
                SCREEN_TIMEOUT,
                "the node gone, and how to start it",
            )
            log.add("bob", "his node stopped", shown)
            # The node's own restart command (run_node started it with `run`), wrapped.
            restart = f"anonsip --home {bob_home} run --testnet {network}"
            assert restart.replace(" ", "") in _words(shown).replace(" ", ""), shown
            assert "● alice" not in shown  # nothing stale says "available"

            await _say(alice_ui, "still there?")
            shown = await _never_sent(alice_ui, "still there?", 20.0)
            log.add("alice", "wrote while bob's node is down: in his mailbox, not sent", shown)

            # Bob starts his node again, as his screen said, and a new UI on it.
            await bob_ui.send_keys("C-q")
            assert await bob_ui.wait_exit(10.0) == 0
            await bob_ui.close()
            bob.start()
            await bob.wait_ready()
            bob_ui = TmuxScreen("bob-again")
            await bob_ui.start(_anonsip(bob_home, "tui"), **size)
            await bob_ui.wait_for(lambda s: in_contacts(s, "alice"), SCREEN_TIMEOUT, "alice")
            shown = await alice_ui.wait_for(
                lambda s: "me: still there?  ✓✓ delivered" in s,
                RETRY_TIMEOUT,
                "the queued message delivered once bob's node is back",
            )
            log.add("alice", "bob's node is back: delivered", shown)
            await _open(bob_ui, "alice")
            shown = await bob_ui.wait_for(
                lambda s: "alice: still there?" in s, SCREEN_TIMEOUT, "it at bob's"
            )
            log.add("bob", "his node is back, with the message", shown)

            for ui in (alice_ui, bob_ui):
                await ui.send_keys("C-q")
                assert await ui.wait_exit(10.0) == 0
        finally:
            await alice_ui.close()
            await bob_ui.close()
