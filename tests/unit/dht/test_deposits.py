"""The deposit store: what a storing node keeps of a mailbox, and what it refuses."""

import dataclasses
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from anonsip._errors import LocalError
from anonsip.dht import (
    MAX_DEPOSIT_BYTES,
    DeletionOutcome,
    DepositOutcome,
    DepositStore,
    SharedRandom,
    positions,
)
from anonsip.mailbox import DEPOSIT_POW_BITS, MAX_TTL, Deposit, sealed_sizes

from .helpers import SHARED, deletion, deposit, deposit_location, mailbox

NOW = 50_000.0
LATER = int(NOW) + 3600


def put(store: DepositStore, d: Deposit, now: float = NOW, replica: int = 0) -> DepositOutcome:
    return store.put(deposit_location(d, replica), d.encode(), now=now, shared=SHARED).outcome


def held(store: DepositStore, n: int, replica: int = 0) -> list[Deposit]:
    return store.deposits(deposit_location(deposit(n), replica), NOW)


def test_many_deposits_of_one_mailbox_are_kept_and_a_copy_only_refreshes() -> None:
    store = DepositStore()
    letters = [deposit(1, i, expiry=LATER) for i in range(5)]
    for d in letters:
        assert put(store, d) is DepositOutcome.STORED
    assert put(store, letters[0], NOW + 1) is DepositOutcome.REFRESHED
    assert put(store, letters[0], replica=1) is DepositOutcome.STORED  # its other position
    assert sorted(held(store, 1), key=lambda d: d.deposit_id) == sorted(
        letters, key=lambda d: d.deposit_id
    )
    assert len(store) == 6
    assert store.payload_bytes == sum(len(d.encode()) for d in letters) + len(letters[0].encode())


def test_a_verdict_reports_the_work_it_saw_and_the_floor() -> None:
    store = DepositStore()
    d = deposit(1, 0, expiry=LATER, difficulty=16)
    verdict = store.put(deposit_location(d), d.encode(), now=NOW, shared=SHARED)
    assert verdict.outcome is DepositOutcome.STORED
    assert verdict.work == d.work >= 16
    assert verdict.floor == DEPOSIT_POW_BITS


def test_a_deposit_is_taken_only_at_its_mailboxs_positions() -> None:
    store = DepositStore()
    d, other = deposit(1, 0, expiry=LATER), deposit(2, 0, expiry=LATER)
    elsewhere = SharedRandom.single(bytes(32))
    for where in (deposit_location(other), bytes(32), deposit_location(d, shared=elsewhere)):
        verdict = store.put(where, d.encode(), now=NOW, shared=SHARED)
        assert verdict.outcome is DepositOutcome.WRONG_LOCATION
    # Under the previous value it is taken; once that value is out of use it goes.
    moved = SharedRandom(current=bytes(32), previous=SHARED.current)
    assert store.put(deposit_location(d), d.encode(), now=NOW, shared=moved).outcome.accepted
    assert store.sweep(NOW, moved) == 0
    assert store.sweep(NOW, SharedRandom.single(bytes(32))) == 1
    assert len(store) == 0


def test_expiry_lifetime_and_work_are_checked_before_a_byte_is_kept() -> None:
    store = DepositStore()
    assert put(store, deposit(1, 0, expiry=int(NOW))) is DepositOutcome.EXPIRED
    too_long = deposit(1, 1, expiry=int(NOW) + MAX_TTL + 3600)
    assert put(store, too_long) is DepositOutcome.TTL_TOO_LONG
    week = deposit(1, 2, expiry=int(NOW) + MAX_TTL)  # a week is fine
    assert put(store, week) is DepositOutcome.STORED
    lazy = deposit(1, 3, expiry=LATER, difficulty=0)
    if lazy.work >= DEPOSIT_POW_BITS:  # a free lucky proof: make sure this one is short of work
        lazy = dataclasses.replace(lazy, nonce=bytes(16))
    verdict = store.put(deposit_location(lazy), lazy.encode(), now=NOW, shared=SHARED)
    assert lazy.work < DEPOSIT_POW_BITS
    assert (verdict.outcome, verdict.work) == (DepositOutcome.TOO_LITTLE_WORK, lazy.work)
    assert len(store) == 1


def test_junk_and_every_truncation_is_malformed() -> None:
    store = DepositStore()
    raw = deposit(1, 0, expiry=LATER).encode()
    where = deposit_location(deposit(1, 0))
    for cut in range(len(raw)):
        assert store.put(where, raw[:cut], now=NOW, shared=SHARED).outcome in (
            DepositOutcome.MALFORMED,
        )
    assert store.put(where, b"x" * 4096, now=NOW, shared=SHARED).outcome is DepositOutcome.MALFORMED
    assert len(store) == 0


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=MAX_DEPOSIT_BYTES), st.binary(min_size=32, max_size=32))
def test_any_bytes_anywhere_are_refused_or_kept_never_raise(raw: bytes, where: bytes) -> None:
    store = DepositStore()
    verdict = store.put(where, raw, now=NOW, shared=SHARED)
    assert verdict.outcome is not DepositOutcome.STORED  # no valid proof of work by chance
    outcome, removed = store.delete(where, raw, now=NOW, shared=SHARED)
    assert (outcome, removed) in {
        (DeletionOutcome.MALFORMED, 0),
        (DeletionOutcome.WRONG_LOCATION, 0),
    }


