"""Mail between nodes that are never online together, on nodes in memory.

Real messaging, contacts and mailbox services on the in-memory mesh; the
DHT's mailbox storage is a dict that applies the real checks a storing
node applies (``Deposit.check``, ``Deletion.check``). The DHT's own tests
cover its storage across nodes; these cover what the node does with it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import trio
import trio.testing

from anonsip.control import MessageView
from anonsip.dht import DepositReport
from anonsip.identity import TOR_TIME_PERIODS, Identity
from anonsip.mailbox import (
    Deletion,
    Deposit,
    Letter,
    LetterKind,
    dht_key,
    mailbox_key,
    seal_letter,
)
from anonsip.node._contacts import ContactsService
from anonsip.node._link import PeerLink
from anonsip.node._mailbox import (
    BOX_GRACE_S,
    BOX_SETTING,
    MAX_DEPOSIT_BITS,
    PREVIOUS_BOX_SETTING,
    MailboxService,
)
from anonsip.node._messaging import MessagingService
from anonsip.sip import SipEvent
from anonsip.store import MessageState
from tests.unit.node.mesh import MemoryNode, Mesh

BITS = 4  # proof of work in these tests: the same code path, cheap


class Mailboxes:
    """The DHT's mailbox storage as storing nodes keep it (one dict for all)."""

    def __init__(self) -> None:
        self.kept: dict[bytes, dict[bytes, Deposit]] = {}
        self.deposits = 0
        self.refusing = False  # every storing node unreachable
        self.cap = 64  # deposits per mailbox, as storing nodes bound them
        self.outbid = 0  # deposits refused next as if a flood had just raised the floor
        self.outbid_floor = 0  # at least this much work asked of them then
        self.works: list[int] = []  # the work of every deposit offered

    async def deposit_report(self, deposit: Deposit) -> DepositReport:
        """As a storing node at its cap: the cheapest deposit makes way for one with
        strictly more work; a refused one learns the floor it must beat."""
        if self.refusing:
            return DepositReport(stored=0, refused={}, floor=0)
        deposit.check(trio.current_time() + NOW, difficulty=BITS)
        self.works.append(deposit.work)
        if self.outbid:
            self.outbid -= 1
            floor = max(deposit.work + 1, self.outbid_floor)
            return DepositReport(stored=0, refused={"full": 3}, floor=floor)
        box = self.kept.setdefault(deposit.key, {})
        if len(box) >= self.cap:
            cheapest = min(box.values(), key=lambda d: d.work)
            if deposit.work <= cheapest.work:
                return DepositReport(stored=0, refused={"full": 3}, floor=cheapest.work + 1)
            del box[cheapest.deposit_id]
        box[deposit.deposit_id] = deposit
        self.deposits += 1
        return DepositReport(stored=3, refused={}, floor=BITS)

    async def collect(self, key: bytes) -> list[Deposit]:
        return list(self.kept.get(key, {}).values())

    async def delete(self, deletion: Deletion) -> int:
        deletion.check(trio.current_time() + NOW)
        box = self.kept.get(deletion.key, {})
        for deposit_id in deletion.deposit_ids:
            box.pop(deposit_id, None)
        return 3


NOW = 1_900_000_000.0


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[tuple[Mesh, Mailboxes]]:
    async with trio.open_nursery() as nursery:
        mesh = Mesh(nursery, tmp_path, clock=lambda: trio.current_time() + NOW)
        yield mesh, Mailboxes()
        nursery.cancel_scope.cancel()


def _services(node: MemoryNode, boxes: Mailboxes) -> MailboxService:
    messaging: MessagingService
    mailbox = MailboxService(
        node.context,
        direct_receipts=lambda peer, ids: messaging.send_receipts(peer, ids),
        deposit_bits=BITS,
        request_bits=BITS + 2,
        collect_interval=3600,
    )
    messaging = MessagingService(node.context, pow_difficulty=BITS, mailbox=mailbox)
    node.use([ContactsService(node.context), messaging, mailbox])
    mailbox.attach(boxes)
    return mailbox


async def _state(node: MemoryNode, message_id: str, state: str, timeout: float = 600) -> None:
    await node.recorder.wait_for(
        "message", lambda d: d["message_id"] == message_id and d["state"] == state, timeout
    )


