"""Instant messages between real node processes on the private Tor network.

Three nodes (alice, bob, carol) run as subprocesses for the whole module:
alice finds bob by his address alone through the DHT, the contact request
is accepted and messages flow both ways with delivery receipts; a message
to bob while he is offline waits in alice's outbox (and in his mailbox)
and arrives when he is back; alice is SIGKILLed in the middle of 200
messages and after a restart bob has every acknowledged one exactly once,
in order; a stranger (carol) shows up as a request and, once blocked, is
refused.
"""

from __future__ import annotations

import contextlib
import os
import signal
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path

import pytest
import trio

from anonsip.control import ControlConnectionClosed, Event, TrioControlClient
from onion.testnet import TestnetInfo
from tests.integration.events import next_event
from tests.integration.nodes import NodeFleet, NodeProcess

pytestmark = pytest.mark.integration

DELIVERY_TIMEOUT = 60.0
REQUEST_TIMEOUT = 60.0  # a node's own bound on one message attempt (Messaging)
BURST = 200
KILL_AFTER = 120
IN_FLIGHT = 20  # messages sent while bob's node is frozen, before alice is killed


@pytest.fixture(scope="module")
def fleet(testnet: TestnetInfo, tmp_path_factory: pytest.TempPathFactory) -> Iterator[NodeFleet]:
    with NodeFleet(tmp_path_factory.mktemp("im"), Path(testnet.directory)) as nodes:
        for name in ("carol", "alice", "bob"):
            nodes.add(name)
        # carol first: alone, her registration fails, but alice and bob join the
        # DHT through her and so register at once.
        trio.run(nodes.start_all, "carol")
        trio.run(partial(nodes.start_all, "alice", "bob", registered=True))
        yield nodes


async def wait_event(
    client: TrioControlClient, match: Callable[[Event], bool], timeout: float = DELIVERY_TIMEOUT
) -> Event:
    return await next_event(client, match, timeout)


def message_state(message_id: str, state: str) -> Callable[[Event], bool]:
    return lambda e: (
        e.event == "message"
        and e.data.get("message_id") == message_id
        and e.data.get("state") == state
    )


async def send_and_wait(node: NodeProcess, peer: str, text: str, state: str = "delivered") -> str:
    async with node.client() as client:
        await client.subscribe()
        sent = await client.call("send", peer=peer, text=text)
        await wait_event(client, message_state(sent["message_id"], state))
    return str(sent["message_id"])


async def texts(node: NodeProcess, peer: str, direction: str) -> list[str]:
    history = await node.call("history", peer=peer, limit=1000)
    return [m["text"] for m in history if m["direction"] == direction]


async def contact_state(node: NodeProcess, address: str) -> str | None:
    for contact in await node.call("contacts.list"):
        if contact["address"] == address:
            return str(contact["state"])
    return None


async def befriend(alice: NodeProcess, bob: NodeProcess) -> None:
    """Alice finds bob by address alone, asks, bob accepts; both directions delivered."""
    found = await alice.call("lookup", address=bob.address)
    assert found["found"], found["reason"]
    bob_status = await bob.call("status")
    assert [c["onion"] for c in found["contacts"]] == [bob_status["onion_address"] + ".onion"]

    await alice.call("contacts.add", address=bob.address, nick="bob")
    assert await contact_state(alice, bob.address) == "requested"
    async with bob.client() as bob_events:
        await bob_events.subscribe()
        # Bob's node holds it as a request for him to decide on (202).
        await send_and_wait(alice, "bob", "hello bob, it's alice", state="request")
        request = await wait_event(bob_events, lambda e: e.event == "request")
    assert request.data["address"] == alice.address
    assert request.data["text"] == "hello bob, it's alice"
    assert [r["address"] for r in await bob.call("requests")] == [alice.address]
    assert await texts(bob, alice.address, "in") == []  # nothing shown before he accepts

    await bob.call("accept", address=alice.address, nick="alice")
    assert await bob.call("requests") == []
    assert await texts(bob, "alice", "in") == ["hello bob, it's alice"]
    assert await contact_state(bob, alice.address) == "accepted"

    # bob answers; his message turns alice's request into an accepted contact.
    await send_and_wait(bob, "alice", "hi alice")
    assert await texts(alice, "bob", "in") == ["hi alice"]
    assert await contact_state(alice, bob.address) == "accepted"
    await send_and_wait(alice, "bob", "glad you found me")
    assert await texts(bob, "alice", "in") == ["hello bob, it's alice", "glad you found me"]
    for message in await alice.call("history", peer="bob"):
        if message["direction"] == "out":
            assert message["state"] == "delivered"


@pytest.fixture(scope="module")
def friends(fleet: NodeFleet) -> tuple[NodeProcess, NodeProcess]:
    """Alice and bob become contacts once, whichever test asks first."""
    alice, bob = fleet["alice"], fleet["bob"]
    trio.run(befriend, alice, bob)
    return alice, bob


async def test_find_by_address_request_accept_and_receipts(
    friends: tuple[NodeProcess, NodeProcess],
) -> None:
    alice, bob = friends
    # A conversation in both directions on the warm session.
    for i in range(3):
        await send_and_wait(alice, "bob", f"ping {i}")
        await send_and_wait(bob, "alice", f"pong {i}")
    assert (await texts(bob, "alice", "in"))[-3:] == ["ping 0", "ping 1", "ping 2"]
    assert (await texts(alice, "bob", "in"))[-3:] == ["pong 0", "pong 1", "pong 2"]