def test_a_full_mailbox_takes_only_more_work_and_says_how_much() -> None:
    store = DepositStore(max_per_mailbox=4)
    cheap = [deposit(1, i, expiry=LATER) for i in range(4)]
    for d in cheap:
        assert put(store, d) is DepositOutcome.STORED
    least = min(d.work for d in cheap)
    # Flooding with the same work fills the mailbox once and no more.
    same = next(d for d in (deposit(1, i, expiry=LATER) for i in range(10, 200)) if d.work <= least)
    verdict = store.put(deposit_location(same), same.encode(), now=NOW, shared=SHARED)
    assert (verdict.outcome, verdict.floor) == (DepositOutcome.FULL, least + 1)
    # A sender who pays the floor gets in: the cheapest deposit makes way.
    better = deposit(1, 99, expiry=LATER, difficulty=least + 1)
    assert put(store, better) is DepositOutcome.STORED
    kept = held(store, 1)
    assert better in kept
    assert len(kept) == 4
    assert min(d.work for d in kept) >= least
    # Other mailboxes are not touched by this one being full.
    assert put(store, deposit(2, 0, expiry=LATER)) is DepositOutcome.STORED


def test_the_global_bounds_hold_and_least_work_goes_first() -> None:
    store = DepositStore(max_deposits=6, max_bytes=MAX_DEPOSIT_BYTES * 2)
    for n in range(6):
        assert put(store, deposit(n, 0, expiry=LATER)) is DepositOutcome.STORED
    least = min(d.work for d in (deposit(n, 0, expiry=LATER) for n in range(6)))
    flood = [deposit(10 + n, 0, expiry=LATER) for n in range(20)]
    for d in flood:
        put(store, d)
        assert len(store) <= 6
    # An honest deposit with more work than anything held still gets in.
    strong = deposit(40, 0, expiry=LATER, difficulty=max(least, DEPOSIT_POW_BITS) + 4)
    assert put(store, strong) is DepositOutcome.STORED
    assert len(store) == 6
    # Bytes: the largest letters fill the byte bound first.
    big = [deposit(50 + n, 0, expiry=LATER, text="x" * 4000) for n in range(3)]
    assert len(big[0].encode()) == 52 + max(sealed_sizes())
    for d in big:
        put(store, d)
        assert store.payload_bytes <= store.max_bytes


def test_an_expired_deposit_makes_room_before_anything_is_evicted() -> None:
    store = DepositStore(max_deposits=2)
    assert put(store, deposit(1, 0, expiry=int(NOW) + 10)) is DepositOutcome.STORED
    assert put(store, deposit(2, 0, expiry=LATER, difficulty=20)) is DepositOutcome.STORED
    weak = deposit(3, 0, expiry=LATER)
    assert put(store, weak, NOW + 20) is DepositOutcome.STORED  # the expired one went
    assert [d.work for d in held(store, 2)] == [deposit(2, 0, expiry=LATER, difficulty=20).work]


def test_only_the_owner_deletes_and_a_deleted_deposit_never_comes_back() -> None:
    store = DepositStore()
    letters = [deposit(1, i, expiry=LATER) for i in range(3)]
    for d in letters:
        put(store, d)
        put(store, d, replica=1)
    where = deposit_location(letters[0])
    # Someone else's mailbox key cannot sign for this one.
    forged = dataclasses.replace(deletion(2, tuple(letters), int(NOW)), mailbox=mailbox(1))
    assert store.delete(where, forged.encode(), now=NOW, shared=SHARED) == (
        DeletionOutcome.REFUSED,
        0,
    )
    # A deletion from long ago (a replay) is refused too.
    old = deletion(1, tuple(letters), int(NOW) - 2 * 3600)
    assert store.delete(where, old.encode(), now=NOW, shared=SHARED)[0] is DeletionOutcome.REFUSED
    # Not at one of the mailbox's positions.
    mine = deletion(1, tuple(letters[:2]), int(NOW))
    elsewhere = deposit_location(deposit(2, 0))
    assert store.delete(elsewhere, mine.encode(), now=NOW, shared=SHARED)[0] is (
        DeletionOutcome.WRONG_LOCATION
    )
    assert len(store) == 6
    # The owner's: both named deposits go from both positions; the third stays.
    assert store.delete(where, mine.encode(), now=NOW, shared=SHARED) == (
        DeletionOutcome.DELETED,
        4,
    )
    assert held(store, 1) == [letters[2]]
    # Replayed by a depositor, or replicated back by a node the deletion missed: refused.
    for d in letters[:2]:
        assert put(store, d, NOW + 10) is DepositOutcome.DELETED
        assert put(store, d, NOW + 10, replica=1) is DepositOutcome.DELETED
    # Replaying the deletion changes nothing.
    assert store.delete(where, mine.encode(), now=NOW + 5, shared=SHARED) == (
        DeletionOutcome.DELETED,
        0,
    )