async def test_a_message_waits_in_the_mailbox_and_comes_back_delivered(
    world: tuple[Mesh, Mailboxes], autojump_clock: trio.testing.MockClock
) -> None:
    mesh, boxes = world
    alice, bob = mesh.add("alice", 1), mesh.add("bob", 2)
    _services(alice, boxes)
    bob_mail = _services(bob, boxes)
    alice.befriend(bob)
    bob.befriend(alice)
    await mesh.start(alice)
    mesh.down.add(bob.key)  # bob is not online
    sent = MessageView.decode(await alice.op("send", peer="bob", text="while you sleep"))
    await _state(alice, sent.message_id, "in_mailbox")
    assert boxes.deposits == 1
    copy = {key: dict(box) for key, box in boxes.kept.items()}  # what a replayer keeps
    # Bob comes online later; alice is still there: his receipt goes directly.
    await mesh.start(bob)
    await bob_mail.collect()
    history = await bob.op("history", peer="alice")
    assert [(m["text"], m["message_id"]) for m in history] == [("while you sleep", sent.message_id)]
    await _state(alice, sent.message_id, "delivered")
    assert boxes.kept == {k: {} for k in boxes.kept}  # collected, then deleted by bob
    # Direct delivery is still under way (it backs off), and someone replays the
    # deposit: it shows nothing twice.
    boxes.kept.update(copy)
    await bob_mail.collect()
    await trio.sleep(3600)
    assert len(await bob.op("history", peer="alice")) == 1
    assert alice.store.outbox_size() == 0


async def test_never_online_together_receipts_go_by_mail_too(
    world: tuple[Mesh, Mailboxes], autojump_clock: trio.testing.MockClock
) -> None:
    mesh, boxes = world
    alice, bob = mesh.add("alice", 1), mesh.add("bob", 2)
    alice_mail, bob_mail = _services(alice, boxes), _services(bob, boxes)
    alice.befriend(bob)
    bob.befriend(alice)
    await mesh.start(alice)
    mesh.down.add(bob.key)
    sent = MessageView.decode(await alice.op("send", peer="bob", text="one"))
    await _state(alice, sent.message_id, "in_mailbox")
    await mesh.stop(alice)  # alice goes away before bob comes
    await mesh.start(bob)
    await bob_mail.collect()  # alice is gone: the receipt goes to her mailbox
    assert [m["text"] for m in await bob.op("history", peer="alice")] == ["one"]
    await mesh.stop(bob)
    await mesh.start(alice)
    await alice_mail.collect()
    assert alice.store.outgoing(sent.message_id).state is MessageState.DELIVERED  # type: ignore[union-attr]


async def test_a_strangers_mail_is_a_request_only_with_a_requests_work(
    world: tuple[Mesh, Mailboxes], autojump_clock: trio.testing.MockClock
) -> None:
    mesh, boxes = world
    alice, bob = mesh.add("alice", 1), mesh.add("bob", 2)
    _services(alice, boxes)
    bob_mail = _services(bob, boxes)
    await mesh.start(alice)
    mesh.down.add(bob.key)
    await alice.op("send", peer=bob.address, text="hello, we met at the market")
    await trio.sleep(120)
    await mesh.start(bob)
    await bob_mail.collect()
    (request,) = await bob.op("requests")
    assert (request["address"], request["text"]) == (alice.address, "hello, we met at the market")
    assert await bob.op("history", peer=alice.address) == []  # nothing shown before accepting


def _forge(
    boxes: Mailboxes,
    author: Identity,
    to: MemoryNode,
    letter: Letter,
    bits: int,
    secret: bytes = b"",
) -> None:
    """A letter someone deposits straight into ``to``'s mailbox of the current period
    (with ``secret``, its contacts' one)."""
    now = trio.current_time() + NOW
    period = TOR_TIME_PERIODS.number_at(now)
    deposit = Deposit.make(
        mailbox=mailbox_key(to.key, period, secret=secret),
        expiry=int(now) + 86400,
        sealed=seal_letter(author, to.key, letter),
        difficulty=bits,
    )
    while deposit.work >= bits + 2:  # luckier than asked for: counts as a request's work
        deposit = Deposit.make(
            mailbox=deposit.mailbox, expiry=deposit.expiry, sealed=deposit.sealed, difficulty=bits
        )
    boxes.kept.setdefault(deposit.key, {})[deposit.deposit_id] = deposit


