"""MessageStore against a real SQLite file in tmp_path."""

import os
import random
import signal
import sqlite3
import stat
import subprocess
import sys
import textwrap
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

import pytest

from anonsip.store import (
    MAX_OUTBOX_PER_PEER,
    MAX_PENDING_REQUESTS,
    MAX_TEXT_BYTES,
    ContactState,
    Direction,
    MessageState,
    MessageStore,
    StoreCorruptError,
    StoreError,
    StoreFullError,
    StoreKeyError,
    StoreLimitError,
    retry_delay,
)

KEY = bytes(range(32))
ALICE = "asip1alicexxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
BOB = "asip1bobyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyy"
CAROL = "asip1carolzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzz"


T = TypeVar("T")


def must(value: T | None) -> T:
    assert value is not None
    return value


def seeded_rng(seed: int = 1) -> Callable[[int], bytes]:
    return random.Random(seed).randbytes


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "store.sqlite"


@pytest.fixture
def store(db_path: Path) -> Iterator[MessageStore]:
    with MessageStore.open(db_path, KEY, rng=seeded_rng()) as s:
        yield s


def test_enqueue_survives_reopen(db_path: Path) -> None:
    with MessageStore.open(db_path, KEY) as s:
        m = s.enqueue(BOB, "hello bob", now=100.0)
    assert m.state is MessageState.QUEUED
    with MessageStore.open(db_path, KEY) as s:
        [item] = s.due(now=100.0)
        assert (item.message_id, item.peer, item.text, item.attempts) == (
            m.message_id,
            BOB,
            "hello bob",
            0,
        )
        assert s.outgoing(m.message_id) == m
        assert s.outbox_size() == 1


def test_file_is_private(db_path: Path, store: MessageStore) -> None:
    store.enqueue(BOB, "x", now=1.0)
    assert stat.S_IMODE(os.stat(db_path).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(f"{db_path}-wal").st_mode) == 0o600


def test_message_ids_come_from_the_injected_rng(db_path: Path, tmp_path: Path) -> None:
    ids = []
    for name in ("a", "b"):
        with MessageStore.open(tmp_path / name, KEY, rng=seeded_rng(7)) as s:
            ids.append(s.enqueue(BOB, "x", now=1.0).message_id)
    assert ids[0] == ids[1]
    assert len(ids[0]) == 36


def test_due_keeps_each_peer_in_order_and_oldest_peer_first(store: MessageStore) -> None:
    b1 = store.enqueue(BOB, "b1", now=10.0)
    a1 = store.enqueue(ALICE, "a1", now=11.0)
    b2 = store.enqueue(BOB, "b2", now=12.0)
    a2 = store.enqueue(ALICE, "a2", now=13.0)
    assert [i.message_id for i in store.due(now=12.0)] == [
        b1.message_id,
        b2.message_id,
        a1.message_id,
    ]
    assert [i.message_id for i in store.due(now=20.0)] == [
        b1.message_id,
        b2.message_id,
        a1.message_id,
        a2.message_id,
    ]
    assert store.due_peers(now=12.0) == [BOB, ALICE]
    assert [i.message_id for i in store.due_for(BOB, now=20.0, limit=1)] == [b1.message_id]
    # b1 backs off: b2 must not overtake it
    assert store.mark_sent(b1.message_id, now=20.0)
    assert [i.message_id for i in store.due(now=20.0)] == [a1.message_id, a2.message_id]
    assert store.due_peers(now=20.0) == [ALICE]
    assert store.due_for(BOB, now=20.0) == []
    later = 20.0 + retry_delay(1)
    assert [i.message_id for i in store.due(now=later)] == [
        a1.message_id,
        a2.message_id,
        b1.message_id,
        b2.message_id,
    ]
    assert store.next_due() == 11.0