async def test_offline_peer_gets_the_message_when_back(
    friends: tuple[NodeProcess, NodeProcess],
) -> None:
    alice, bob = friends
    assert await bob.shutdown() == 0
    async with alice.client() as client:
        await client.subscribe()
        sent = await client.call("send", peer="bob", text="while you were away")
        message_id = sent["message_id"]
        # Bob is gone (he unregistered): the message is sealed into his mailbox,
        # never marked sent, and stays in alice's outbox for direct delivery. (If
        # alice's session to him outlived him half-open, the request times out first.)
        deposited = await wait_event(
            client,
            lambda e: (
                e.event == "message"
                and e.data.get("message_id") == message_id
                and e.data.get("state") in ("sent", "in_mailbox")
            ),
            timeout=REQUEST_TIMEOUT + DELIVERY_TIMEOUT,
        )
        assert deposited.data["state"] == "in_mailbox", "a message to a stopped node was sent"
        status = await client.call("status")
        assert status["outbox"] == 1
        history = await client.call("history", peer="bob")
        assert [m["state"] for m in history if m["message_id"] == message_id] == ["in_mailbox"]

        bob.start()
        await bob.wait_ready(registered=True, joined=True)
        await wait_event(client, message_state(message_id, "delivered"), timeout=90)
    assert (await texts(bob, "alice", "in"))[-1] == "while you were away"
    assert (await alice.call("status"))["outbox"] == 0


async def test_crash_in_the_middle_of_a_burst_loses_and_repeats_nothing(
    friends: tuple[NodeProcess, NodeProcess],
) -> None:
    alice, bob = friends
    before = await texts(bob, "alice", "in")
    acknowledged: list[str] = []
    delivered = trio.Event()
    try:
        async with alice.client() as client:
            await client.subscribe()

            async def watch() -> None:
                # Read every event to the end: a client that stops reading has its
                # bounded event buffer overflow and the connection closed (by design).
                with contextlib.suppress(ControlConnectionClosed):  # the kill: the body sees it
                    async for event in client.events():
                        if event.data.get("state") == "delivered":
                            delivered.set()

            async with trio.open_nursery() as nursery:
                nursery.start_soon(watch)
                for i in range(BURST):
                    text = f"burst {i:03d}"
                    await client.call("send", peer="bob", text=text)
                    acknowledged.append(text)
                    if i == KILL_AFTER:
                        # Delivery is under way. Freeze bob's node (its tor still runs and
                        # buffers): what alice sends from now on is in flight, unanswered,
                        # however fast the pipelined session is.
                        with trio.fail_after(DELIVERY_TIMEOUT):
                            await delivered.wait()
                        os.kill(bob.pid, signal.SIGSTOP)
                    if i == KILL_AFTER + IN_FLIGHT:
                        await trio.to_thread.run_sync(alice.kill)  # mid-stream
        raise AssertionError("alice was killed but her control connection went on")
    except ControlConnectionClosed:
        # The node died under us: what this test is about. Alice comes back while
        # bob is still frozen, so nothing she restarts with can be delivered yet:
        # her outbox now is what her store kept. (Read once bob ran again, a fast
        # restart had already delivered it all and the count said nothing.)
        alice.start()
        status = await alice.wait_ready()
        assert status["outbox"] >= IN_FLIGHT, "messages sent while bob was frozen were lost"
    finally:
        os.kill(bob.pid, signal.SIGCONT)  # bob reads what reached him
    assert len(acknowledged) == KILL_AFTER + IN_FLIGHT + 1
    await alice.wait_ready(registered=True, joined=True)

    # Wait, woken by each delivery, until alice's outbox is empty.
    async with alice.client() as client:
        await client.subscribe()
        with trio.fail_after(120):
            while (await client.call("status"))["outbox"] > 0:
                with trio.move_on_after(2):
                    await wait_event(client, lambda e: e.data.get("state") == "delivered")
    arrived = [t for t in await texts(bob, "alice", "in") if t.startswith("burst ")]
    # Every acknowledged message exactly once and in order; a send the kill cut
    # short (no reply) may have been stored too, then after them.
    assert arrived[: len(acknowledged)] == acknowledged
    assert len(arrived) <= len(acknowledged) + 1
    assert (await texts(bob, "alice", "in"))[: len(before)] == before


async def test_stranger_is_a_request_then_blocked(fleet: NodeFleet) -> None:
    carol, bob = fleet["carol"], fleet["bob"]
    await bob.wait_ready()
    async with bob.client() as bob_events:
        await bob_events.subscribe()
        await send_and_wait(carol, bob.address, "hi, we met at the conference", "request")
        request = await wait_event(bob_events, lambda e: e.event == "request")
    assert request.data["address"] == carol.address
    assert carol.address in [r["address"] for r in await bob.call("requests")]
    assert await contact_state(bob, carol.address) is None

    await bob.call("decline", address=carol.address)
    assert carol.address not in [r["address"] for r in await bob.call("requests")]
    await bob.call("block", address=carol.address)
    assert await contact_state(bob, carol.address) == "blocked"

    # Refused (403): carol's node gives up on the message instead of retrying.
    await send_and_wait(carol, bob.address, "please answer", state="failed")
    await send_and_wait(carol, bob.address, "why not?", state="failed")
    assert await bob.call("requests") == []
    assert await texts(bob, carol.address, "in") == []
    assert (await carol.call("status"))["outbox"] == 0