async def test_a_letter_stays_until_its_receipt_went_out_and_shows_once(
    world: tuple[Mesh, Mailboxes], autojump_clock: trio.testing.MockClock
) -> None:
    mesh, boxes = world
    alice, bob = mesh.add("alice", 1), mesh.add("bob", 2)
    _services(alice, boxes)
    bob_mail = _services(bob, boxes)
    alice.befriend(bob)
    bob.befriend(alice)
    await mesh.start(alice)
    mesh.down.add(bob.key)
    sent = MessageView.decode(await alice.op("send", peer="bob", text="are you safe?"))
    await _state(alice, sent.message_id, "in_mailbox")
    await mesh.stop(alice)
    boxes.refusing = True  # bob's receipt can go neither directly nor by mail
    await mesh.start(bob)
    await bob_mail.collect()
    assert sum(len(box) for box in boxes.kept.values()) == 1  # not deleted: no receipt yet
    await bob_mail.collect()  # collected again: shown once
    assert [m["text"] for m in await bob.op("history", peer="alice")] == ["are you safe?"]
    boxes.refusing = False
    await bob_mail.collect()  # now the receipt goes by mail, and the letter is deleted
    assert [m["text"] for m in await bob.op("history", peer="alice")] == ["are you safe?"]
    assert sum(len(box) for box in boxes.kept.values()) == 1  # just the receipt, for alice
    await mesh.stop(bob)
    await mesh.start(alice)
    await _state(alice, sent.message_id, "delivered")


async def test_only_the_recipient_can_confirm_a_message(
    world: tuple[Mesh, Mailboxes], autojump_clock: trio.testing.MockClock
) -> None:
    mesh, boxes = world
    alice, bob, carol = mesh.add("alice", 1), mesh.add("bob", 2), mesh.add("carol", 3)
    alice_mail = _services(alice, boxes)
    _services(bob, boxes)
    alice.befriend(bob)
    alice.befriend(carol)
    await mesh.start(alice)
    mesh.down.add(bob.key)
    sent = MessageView.decode(await alice.op("send", peer="bob", text="only for bob"))
    await _state(alice, sent.message_id, "in_mailbox")
    # Carol (a contact, who somehow learnt the id) confirms it in bob's name: not taken.
    receipt = Letter(kind=LetterKind.RECEIPT, message_id=sent.message_id, time_ms=1)
    _forge(boxes, carol.identity, alice, receipt, BITS)
    await alice_mail.collect()
    assert alice.store.outgoing(sent.message_id).state is MessageState.IN_MAILBOX  # type: ignore[union-attr]
    assert sum(len(box) for box in boxes.kept.values()) == 1  # carol's letter deleted; bob's waits


async def test_strangers_cheap_letters_and_the_blockeds_letters_are_dropped(
    world: tuple[Mesh, Mailboxes], autojump_clock: trio.testing.MockClock
) -> None:
    mesh, boxes = world
    alice, mallory, carol = mesh.add("alice", 1), mesh.add("mallory", 4), mesh.add("carol", 3)
    alice_mail = _services(alice, boxes)
    alice.befriend(carol)
    await mesh.start(alice)
    await trio.testing.wait_all_tasks_blocked()  # the collection at start is over
    await alice.op("block", address=carol.address)
    spam = Letter(kind=LetterKind.MESSAGE, message_id="spam-1", time_ms=1, text="buy now")
    _forge(boxes, mallory.identity, alice, spam, BITS)  # a stranger, with a message's work
    hush = Letter(kind=LetterKind.MESSAGE, message_id="carol-1", time_ms=2, text="listen")
    _forge(boxes, carol.identity, alice, hush, BITS)  # someone alice blocked
    assert await alice_mail.collect() == 2
    assert await alice.op("requests") == []
    assert await alice.op("history", peer=mallory.address) == []
    assert await alice.op("history", peer=carol.address) == []
    assert all(not box for box in boxes.kept.values())  # both deleted: nothing to retry
    assert boxes.deposits == 0  # and neither got a receipt