def test_mark_sent_backs_off_and_delivery_is_idempotent(store: MessageStore) -> None:
    m = store.enqueue(BOB, "hi", now=0.0)
    assert store.mark_sent(m.message_id, now=0.0)
    assert store.mark_sent(m.message_id, now=5.0)
    [item] = store.due(now=5.0 + retry_delay(2))
    assert item.attempts == 2
    assert item.next_attempt == 5.0 + retry_delay(2)
    assert store.history(BOB)[0].state is MessageState.SENT
    assert store.mark_delivered(m.message_id)
    assert not store.mark_delivered(m.message_id)
    assert not store.mark_sent(m.message_id, now=100.0)  # too late to change anything
    assert store.history(BOB)[0].state is MessageState.DELIVERED
    assert store.due(now=1e9) == []
    assert store.outbox_size() == 0
    assert store.next_due() is None
    f = store.enqueue(BOB, "doomed", now=0.0)
    assert store.mark_failed(f.message_id)
    assert not store.mark_delivered(f.message_id)
    assert must(store.outgoing(f.message_id)).state is MessageState.FAILED


def test_retry_schedule_doubles_up_to_a_cap() -> None:
    assert [retry_delay(n) for n in range(6)] == [0.0, 5.0, 10.0, 20.0, 40.0, 80.0]
    assert retry_delay(9) == 900.0
    assert retry_delay(10_000) == 900.0


def test_incoming_is_stored_once(store: MessageStore) -> None:
    assert store.record_incoming(BOB, "m-1", "hi", time=5.0)
    assert not store.record_incoming(BOB, "m-1", "hi again", time=6.0)
    assert store.record_incoming(ALICE, "m-1", "same id, other peer", time=6.0)
    [m] = store.history(BOB)
    assert (m.text, m.direction, m.state) == ("hi", Direction.IN, MessageState.RECEIVED)


def test_a_burst_is_stored_in_order_in_one_go_each_with_its_own_outcome(
    store: MessageStore,
) -> None:
    store.record_incoming(BOB, "m-0", "before", time=1.0)
    outcomes = store.record_incoming_many(
        BOB,
        [("m-1", "one"), ("m-0", "again"), ("m-2", "x" * (MAX_TEXT_BYTES + 1)), ("m-3", "three")],
        time=2.0,
    )
    assert outcomes[:2] == [True, False]
    assert isinstance(outcomes[2], StoreLimitError)  # too long: that one alone
    assert outcomes[3] is True
    assert [(m.message_id, m.text) for m in store.history(BOB)] == [
        ("m-0", "before"),
        ("m-1", "one"),
        ("m-3", "three"),
    ]
    assert [m.seq for m in store.history(BOB)] == [1, 2, 3]


def test_a_burst_that_fills_the_store_keeps_what_fits_and_nothing_after_it(
    db_path: Path,
) -> None:
    burst = [(f"m-{i}", f"{i:04d}" + "x" * 2000) for i in range(200)]
    with MessageStore.open(db_path, KEY, max_bytes=256 * 1024) as s:
        outcomes = s.record_incoming_many(BOB, burst, time=1.0)
        kept = outcomes.index(next(o for o in outcomes if o is not True))
        assert kept > 10
        assert all(isinstance(o, StoreFullError) for o in outcomes[kept:])
        stored = [m.message_id for m in s.history(BOB, limit=1000)]
    # The sender retries from the first refused one, so the order still holds.
    assert stored == [message_id for message_id, _ in burst[:kept]]


def test_history_interleaves_both_directions_in_order(store: MessageStore) -> None:
    store.enqueue(BOB, "one", now=1.0)
    store.record_incoming(BOB, "r1", "two", time=2.0)
    store.enqueue(BOB, "three", now=3.0)
    store.enqueue(ALICE, "elsewhere", now=3.5)
    store.record_incoming(BOB, "r2", "four", time=4.0)
    assert [m.text for m in store.history(BOB)] == ["one", "two", "three", "four"]
    assert [m.seq for m in store.history(BOB)] == [1, 2, 3, 4]
    assert [m.text for m in store.history(BOB, limit=2)] == ["three", "four"]
    assert store.history(CAROL) == []


