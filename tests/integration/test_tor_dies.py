"""Tor dies, the node survives: kill -9 of a node's tor in the middle of a chat and of a call.

The node starts its tor again, publishes its services and registration
again and carries on; messages sent meanwhile are delivered once, none is
lost; a call cut by the death ends on both sides and the next call works.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path

import pytest
import trio

from anonsip.control import Event, TrioControlClient
from anonsip.nodeproc import NodeFleet, NodeProcess, children
from onion.testnet import TestnetInfo

pytestmark = pytest.mark.integration

BACK_TIMEOUT = 240.0  # tor again, bootstrap, DHT, publication, registration
DELIVERY_TIMEOUT = 180.0


@pytest.fixture(scope="module")
def fleet(testnet: TestnetInfo, tmp_path_factory: pytest.TempPathFactory) -> Iterator[NodeFleet]:
    with NodeFleet(tmp_path_factory.mktemp("tordies"), Path(testnet.directory)) as nodes:
        for name in ("seed", "alice", "bob"):
            nodes.add(name)
        trio.run(nodes.start_all, "seed")
        trio.run(partial(nodes.start_all, "alice", "bob", registered=True))

        async def befriend() -> None:
            alice, bob = nodes["alice"], nodes["bob"]
            await alice.call("contacts.add", address=bob.address, nick="bob")
            await bob.call("contacts.add", address=alice.address, nick="alice")

        trio.run(befriend)
        yield nodes


async def wait_event(
    client: TrioControlClient, match: Callable[[Event], bool], timeout: float
) -> dict[str, object]:
    with trio.fail_after(timeout):
        async for event in client.events():
            if match(event):
                return dict(event.data)
    raise AssertionError("the node closed the control connection")


def _call_in(state: str) -> Callable[[Event], bool]:
    return lambda e: e.event == "call" and e.data.get("state") == state


def _tor_children(node: NodeProcess) -> dict[int, str]:
    """The node's live children whose program is tor (a zombie or a path naming "tor" is not)."""
    found = {}
    for pid in children(node.pid):
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
            argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue  # it ended meanwhile
        if state != "Z" and Path(argv[0].decode(errors="replace")).name == "tor":
            found[pid] = b" ".join(argv).decode(errors="replace")
    return found


def kill_tor(node: NodeProcess) -> int:
    tors = _tor_children(node)
    assert len(tors) == 1, f"the node should run exactly one tor: {tors}"
    (tor,) = tors
    os.kill(tor, signal.SIGKILL)
    return tor


async def wait_running_again(node: NodeProcess, old_tor: int) -> None:
    """The node is running (registered) again, on a tor that is not the one we killed."""

    def back(status: dict[str, object]) -> bool:
        registration = status.get("registration")
        registered = isinstance(registration, dict) and registration.get("state") == "registered"
        tors = _tor_children(node)
        return (
            status.get("phase") == "running" and registered and old_tor not in tors and bool(tors)
        )

    async with node.client() as client:
        await client.subscribe()
        status = await client.call("status")
        with trio.fail_after(BACK_TIMEOUT):
            while not back(status):
                status = await wait_event(client, lambda e: e.event == "status", BACK_TIMEOUT)
    assert node.running


async def test_messages_sent_while_tor_is_down_arrive_once(fleet: NodeFleet) -> None:
    alice, bob = fleet["alice"], fleet["bob"]
    texts = [f"while alice's tor was dead {i}" for i in range(5)]
    old_tor = kill_tor(alice)
    async with bob.client() as client:
        await client.subscribe()
        sent = [await client.call("send", peer="alice", text=t) for t in texts]
        await wait_running_again(alice, old_tor)
        pending = {m["message_id"] for m in sent}
        with trio.fail_after(DELIVERY_TIMEOUT):
            async for event in client.events():
                if event.event == "message" and event.data.get("state") == "delivered":
                    pending.discard(str(event.data.get("message_id")))
                if not pending:
                    break
    history = await alice.call("history", peer="bob", limit=1000)
    arrived = [m["text"] for m in history if m["direction"] == "in"]
    assert [t for t in arrived if t in texts] == texts  # each once, in order


async def test_a_call_cut_by_tor_dying_ends_on_both_sides_and_the_next_works(
    fleet: NodeFleet, tmp_path: Path
) -> None:
    alice, bob = fleet["alice"], fleet["bob"]
    async with alice.client() as a, bob.client() as b:
        await a.subscribe()
        await b.subscribe()
        call = await a.call("call", peer="bob", record=str(tmp_path / "a.wav"))
        ringing = await wait_event(
            b, lambda e: e.event == "call" and e.data.get("state") == "ringing", 90
        )
        await b.call("answer", call_id=ringing["call_id"], record=str(tmp_path / "b.wav"))
        await wait_event(a, _call_in("active"), 90)
        old_tor = kill_tor(alice)
        ended = await wait_event(
            b,
            lambda e: (
                e.event == "call"
                and e.data.get("state") == "ended"
                and e.data.get("call_id") == call["call_id"]
            ),
            120,
        )
        assert ended["reason"] in ("connection-lost", "media-failed")
    await wait_running_again(alice, old_tor)
    async with alice.client() as a, bob.client() as b:
        await b.subscribe()
        await a.call("call", peer="bob", record=str(tmp_path / "a2.wav"), seconds=2)
        ringing = await wait_event(
            b, lambda e: e.event == "call" and e.data.get("state") == "ringing", 120
        )
        await b.call("answer", call_id=ringing["call_id"], record=str(tmp_path / "b2.wav"))
        ended = await wait_event(
            b,
            lambda e: e.event == "call" and e.data.get("state") == "ended",
            90,
        )
        assert ended["reason"] == "remote-hung-up"  # alice hung up after 2 s: a real call