async def test_contacts_mail_goes_where_a_strangers_flood_cannot_reach(
    world: tuple[Mesh, Mailboxes], autojump_clock: trio.testing.MockClock
) -> None:
    mesh, boxes = world
    alice, bob, mallory = mesh.add("alice", 1), mesh.add("bob", 2), mesh.add("mallory", 4)
    _services(alice, boxes)
    bob_mail = _services(bob, boxes)
    alice.befriend(bob)
    bob.befriend(alice)
    await mesh.start(alice)
    await mesh.start(bob)
    # One message each way while both are online: each learns the other's secret.
    hello = MessageView.decode(await alice.op("send", peer="bob", text="hello"))
    await _state(alice, hello.message_id, "delivered")
    assert alice.store.contact_mailbox(bob.address) == bob_mail.secret()
    assert bob.store.contact_mailbox(alice.address) is not None
    assert mallory.store.contact_mailbox(bob.address) is None
    await mesh.stop(bob)
    # Mallory, who knows bob's address, fills his open mailbox to the storing nodes' cap.
    boxes.cap = 8
    for n in range(boxes.cap):
        junk = Letter(kind=LetterKind.REQUEST, message_id=f"junk-{n}", time_ms=n, text="spam")
        _forge(boxes, mallory.identity, bob, junk, BITS + 2)
    sent = MessageView.decode(await alice.op("send", peer="bob", text="still there?"))
    await _state(alice, sent.message_id, "in_mailbox")  # alice's letter found room
    period = TOR_TIME_PERIODS.number_at(trio.current_time() + NOW)
    contacts_box = dht_key(mailbox_key(bob.key, period, secret=bob_mail.secret()))
    assert len(boxes.kept[contacts_box]) == 1
    await mesh.start(bob)
    await bob_mail.collect()
    texts = [m["text"] for m in await bob.op("history", peer="alice")]
    assert texts == ["hello", "still there?"]
    await _state(alice, sent.message_id, "delivered")


async def test_a_strangers_oversized_request_letter_does_not_stop_the_collection(
    world: tuple[Mesh, Mailboxes], autojump_clock: trio.testing.MockClock
) -> None:
    mesh, boxes = world
    alice, bob, mallory = mesh.add("alice", 1), mesh.add("bob", 2), mesh.add("mallory", 4)
    bob_mail = _services(bob, boxes)
    bob.befriend(alice)
    await mesh.start(bob)
    await trio.testing.wait_all_tasks_blocked()  # the collection at start is over
    huge = Letter(kind=LetterKind.REQUEST, message_id="huge-1", time_ms=1, text="x" * 2000)
    _forge(boxes, mallory.identity, bob, huge, BITS + 2)  # more than a request may hold
    hello = Letter(kind=LetterKind.MESSAGE, message_id="alice-1", time_ms=2, text="hello")
    _forge(boxes, alice.identity, bob, hello, BITS)
    assert await bob_mail.collect() == 2
    assert [m["text"] for m in await bob.op("history", peer=alice.address)] == ["hello"]
    assert await bob.op("requests") == []
    period = TOR_TIME_PERIODS.number_at(trio.current_time() + NOW)
    assert boxes.kept[dht_key(mailbox_key(bob.key, period))] == {}  # dropped like any junk


async def test_messages_unanswered_on_a_dead_session_go_to_the_mailbox(
    world: tuple[Mesh, Mailboxes], autojump_clock: trio.testing.MockClock
) -> None:
    """Bob's end of the session goes silent (a stream left half-open when his tor
    vanished): alice's pipelined window times out, the link ends, and the messages
    go to his mailbox instead of waiting on the silent session for ever."""
    mesh, boxes = world
    alice, bob = mesh.add("alice", 1), mesh.add("bob", 2)
    _services(alice, boxes)
    _services(bob, boxes)
    alice.befriend(bob)
    bob.befriend(alice)
    await mesh.start(alice)
    await mesh.start(bob)
    first = MessageView.decode(await alice.op("send", peer="bob", text="hello"))
    await _state(alice, first.message_id, "delivered")
    link = bob.current(alice.key)
    assert link is not None

    async def silent(_link: PeerLink, _event: SipEvent) -> None:
        await trio.sleep_forever()

    link._on_incoming = silent  # bob's node still reads, and never answers again
    mesh.down.add(bob.key)  # nor can he be dialled afresh
    sent = [
        MessageView.decode(await alice.op("send", peer="bob", text=f"into the void {i}"))
        for i in range(3)
    ]
    for message in sent:
        await _state(alice, message.message_id, "in_mailbox", timeout=120)
    assert boxes.deposits == 3
    assert alice.store.outbox_size() == 3  # and still queued for a direct try