def test_unread_counts(store: MessageStore) -> None:
    store.record_incoming(BOB, "1", "a", time=1.0)
    store.record_incoming(BOB, "2", "b", time=2.0)
    store.enqueue(BOB, "mine", now=3.0)
    store.record_incoming(ALICE, "1", "c", time=3.0)
    assert store.unread(BOB) == 2
    assert store.unread_counts() == {BOB: 2, ALICE: 1}
    store.mark_read(BOB)
    assert store.unread(BOB) == 0
    store.record_incoming(BOB, "3", "d", time=4.0)
    assert store.unread_counts() == {BOB: 1, ALICE: 1}


def test_contacts(store: MessageStore) -> None:
    bob = store.add_contact(BOB, "bob", now=1.0)
    assert (bob.address, bob.nick, bob.state, bob.verified, bob.note) == (
        BOB,
        "bob",
        ContactState.ACCEPTED,
        False,
        "",
    )
    store.add_contact(ALICE, "Alice", now=2.0, state=ContactState.REQUESTED)
    with pytest.raises(StoreError, match="already called 'bob'"):
        store.add_contact(CAROL, "bob", now=3.0)
    assert [c.nick for c in store.contacts()] == ["Alice", "bob"]
    assert store.contact_by_nick("bob") == bob
    assert store.contact_by_nick("nobody") is None
    assert store.set_verified(BOB, True).verified
    assert store.set_note(BOB, "met at the fair").note == "met at the fair"
    assert store.set_state(ALICE, ContactState.ACCEPTED).state is ContactState.ACCEPTED
    assert store.add_contact(BOB, "robert", now=9.0).nick == "robert"  # rename keeps the rest
    assert must(store.contact(BOB)).verified
    assert store.set_contact_cache(BOB, b"onion:abc", seq=2)
    assert not store.set_contact_cache(BOB, b"onion:old", seq=1)
    assert must(store.contact(BOB)).cache == b"onion:abc"
    assert store.remove_contact(BOB)
    assert not store.remove_contact(BOB)
    assert store.contact(BOB) is None
    with pytest.raises(StoreError, match="not among your contacts"):
        store.set_verified(BOB, True)


def test_requests_block_and_unblock(store: MessageStore) -> None:
    assert store.record_request(CAROL, "hi, it's carol", now=1.0)
    assert not store.record_request(CAROL, "again", now=2.0)
    [r] = store.requests()
    assert (r.address, r.text, r.time, r.last_time, r.count) == (
        CAROL,
        "hi, it's carol",
        1.0,
        2.0,
        2,
    )
    store.block(CAROL, now=3.0)
    assert store.requests() == []
    assert store.is_blocked(CAROL)
    assert not store.record_request(CAROL, "let me in", now=4.0)
    assert store.unblock(CAROL)
    assert not store.is_blocked(CAROL)
    assert store.contact(CAROL) is None  # never was a contact: forgotten
    store.add_contact(BOB, "bob", now=5.0)
    store.block(BOB, now=6.0)
    assert must(store.contact(BOB)).state is ContactState.BLOCKED
    assert store.unblock(BOB)
    assert must(store.contact(BOB)).state is ContactState.ACCEPTED
    assert not store.unblock(BOB)
    assert not store.record_request(BOB, "already a contact", now=7.0)
    store.record_request(ALICE, "hello", now=8.0)
    assert store.accept_request(ALICE, "alice", now=9.0).state is ContactState.ACCEPTED
    assert store.requests() == []
    with pytest.raises(StoreError, match="no contact request"):
        store.accept_request(CAROL, "carol", now=9.0)
    store.record_request(CAROL, "x", now=10.0)
    assert store.decline_request(CAROL)
    assert store.pending_requests() == 0