def test_a_deletion_reaching_a_node_first_stops_the_deposit_arriving_later() -> None:
    store = DepositStore()
    d = deposit(1, 0, expiry=LATER)
    gone = deletion(1, (d,), int(NOW))
    assert store.delete(deposit_location(d), gone.encode(), now=NOW, shared=SHARED) == (
        DeletionOutcome.DELETED,
        0,
    )
    assert put(store, d, NOW + 60) is DepositOutcome.DELETED
    assert store.tombstones == 1
    # Tombstones end once no copy could still be alive.
    store.sweep(NOW + MAX_TTL + 2 * 3600)
    assert store.tombstones == 0


def test_tombstones_are_bounded() -> None:
    store = DepositStore(max_tombstones=3)
    letters = [deposit(1, i, expiry=LATER) for i in range(5)]
    store.delete(
        deposit_location(letters[0]),
        deletion(1, tuple(letters), int(NOW)).encode(),
        now=NOW,
        shared=SHARED,
    )
    assert store.tombstones == 3


def test_pages_fit_a_frame_and_walk_by_deposit_id() -> None:
    store = DepositStore()
    letters = [
        deposit(1, i, expiry=LATER, text="y" * (3000 if i % 3 == 0 else 0)) for i in range(9)
    ]
    for d in letters:
        put(store, d)
    where = deposit_location(letters[0])
    got: list[bytes] = []
    after = b""
    pages = 0
    while True:
        page, more = store.page(where, after, NOW, max_items=4, max_bytes=4096)
        pages += 1
        assert page
        assert len(page) <= 4
        assert len(page) == 1 or sum(map(len, page)) <= 4096
        got += page
        if not more:
            break
        after = Deposit.decode(page[-1]).deposit_id
    assert sorted(Deposit.decode(r).deposit_id for r in got) == sorted(
        d.deposit_id for d in letters
    )
    assert [Deposit.decode(r).deposit_id for r in got] == sorted(d.deposit_id for d in letters)
    assert pages >= 3
    # One deposit larger than the page budget still comes out, alone.
    page, _ = store.page(where, b"", NOW, max_items=4, max_bytes=10)
    assert len(page) == 1
    assert store.page(bytes(32), b"", NOW, max_items=4, max_bytes=4096) == ([], False)


def test_republishing_is_due_once_nobody_stored_a_deposit_for_an_interval() -> None:
    store = DepositStore()
    d = deposit(1, 0, expiry=LATER + 10 * 3600)
    put(store, d)
    where = deposit_location(d)
    current = SHARED.current
    assert store.due(NOW + 100, 3600, current, 10) == []
    # Another holder republished it to us meanwhile: still not due.
    put(store, d, NOW + 3000)
    assert store.due(NOW + 3700, 3600, current, 10) == []
    due = store.due(NOW + 6700, 3600, current, 10)
    assert [(loc, target.location, deposits) for loc, target, deposits in due] == [
        (where, where, [d])
    ]
    store.replicated(where, NOW + 6700, current)
    assert store.due(NOW + 6800, 3600, current, 10) == []


def test_deposits_under_a_value_no_longer_current_move_at_once() -> None:
    store = DepositStore()
    d = deposit(1, 0, expiry=LATER)
    put(store, d, replica=1)
    new = SharedRandom(current=bytes(range(1, 33)), previous=SHARED.current)
    due = store.due(NOW + 1, 3600, new.current, 10)
    assert len(due) == 1
    location, target, deposits = due[0]
    assert location == deposit_location(d, 1)
    assert target == positions(d.key, new)[1]  # the same replica, under the current value
    assert deposits == [d]
    store.replicated(location, NOW + 1, new.current)
    assert store.due(NOW + 2, 3600, new.current, 10) == []
    # From now on the current position's holders keep it: the old copy is not republished.
    assert store.due(NOW + 3 * 3600, 3600, new.current, 10) == []


def test_a_full_store_fits_in_bounded_memory() -> None:
    rng = random.Random(3)
    store = DepositStore(max_deposits=200)
    for n in range(260):
        put(store, deposit(100 + n, rng.randrange(3), expiry=LATER))
    assert len(store) == 200


@pytest.mark.parametrize("bound", [0, -1])
def test_a_store_holds_at_least_one_deposit(bound: int) -> None:
    with pytest.raises(LocalError):
        DepositStore(max_deposits=bound)
    with pytest.raises(LocalError):
        DepositStore(max_bytes=MAX_DEPOSIT_BYTES - 1)