async def test_a_removed_or_blocked_contact_loses_the_contacts_mailbox(
    world: tuple[Mesh, Mailboxes], autojump_clock: trio.testing.MockClock
) -> None:
    """Our contacts' mailbox secret was told to everyone we counted as a contact; one
    we remove or block could crowd that mailbox for good. It moves; the old one is
    collected for a grace time, for contacts who have not heard of the new one yet."""
    mesh, boxes = world
    alice, bob, carol = mesh.add("alice", 1), mesh.add("bob", 2), mesh.add("carol", 3)
    alice_mail = _services(alice, boxes)
    _services(bob, boxes)
    for one, other in ((alice, bob), (bob, alice), (alice, carol)):
        one.befriend(other)
    await mesh.start(alice)
    await mesh.start(bob)
    hello = MessageView.decode(await alice.op("send", peer="bob", text="hello"))
    await _state(alice, hello.message_id, "delivered")
    old = alice_mail.secret()
    assert bob.store.contact_mailbox(alice.address) == old

    alice.befriend(mesh.add("dave", 4))  # a new contact moves nothing
    assert alice_mail.secret() == old
    await alice.op("contacts.remove", peer=carol.address)
    new = alice_mail.secret()
    assert new != old
    assert alice.store.setting(BOX_SETTING) == new.hex()  # kept across a restart

    # Bob has not heard of it: his mail still goes to the old box, which alice collects.
    await mesh.stop(alice)
    away = MessageView.decode(await bob.op("send", peer="alice", text="while you were away"))
    await _state(bob, away.message_id, "in_mailbox")
    await mesh.stop(bob)  # never online together: only the mailbox carries it
    await mesh.start(alice)
    await alice_mail.collect()
    assert [m["text"] for m in await alice.op("history", peer="bob")][-1] == "while you were away"
    await mesh.start(bob)
    # Her next message tells him the new one.
    back = MessageView.decode(await alice.op("send", peer="bob", text="back"))
    await _state(alice, back.message_id, "delivered")
    assert bob.store.contact_mailbox(alice.address) == new

    # After the grace time the old box is not collected: carol's mail there stays.
    late = trio.current_time() + NOW - BOX_GRACE_S - 1
    alice.store.set_setting(PREVIOUS_BOX_SETTING, f"{old.hex()} {late:.0f}")
    spam = Letter(kind=LetterKind.MESSAGE, message_id="carol-1", time_ms=3, text="still here")
    _forge(boxes, carol.identity, alice, spam, BITS, secret=old)
    assert await alice_mail.collect() == 0

    await alice.op("block", address=bob.address)  # blocking moves it too
    assert alice_mail.secret() not in (old, new)


async def test_a_letter_to_a_crowded_mailbox_is_made_again_with_the_work_asked(
    world: tuple[Mesh, Mailboxes], autojump_clock: trio.testing.MockClock
) -> None:
    """A flood raised the work bob's mailbox takes above what alice's letter carries:
    refused, she learns the floor and makes it again with that much work, once. A
    mailbox that asks more than MAX_DEPOSIT_BITS is not chased."""
    mesh, boxes = world
    alice, bob = mesh.add("alice", 1), mesh.add("bob", 2)
    alice_mail = _services(alice, boxes)
    bob_mail = _services(bob, boxes)
    await mesh.start(alice)
    mesh.down.add(bob.key)  # bob is not online
    boxes.outbid = 1
    sent = MessageView.decode(await alice.op("send", peer=bob.address, text="hi bob"))
    await _state(alice, sent.message_id, "in_mailbox")
    first, second = boxes.works
    assert second > first  # made again with more work, and taken
    mesh.down.discard(bob.key)
    await mesh.start(bob)
    await bob_mail.collect()
    assert [r["text"] for r in await bob.op("requests")] == ["hi bob"]
    # A floor past what we do for a letter: one try, not a chase.
    boxes.works.clear()
    boxes.outbid, boxes.outbid_floor = 2, MAX_DEPOSIT_BITS + 1
    now = trio.current_time() + NOW
    assert not await alice_mail.deposit_message(bob.address, "m-2", "again", now, request=True)
    assert len(boxes.works) == 1