def test_bounds(store: MessageStore) -> None:
    with pytest.raises(StoreLimitError, match="at most"):
        store.enqueue(BOB, "x" * (MAX_TEXT_BYTES + 1), now=0.0)
    store.enqueue(BOB, "é" * (MAX_TEXT_BYTES // 2), now=0.0)  # the bound is in bytes
    for i in range(MAX_OUTBOX_PER_PEER - 1):
        store.enqueue(BOB, str(i), now=0.0)
    with pytest.raises(StoreLimitError, match="still waiting"):
        store.enqueue(BOB, "one too many", now=0.0)
    store.enqueue(ALICE, "other peers are fine", now=0.0)
    for i in range(MAX_PENDING_REQUESTS):
        store.record_request(f"asip1req{i}", "hi", now=float(i))
    assert store.record_request("asip1onemore", "hi", now=1000.0)  # the oldest makes room
    waiting = [r.address for r in store.requests()]
    assert len(waiting) == MAX_PENDING_REQUESTS
    assert "asip1req0" not in waiting
    assert waiting[-1] == "asip1onemore"
    assert store.outbox_size() == MAX_OUTBOX_PER_PEER + 1


SECRETS = ["PLAINTEXT-MESSAGE-4711", "nick-zorblax", "note-quuxly", "request-text-88", BOB, CAROL]


def _raw_bytes(db_path: Path) -> bytes:
    data = b""
    for suffix in ("", "-wal", "-shm"):
        p = Path(f"{db_path}{suffix}")
        if p.exists():
            data += p.read_bytes()
    return data


def test_file_reveals_no_text_nick_note_or_address(db_path: Path) -> None:
    with MessageStore.open(db_path, KEY) as s:
        s.add_contact(BOB, "nick-zorblax", now=1.0, note="note-quuxly")
        s.enqueue(BOB, "PLAINTEXT-MESSAGE-4711", now=1.0)
        s.record_incoming(BOB, "x", "PLAINTEXT-MESSAGE-4711 reply", time=2.0)
        s.record_request(CAROL, "request-text-88", now=3.0)
        s.set_contact_cache(BOB, b"onionaddressqqqq", seq=1)
        raw = _raw_bytes(db_path)  # the WAL holds everything at this point
        assert len(raw) > 10_000
        for secret in [*SECRETS, "onionaddressqqqq"]:
            assert secret.encode() not in raw, secret
    raw = _raw_bytes(db_path)  # after the checkpoint on close
    for secret in SECRETS:
        assert secret.encode() not in raw, secret
    # the check can fail: the same bytes are there in clear when written in clear
    con = sqlite3.connect(db_path)
    con.execute("INSERT INTO meta VALUES ('probe', ?)", (b"PLAINTEXT-MESSAGE-4711",))
    con.commit()
    con.close()
    assert b"PLAINTEXT-MESSAGE-4711" in _raw_bytes(db_path)


def test_wrong_key_is_a_clear_error(db_path: Path) -> None:
    with MessageStore.open(db_path, KEY) as s:
        s.enqueue(BOB, "x", now=0.0)
    with pytest.raises(StoreKeyError, match="different key"):
        MessageStore.open(db_path, bytes(32))
    with MessageStore.open(db_path, KEY) as s:  # and the wrong attempt changed nothing
        assert s.outbox_size() == 1


def test_not_a_database_is_a_clear_error(db_path: Path) -> None:
    db_path.write_bytes(b"this is not sqlite at all" * 100)
    with pytest.raises(StoreCorruptError, match="damaged"):
        MessageStore.open(db_path, KEY)


def test_a_ciphertext_moved_to_another_row_is_refused(db_path: Path) -> None:
    with MessageStore.open(db_path, KEY) as s:
        s.record_incoming(BOB, "a", "first", time=1.0)
        s.record_incoming(BOB, "b", "second", time=2.0)
    con = sqlite3.connect(db_path)
    con.execute(
        "UPDATE messages SET text_sealed = "
        "(SELECT text_sealed FROM messages WHERE message_id = 'a') WHERE message_id = 'b'"
    )
    con.commit()
    con.close()
    with MessageStore.open(db_path, KEY) as s, pytest.raises(StoreCorruptError, match="integrity"):
        s.history(BOB)


def test_newer_schema_is_refused(db_path: Path) -> None:
    MessageStore.open(db_path, KEY).close()
    con = sqlite3.connect(db_path)
    con.execute("UPDATE schema_version SET version = 99")
    con.commit()
    con.close()
    with pytest.raises(StoreError, match="newer anonsip"):
        MessageStore.open(db_path, KEY)


def test_full_disk_loses_nothing_committed(db_path: Path) -> None:
    acknowledged = []
    with MessageStore.open(db_path, KEY, max_bytes=256 * 1024) as s:
        with pytest.raises(StoreFullError, match="free some disk space"):  # noqa: PT012
            for i in range(10_000):
                acknowledged.append(
                    s.enqueue(BOB, f"{i:04d}" + "x" * 2000, now=float(i)).message_id
                )
        assert len(acknowledged) > 10
        # still usable for reads, and for writes once space is freed
        assert len(s.history(BOB, limit=1000)) == len(acknowledged)
    with MessageStore.open(db_path, KEY) as s:
        stored = [m.message_id for m in s.history(BOB, limit=1000)]
        assert stored == acknowledged
        s.enqueue(BOB, "after the disk was freed", now=1e6)


def test_threads_share_one_store(store: MessageStore) -> None:
    def work(peer: str) -> None:
        for i in range(50):
            store.enqueue(peer, f"{peer}-{i}", now=float(i))

    threads = [threading.Thread(target=work, args=(p,)) for p in (ALICE, BOB, CAROL)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for peer in (ALICE, BOB, CAROL):
        assert [m.text for m in store.history(peer)] == [f"{peer}-{i}" for i in range(50)]


CHILD = textwrap.dedent(
    """
    import sys
    from anonsip.store import MessageStore
    store = MessageStore.open(sys.argv[1], bytes(range(32)))
    i = 0
    delivered = []
    while True:
        m = store.enqueue("asip1bob", f"msg {i}", now=float(i))
        print("Q", m.message_id, flush=True)
        if i % 3 == 0:
            store.mark_sent(m.message_id, now=float(i))
        if i % 2 == 0:
            store.mark_delivered(m.message_id)
            print("D", m.message_id, flush=True)
        i += 1
    """
)


@pytest.mark.parametrize("kill_after", [20, 150, 400])
def test_kill_9_mid_write_leaves_a_consistent_store(db_path: Path, kill_after: int) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(db_path)],
        stdout=subprocess.PIPE,
        text=True,
        cwd=Path(__file__).resolve().parents[3],
    )
    assert proc.stdout is not None
    queued: list[str] = []
    delivered: set[str] = set()

    def acknowledged(line: str) -> None:
        kind, message_id = line.split()
        if kind == "Q":
            queued.append(message_id)
        else:
            delivered.add(message_id)

    for line in proc.stdout:
        acknowledged(line)
        if len(queued) >= kill_after:
            break
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    # The child runs ahead of our reading: what it printed before it died (still in
    # the pipe) was acknowledged too. A line cut short by the kill is not.
    for line in proc.stdout.read().splitlines(keepends=True):
        if line.endswith("\n"):
            acknowledged(line)
    proc.stdout.close()

    with MessageStore.open(db_path, KEY) as s:
        history = s.history("asip1bob", limit=1000)
        ids = [m.message_id for m in history]
        assert len(ids) == len(set(ids))
        assert ids[: len(queued)] == queued  # every acknowledged enqueue, once, in order
        assert len(ids) - len(queued) <= 1  # at most the one committed before its print
        assert [m.seq for m in history] == list(range(1, len(history) + 1))
        outbox = {i.message_id for i in s.due(now=1e9)}
        for m in history:
            if m.message_id in delivered:
                assert m.state is MessageState.DELIVERED
            # in the outbox exactly when not yet delivered
            assert (m.message_id in outbox) == (m.state is not MessageState.DELIVERED)
        assert s.outbox_size() == len(outbox)


def test_dht_seeds_are_sealed_bounded_per_source_and_newest_first(tmp_path: Path) -> None:
    from anonsip.store._store import MAX_DHT_SEEDS

    store = MessageStore.open(tmp_path / "s.sqlite", bytes(32))
    keys = [bytes([i + 1]) * 16 + b"seed-key-marker!" for i in range(MAX_DHT_SEEDS + 5)]
    store.add_dht_seeds("saved", [(k, 7044) for k in keys], now=1.0)
    store.add_dht_seeds("saved", [(keys[0], 7044)], now=2.0)  # seen again: newest
    store.add_dht_seeds("invite", [(b"\xaa" * 32, 9000)], now=0.5)
    saved = store.dht_seeds("saved")
    assert len(saved) == MAX_DHT_SEEDS
    assert saved[0] == (keys[0], 7044, "saved")
    assert store.dht_seeds("invite") == [(b"\xaa" * 32, 9000, "invite")]
    assert store.remove_dht_seed(b"\xaa" * 32, 9000)
    assert not store.remove_dht_seed(b"\xaa" * 32, 9000)
    with pytest.raises(StoreError):
        store.add_dht_seeds("gossip", [(keys[1], 1)], now=0)
    store.close()
    raw = (tmp_path / "s.sqlite").read_bytes()
    assert b"seed-key-marker!" not in raw  # the seeds are sealed at rest


def test_a_contacts_mailbox_secret_is_kept_sealed_and_only_for_contacts(tmp_path: Path) -> None:
    store = MessageStore.open(tmp_path / "s.sqlite", bytes(32))
    secret = b"mailbox-secret-marker!" + bytes(10)
    assert not store.set_contact_mailbox(ALICE, secret)  # not a contact: nothing kept
    store.add_contact(ALICE, "alice", now=1.0)
    assert store.contact_mailbox(ALICE) is None
    assert store.set_contact_mailbox(ALICE, secret)
    assert store.contact_mailbox(ALICE) == secret
    assert store.contact_mailbox(BOB) is None
    store.remove_contact(ALICE)
    assert store.contact_mailbox(ALICE) is None  # forgotten with the contact
    store.add_contact(ALICE, "alice", now=1.0)
    assert store.contact_mailbox(ALICE) is None
    assert store.set_contact_mailbox(ALICE, secret)
    store.close()
    assert b"mailbox-secret-marker!" not in (tmp_path / "s.sqlite").read_bytes()


def test_a_batch_writes_its_sent_states_with_its_outcomes_forward_only(
    store: MessageStore,
) -> None:
    delivered, failed, reached, boxed, untouched = (
        store.enqueue(BOB, text, now=0.0) for text in ("a", "b", "c", "d", "e")
    )
    assert store.set_outgoing_state(boxed.message_id, MessageState.IN_MAILBOX)
    store.finish_many(
        [delivered.message_id],
        [failed.message_id],
        [delivered.message_id, reached.message_id, boxed.message_id],
    )
    states = {m.message_id: m.state for m in store.history(BOB)}
    assert states == {
        delivered.message_id: MessageState.DELIVERED,
        failed.message_id: MessageState.FAILED,
        reached.message_id: MessageState.SENT,
        boxed.message_id: MessageState.IN_MAILBOX,  # never back
        untouched.message_id: MessageState.QUEUED,
    }
    assert store.outbox_size() == 3
    store.finish_many([], [], [reached.message_id])  # again: nothing changes
    assert store.history(BOB)[2].state is MessageState.SENT
