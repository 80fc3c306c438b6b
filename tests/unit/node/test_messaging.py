"""Messaging on nodes in memory: honest states, the contact-request path, refusals.

Real services, real sessions and SIP links (``tests.unit.node.mesh``), the
operations as a client calls them, trio's autojump clock. A message's state
says only what is true: queued until it is written to a session with the
peer's node, delivered on its receipt, ``request`` while a stranger's node
holds it as a contact request.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
import threading
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
import trio
import trio.testing

from anonsip.admission import GateLimits, time_bucket
from anonsip.control import ControlServer, MessageView, TrioControlClient
from anonsip.node._contacts import ContactsService
from anonsip.node._messaging import (
    EFFORT_HEADER,
    MAX_EFFORT,
    MAX_REMEMBERED_EFFORTS,
    PROOF_HEADER,
    MessagingService,
)
from anonsip.registration import MAX_EFFORT as MAX_RECORD_EFFORT
from anonsip.registration import Contact, Presence, Registration, onion_address
from anonsip.sip import message_request
from anonsip.store import ContactState, MessageState, StoreError
from tests.unit.node.mesh import MemoryNode, Mesh

POW = 4  # bits: cheap for tests, the same code path as the default


def _give_services(node: MemoryNode, pow_bits: int = POW) -> MessagingService:
    messaging = MessagingService(node.context, pow_difficulty=pow_bits)
    node.use([ContactsService(node.context), messaging])
    return messaging


@pytest.fixture
async def mesh(tmp_path: Path) -> AsyncIterator[Mesh]:
    async with trio.open_nursery() as nursery:
        m = Mesh(nursery, tmp_path, clock=trio.current_time)
        yield m
        nursery.cancel_scope.cancel()


async def _pair(mesh: Mesh, *, friends: bool, **bob: Any) -> tuple[MemoryNode, MemoryNode]:
    """Alice and Bob with the messaging services, started; ``bob``: how his node is
    made (``Mesh.add``'s options)."""
    a, b = mesh.add("alice", 1), mesh.add("bob", 2, **bob)
    _give_services(a)
    _give_services(b)
    if friends:
        a.befriend(b)
        b.befriend(a)
    await mesh.start(a)
    await mesh.start(b)
    return a, b


def _states(node: MemoryNode, message_id: str) -> list[str]:
    return [d["state"] for d in node.recorder.named("message") if d["message_id"] == message_id]


async def _state(node: MemoryNode, message_id: str, state: str, timeout: float = 120) -> None:
    await node.recorder.wait_for(
        "message", lambda d: d["message_id"] == message_id and d["state"] == state, timeout
    )


async def test_a_contact_gets_it_and_the_states_move_forward_only(
    mesh: Mesh, autojump_clock: trio.testing.MockClock
) -> None:
    a, b = await _pair(mesh, friends=True)
    sent = MessageView.decode(await a.op("send", peer="bob", text="hello bob"))
    assert sent.state.value == "queued"
    await _state(a, sent.message_id, "delivered")
    # Bob's node stored it at once: no 100 Trying, so no "sent" on the way.
    assert _states(a, sent.message_id) == ["queued", "delivered"]
    (got,) = await b.op("history", peer=a.address)
    assert (got["text"], got["direction"], got["state"]) == ("hello bob", "in", "received")
    assert got["message_id"] == sent.message_id


async def test_nothing_is_sent_while_the_peer_is_unreachable(
    mesh: Mesh, autojump_clock: trio.testing.MockClock
) -> None:
    """The old bug: "sent" before anything left the machine."""
    a, b = await _pair(mesh, friends=True)
    mesh.down.add(b.key)
    sent = MessageView.decode(await a.op("send", peer=b.address, text="are you there?"))
    await trio.sleep(300)  # several attempts fail
    assert _states(a, sent.message_id) == ["queued"]
    (mine,) = a.store.history(b.address)
    assert mine.state is MessageState.QUEUED
    assert a.store.outbox_size() == 1
    mesh.down.discard(b.key)
    await _state(a, sent.message_id, "delivered", timeout=4000)  # the back-off ends


async def test_a_stranger_holds_a_first_message_as_a_request_until_accepted(
    mesh: Mesh, autojump_clock: trio.testing.MockClock
) -> None:
    a, b = await _pair(mesh, friends=False)
    first = MessageView.decode(await a.op("send", peer=b.address, text="hi, it's alice"))
    await _state(a, first.message_id, "request")
    assert a.store.contact(b.address).state is ContactState.REQUESTED  # type: ignore[union-attr]
    (request,) = await b.op("requests")
    assert (request["address"], request["text"]) == (a.address, "hi, it's alice")
    # A second message waits at the sender (480) while the first is undecided.
    second = MessageView.decode(await a.op("send", peer=b.address, text="hello?"))
    await trio.sleep(30)
    assert _states(a, second.message_id)[-1] in ("queued", "sent")
    assert a.store.outbox_size() == 1
    # Bob accepts and names Alice; the request becomes the conversation's first message.
    contact = await b.op("accept", address=a.address, nick="Alice")
    assert (contact["nick"], contact["state"]) == ("Alice", "accepted")
    await _state(a, second.message_id, "delivered", timeout=4000)
    await _state(a, first.message_id, "delivered")  # their answer says they accepted
    history = await b.op("history", peer="alice")  # a nick in any case names the contact
    assert [m["text"] for m in history] == ["hi, it's alice", "hello?"]
    assert history[0]["message_id"] == first.message_id  # shown once, under its own id


async def test_a_blocked_sender_gets_the_same_refusal_as_a_bad_proof(
    mesh: Mesh, autojump_clock: trio.testing.MockClock
) -> None:
    a, b = await _pair(mesh, friends=False)
    link = await a.link_to(b.key)
    unproven = message_request(link.endpoint, "no proof")
    bad = message_request(link.endpoint, "bad proof").with_header(PROOF_HEADER, "1;00")
    answers = [await link.request(r) for r in (unproven, bad)]
    await b.op("block", address=a.address)
    answers.append(await link.request(message_request(link.endpoint, "blocked now")))
    assert {(r.status_code, r.reason) for r in answers} == {(403, "Forbidden")}
    assert await b.op("requests") == []


async def test_a_stranger_asked_for_more_work_pays_it_once_and_gets_through(
    mesh: Mesh, autojump_clock: trio.testing.MockClock
) -> None:
    a, b = mesh.add("alice", 1), mesh.add("bob", 2)
    alice = _give_services(a)  # guesses the resting effort of its own: 4 bits
    bob = _give_services(b, pow_bits=16)  # asks 16 (as if flooded)
    await mesh.start(a)
    await mesh.start(b)
    first = MessageView.decode(await a.op("send", peer=b.address, text="hi, it's alice"))
    await _state(a, first.message_id, "request", timeout=60)  # at once, not after a back-off
    assert alice._effort_for(b.address) == 16
    stats = bob.gate_statistics()
    assert (stats.low_effort, stats.admitted, stats.effort) == (1, 1, 16)


def _registration(effort: int) -> Registration:
    """A registration as the peer's registrar seals it, advertising ``effort``."""
    onion = Contact(onion=onion_address(bytes(range(32))), port=5061)
    return Registration(
        contacts=(onion,), presence=Presence.AVAILABLE, expires=2**40, sequence=1, effort=effort
    )


@pytest.mark.parametrize("advertised", [True, False])
async def test_a_stranger_pays_the_effort_its_registration_advertises_at_the_first_try(
    mesh: Mesh, autojump_clock: trio.testing.MockClock, advertised: bool
) -> None:
    a, b = mesh.add("alice", 1), mesh.add("bob", 2)
    alice = _give_services(a)  # rests at 4 bits
    bob = _give_services(b, pow_bits=16)  # asks 16 (as if flooded), and advertises it
    if advertised:
        # Found by the lookup of the dial, while alice solves her resting proof.
        mesh.registrations[b.key] = _registration(bob.effort())
    await mesh.start(a)
    await mesh.start(b)
    first = MessageView.decode(await a.op("send", peer=b.address, text="hi, it's alice"))
    await _state(a, first.message_id, "request", timeout=60)
    stats = bob.gate_statistics()
    if advertised:
        # Its first request proved 16 bits: no 486, nothing asked of alice.
        assert (stats.low_effort, stats.admitted) == (0, 1)
        assert alice._efforts == {}
        assert alice._effort_for(b.address) == 16
    else:  # the control: a resting proof, a 486, and a second try
        assert (stats.low_effort, stats.admitted) == (1, 1)


async def test_an_advertised_effort_is_capped_and_a_calm_registration_forgets_it(
    mesh: Mesh, autojump_clock: trio.testing.MockClock
) -> None:
    a, b = mesh.add("alice", 1), mesh.add("bob", 2)
    alice = _give_services(a)
    for advertised, proved in ((20, 20), (MAX_RECORD_EFFORT, MAX_EFFORT), (2, POW), (0, POW)):
        alice.registration_found(b.key, _registration(advertised))
        assert alice._effort_for(b.address) == proved, advertised
    assert alice._advertised == {}  # at or below the resting effort: nothing kept
    # What a 486 asked and what the registration says: the more of the two.
    alice._efforts[b.address] = 18
    alice.registration_found(b.key, _registration(22))
    assert alice._effort_for(b.address) == 22
    alice.registration_found(b.key, _registration(0))
    assert alice._effort_for(b.address) == 18
    # The table is bounded: the least recently told go first.
    peers = [mesh.add(f"peer{i}", 100 + i) for i in range(MAX_REMEMBERED_EFFORTS + 8)]
    for peer in peers:
        alice.registration_found(peer.key, _registration(20))
    assert len(alice._advertised) == MAX_REMEMBERED_EFFORTS
    assert alice._effort_for(peers[0].address) == POW
    assert alice._effort_for(peers[-1].address) == 20


async def test_a_raised_effort_is_told_to_the_node_when_the_next_stranger_arrives(
    mesh: Mesh, autojump_clock: trio.testing.MockClock
) -> None:
    a, b = await _pair(mesh, friends=False)
    bob = b.service(MessagingService)
    # A flood with enough work: twice what the gate lets through in one window.
    for i in range(40):
        bob._gate.admit(f"flooder{i}")
    await trio.sleep(GateLimits().effort_window)
    assert b.effort_changes == 0
    first = MessageView.decode(await a.op("send", peer=b.address, text="hi, it's alice"))
    await _state(a, first.message_id, "request", timeout=60)
    assert bob.effort() == POW + 1  # log2(40 / 20) bits more
    assert b.effort_changes == 1  # its registrar publishes that (rate-limited there)


async def test_too_little_work_gets_the_same_answer_whether_blocked_or_not(
    mesh: Mesh, autojump_clock: trio.testing.MockClock
) -> None:
    a, b = await _pair(mesh, friends=False)
    link = await a.link_to(b.key)
    weak = f"{time_bucket(trio.current_time())};{bytes(16).hex()}"  # a nonce that proves 0 bits
    asks = []
    for blocked in (False, True):
        if blocked:
            await b.op("block", address=a.address)
        r = await link.request(message_request(link.endpoint, "hi").with_header(PROOF_HEADER, weak))
        asks.append((r.status_code, r.reason, r.get(EFFORT_HEADER)))
    assert asks == [(486, "Busy Here", str(POW))] * 2
    assert await b.op("requests") == []


async def test_a_refused_message_fails_and_the_outbox_goes_on(
    mesh: Mesh, autojump_clock: trio.testing.MockClock
) -> None:
    a, b = await _pair(mesh, friends=True)
    await b.op("block", address=a.address)
    first = MessageView.decode(await a.op("send", peer="bob", text="one"))
    await _state(a, first.message_id, "failed")
    assert a.store.outbox_size() == 0


async def test_removing_a_contact_cancels_what_waits_for_it(
    mesh: Mesh, autojump_clock: trio.testing.MockClock
) -> None:
    a, b = await _pair(mesh, friends=True)
    mesh.down.add(b.key)
    for text in ("one", "two"):
        await a.op("send", peer="bob", text=text)
    (bob,) = await a.op("contacts.list")
    assert bob["queued"] == 2
    await a.op("contacts.remove", peer="bob")
    assert a.store.outbox_size() == 0
    assert {m.state for m in a.store.history(b.address)} == {MessageState.FAILED}
    removed = a.recorder.named("contact")[-1]
    assert (removed["address"], removed["state"]) == (b.address, "removed")


async def test_operations_refuse_what_makes_no_sense(
    mesh: Mesh, autojump_clock: trio.testing.MockClock
) -> None:
    a, b = await _pair(mesh, friends=False)
    checks: list[tuple[str, dict[str, Any], str]] = [
        ("send", {"peer": a.address, "text": "me"}, "own address"),
        ("send", {"peer": "nobody", "text": "x"}, "neither a contact's name nor an address"),
        ("history", {"peer": b.address, "limit": 0}, "limit"),
        ("accept", {"address": b.address}, "no contact request"),
        ("decline", {"address": b.address}, "no contact request"),
        ("unblock", {"address": b.address}, "not blocked"),
        ("contacts.remove", {"peer": b.address}, "no such contact"),
    ]
    for op, args, words in checks:
        with pytest.raises(Exception, match=words):
            await a.op(op, **args)
    await a.op("block", address=b.address)
    with pytest.raises(Exception, match="blocked"):
        await a.op("send", peer=b.address, text="x")


async def test_a_contacts_messages_go_pipelined_and_arrive_in_order_once(
    mesh: Mesh, autojump_clock: trio.testing.MockClock
) -> None:
    a, b = await _pair(mesh, friends=True)
    texts = [f"burst {i:03d}" for i in range(100)]
    sent = [MessageView.decode(await a.op("send", peer="bob", text=t)) for t in texts]
    await _state(a, sent[-1].message_id, "delivered")
    for message in sent:
        assert _states(a, message.message_id)[-1] == "delivered"
    arrived = [m["text"] for m in await b.op("history", peer=a.address, limit=1000)]
    assert arrived == texts
    assert mesh.dials == 1  # one link carried them all


async def test_in_order_handling_survives_a_link_that_breaks_mid_window(
    mesh: Mesh, autojump_clock: trio.testing.MockClock
) -> None:
    a, b = await _pair(mesh, friends=True)
    texts = [f"m{i}" for i in range(40)]
    for text in texts[:20]:
        await a.op("send", peer="bob", text=text)
    await trio.sleep(0)
    await mesh.cut(a, b)  # the first window may be half through
    for text in texts[20:]:
        await a.op("send", peer="bob", text=text)
    with trio.fail_after(4000):
        while a.store.outbox_size():
            await trio.sleep(5)
    arrived = [m["text"] for m in await b.op("history", peer=a.address, limit=1000)]
    assert arrived == texts  # every one once, in order, whatever was cut


async def test_a_message_longer_than_the_store_keeps_is_refused_not_left_unanswered(
    mesh: Mesh, autojump_clock: trio.testing.MockClock
) -> None:
    """Text the parser takes (16 KiB) but the store does not (8 KiB) gets a 413."""
    a, b = await _pair(mesh, friends=True)
    link = await a.link_to(b.key)
    answer = await link.request(message_request(link.endpoint, "x" * 9000))
    assert answer.status_code == 413
    assert await b.op("history", peer=a.address) == []


async def test_a_first_message_too_long_for_a_request_fails_instead_of_waiting_forever(
    mesh: Mesh, autojump_clock: trio.testing.MockClock
) -> None:
    a, b = await _pair(mesh, friends=False)
    sent = MessageView.decode(await a.op("send", peer=b.address, text="x" * 2000))
    await _state(a, sent.message_id, "failed")
    assert await b.op("requests") == []


async def test_a_burst_delivered_in_batches_keeps_a_control_subscriber_connected(
    tmp_path: Path,
) -> None:
    """Real time, a real control server and client: a batch's outcomes are published
    together, and a subscriber whose queue (256 events) overflows is dropped. With
    batches of 256 and a "message" and a "contact" event per delivered message, the
    bench's (or the TUI's) connection was cut in a burst."""
    home = Path(tempfile.mkdtemp(prefix="ctl"))  # short: a socket path has 107 bytes
    try:
        async with trio.open_nursery() as nursery:
            mesh = Mesh(nursery, tmp_path, clock=trio.current_time)
            a, b = mesh.add("alice", 1), mesh.add("bob", 2)
            contacts = ContactsService(a.context)  # wired as the node's assembly wires them
            messaging = MessagingService(
                a.context, pow_difficulty=POW, on_queue_change=contacts.publish
            )
            a.use([contacts, messaging])
            _give_services(b)
            a.befriend(b)
            b.befriend(a)
            await mesh.start(a)
            await mesh.start(b)
            # Bob is found by a lookup (2 s): the burst piles up in the outbox meanwhile,
            # and goes out in batches as big as they come.
            mesh.registrations[b.key] = _registration(0)
            async with (
                ControlServer(home / "control.sock", {}) as server,
                TrioControlClient.connect(home / "control.sock") as client,
            ):
                await client.subscribe()
                a.recorder.also.append(server.publish)
                wanted: set[str] = set()
                delivered: set[str] = set()
                all_in = trio.Event()

                async def watch() -> None:
                    # Read every event as it comes, as the TUI and the bench do.
                    async for event in client.events():
                        if event.event == "message" and event.data["state"] == "delivered":
                            delivered.add(event.data["message_id"])
                            if len(wanted) == 300 and delivered >= wanted:
                                all_in.set()
                    all_in.set()  # the connection was dropped

                nursery.start_soon(watch)
                for i in range(300):
                    sent = await a.op("send", peer="bob", text=f"burst {i}")
                    wanted.add(MessageView.decode(sent).message_id)
                    await trio.sleep(0.001)  # a node takes ops one by one from a socket
                with trio.fail_after(60):
                    await all_in.wait()
                assert delivered == wanted  # not cut off on the way
                assert server.statistics().subscribers == 1
            nursery.cancel_scope.cancel()
    finally:
        shutil.rmtree(home, ignore_errors=True)


async def test_a_receiver_whose_disk_fills_turns_messages_away_at_once_and_loses_none(
    mesh: Mesh, autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    """Bob's store fills in the middle of a burst: he answers 503 at once instead of
    nothing (which cost the sender its request timeout and ended the session); Alice
    keeps the rest, in order."""
    caplog.set_level(logging.INFO)
    a, b = await _pair(mesh, friends=True, max_bytes=128 * 1024)
    ids = []
    for i in range(100):
        sent = MessageView.decode(await a.op("send", peer="bob", text=f"{i:03d} " + "x" * 1500))
        ids.append(sent.message_id)
    await trio.sleep(60)  # model time: more than a request's timeout
    kept = [m.message_id for m in b.store.history(a.address, 1000)]
    assert 0 < len(kept) < len(ids)
    assert kept == ids[: len(kept)]  # a prefix, in order
    mine = {m.message_id: m.state for m in a.store.history(b.address, 1000)}
    assert {mine[i] for i in kept} == {MessageState.DELIVERED}
    rest = ids[len(kept) :]
    assert a.store.outbox_size() == len(rest)
    assert {mine[i] for i in rest} == {MessageState.QUEUED}  # answered at once: no 100
    assert "the message store is full" in caplog.text
    assert "did not answer" not in caplog.text  # answered, so the session stayed up
    assert caplog.text.count("the message store is full") == 1  # once a minute at most


@asynccontextmanager
async def _friends_in_real_time(
    tmp_path: Path,
) -> AsyncIterator[tuple[Mesh, MemoryNode, MemoryNode]]:
    """Alice and Bob, contacts, on the real clock, Bob's store calls in worker threads
    as a node's are (so a slow store does not stop his event loop)."""
    async with trio.open_nursery() as nursery:
        mesh = Mesh(nursery, tmp_path, clock=trio.current_time)
        a, b = await _pair(mesh, friends=True, offload=True)
        yield mesh, a, b
        nursery.cancel_scope.cancel()


def _slow_disk(node: MemoryNode, monkeypatch: pytest.MonkeyPatch) -> threading.Event:
    """Storing a received message takes 0.5 s from now on (a busy disk), in the worker
    thread; the event is set when one starts."""
    record = node.store.record_incoming_many
    storing = threading.Event()

    def slow(*args: Any) -> list[bool | StoreError]:
        storing.set()
        time.sleep(0.5)
        return record(*args)

    monkeypatch.setattr(node.store, "record_incoming_many", slow)
    return storing


async def test_a_receiver_slow_to_store_says_100_trying_so_the_sender_shows_sent(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Bob's disk is slow: after 200 ms without an answer his node says it has the
    message (100), which Alice shows as "sent", then "delivered" on the 200."""
    async with _friends_in_real_time(tmp_path) as (_, a, b):
        _slow_disk(b, monkeypatch)
        sent = MessageView.decode(await a.op("send", peer="bob", text="slowly"))
        await _state(a, sent.message_id, "delivered", timeout=30)
        assert _states(a, sent.message_id) == ["queued", "sent", "delivered"]
        monkeypatch.undo()
        fast = MessageView.decode(await a.op("send", peer="bob", text="quickly"))
        await _state(a, fast.message_id, "delivered", timeout=30)
        assert _states(a, fast.message_id) == ["queued", "delivered"]


async def test_a_burst_waiting_behind_a_slow_store_is_stored_in_one_commit_in_order(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What queues at the receiver while it stores one message is stored with the
    next, in one commit and in order, and each is answered (one commit a message
    bounded a session at ~180 messages/s). A contact's link carries more than a
    stranger's 48 unanswered messages at once (over a WAN round trip of 0.55 s,
    48 held a session under 90 messages/s)."""
    async with _friends_in_real_time(tmp_path) as (_, a, b):
        _slow_disk(b, monkeypatch)
        slow = b.store.record_incoming_many
        commits: list[int] = []

        def counted(peer: str, messages: list[tuple[str, str]], now: float) -> Any:
            commits.append(len(messages))
            return slow(peer, messages, now)

        monkeypatch.setattr(b.store, "record_incoming_many", counted)
        ids = [
            MessageView.decode(await a.op("send", peer="bob", text=f"burst {i}")).message_id
            for i in range(150)
        ]
        for message_id in ids:
            await _state(a, message_id, "delivered", timeout=30)
        assert [m.text for m in b.store.history(a.address, 200)] == [
            f"burst {i}" for i in range(150)
        ]
        assert sum(commits) == 150
        assert len(commits) <= 5, commits  # 150 without: one commit a message
        assert max(commits) > 48, commits  # more unanswered at once than a stranger's


async def test_an_address_is_that_address_whatever_a_nick_says(
    mesh: Mesh, autojump_clock: trio.testing.MockClock
) -> None:
    """A contact named with someone else's address does not take their messages."""
    a, b = await _pair(mesh, friends=True)
    carol = mesh.add("carol", 3)
    _give_services(carol)
    carol.befriend(a)
    await mesh.start(carol)
    a.store.add_contact(carol.address, b.address, 0.0)  # carol, named with bob's address
    sent = MessageView.decode(await a.op("send", peer=b.address, text="for bob"))
    await _state(a, sent.message_id, "delivered")
    assert [m.text for m in b.store.history(a.address)] == ["for bob"]
    assert carol.store.history(a.address) == []
    assert a.context.peer_address(f"sip:{b.address}@anonsip.invalid") == b.address


async def test_a_burst_of_sends_says_the_queued_count_once(
    mesh: Mesh, autojump_clock: trio.testing.MockClock
) -> None:
    a, b = mesh.add("alice", 1), mesh.add("bob", 2)
    contacts = ContactsService(a.context)  # wired as the node's assembly wires them
    a.use(
        [
            contacts,
            MessagingService(a.context, pow_difficulty=POW, on_queue_change=contacts.publish),
        ]
    )
    _give_services(b)
    a.befriend(b)
    b.befriend(a)
    await mesh.start(a)
    await mesh.start(b)
    mesh.down.add(b.key)
    before = len(a.recorder.named("contact"))
    for i in range(20):
        await a.op("send", peer=b.address, text=f"{i}")
    await trio.sleep(1)
    said = [c for c in a.recorder.named("contact")[before:] if c["address"] == b.address]
    assert len(said) == 1, said
    assert said[0]["queued"] == 20


class _Logged(logging.Handler):
    """Sets ``said`` once a record containing ``words`` is logged (in trio's thread)."""

    def __init__(self, words: str) -> None:
        super().__init__()
        self.words = words
        self.said = trio.Event()

    def emit(self, record: logging.LogRecord) -> None:
        if self.words in record.getMessage():
            self.said.set()


async def test_a_peer_that_vanishes_while_its_message_is_stored_costs_only_the_session(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """While Bob's (slow) store takes Alice's message, his side of the session dies
    half-open (his writes fail, neither reads an end). His 200 cannot go out: that ends
    the session, never his node (the handler's error was wrapped in an ExceptionGroup
    that the link's dispatcher let through, and the node exited)."""
    async with _friends_in_real_time(tmp_path) as (mesh, a, b):
        first = MessageView.decode(await a.op("send", peer="bob", text="first"))
        await _state(a, first.message_id, "delivered", timeout=30)
        storing = _slow_disk(b, monkeypatch)
        await a.op("send", peer="bob", text="second")
        await trio.to_thread.run_sync(storing.wait, 10)
        # Bob's writes fail from now on; nobody is told (no EOF), as when a tor vanished.
        _, bob_end = mesh.streams[(a.key, b.key)]
        bob_end.send_stream.close_hook = None
        bob_end.send_stream.close()
        # His store returns, his 200 fails, and his link says that request failed.
        caplog.set_level(logging.INFO)
        failed = _Logged("handling a RequestReceived failed")
        logging.getLogger("anonsip.node._link").addHandler(failed)
        try:
            with trio.fail_after(10):
                await failed.said.wait()
        finally:
            logging.getLogger("anonsip.node._link").removeHandler(failed)
        assert [m.text for m in b.store.history(a.address)] == ["first", "second"]
