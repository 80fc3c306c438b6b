import dataclasses
import gc
import tracemalloc

import pytest

from anonsip.dht import (
    MAX_PAYLOAD,
    DhtRecord,
    NodeId,
    RecordKind,
    RecordStore,
    SharedRandom,
    StoreOutcome,
    TokenBucket,
    max_payload_of,
    positions,
    record_key,
)
from anonsip.registration import MAX_VALUE_BYTES

from .helpers import SHARED, contact, location, record

OWN = contact(1).node_id


def put(store: RecordStore, rec: DhtRecord, now: float = 0.0, replica: int = 0) -> StoreOutcome:
    return store.put(location(rec, replica), rec, now=now, shared=SHARED, own=OWN)


def test_a_good_record_is_stored_at_its_location_and_found_there() -> None:
    store = RecordStore()
    r = record(0, expiry=1000)
    assert r.key == record_key(r.public_key)
    assert put(store, r) is StoreOutcome.STORED
    assert store.get(location(r), 0.0) == r
    assert store.get(r.key, 0.0) is None  # stored by location, not by key
    assert put(store, r, 1.0) is StoreOutcome.REFRESHED
    assert put(store, r, 1.0, replica=1) is StoreOutcome.STORED  # another replica position
    assert len(store) == 2


def test_forged_signature_is_refused() -> None:
    store = RecordStore()
    r = record(0)
    forged = dataclasses.replace(r, payload=r.payload[:-1] + b"\x00")
    assert put(store, forged) is StoreOutcome.BAD_SIGNATURE
    wrong_sig = dataclasses.replace(r, signature=bytes(64))
    assert put(store, wrong_sig) is StoreOutcome.BAD_SIGNATURE
    other_kind = dataclasses.replace(r, kind=RecordKind.MAILBOX)  # signed as a registration
    assert put(store, other_kind) is StoreOutcome.UNKNOWN_KIND


def test_a_record_under_another_key_is_refused() -> None:
    # A signature made by key 0 presented with key 1: the key (hash of the
    # public key) moves, and the signature no longer verifies.
    store = RecordStore()
    r = dataclasses.replace(record(0), public_key=record(1).public_key)
    assert put(store, r) is StoreOutcome.BAD_SIGNATURE
    assert not r.is_valid_for(record(0).key, 0.0)
    assert not record(0).is_valid_for(record(1).key, 0.0)


def test_a_record_is_taken_only_at_its_own_positions() -> None:
    store = RecordStore()
    r, other = record(0), record(1)
    # Another record's position, a made-up point, a position under an unknown value.
    elsewhere = SharedRandom.single(bytes(32))
    for where in (location(other), bytes(32), location(r, shared=elsewhere)):
        assert store.put(where, r, now=0.0, shared=SHARED) is StoreOutcome.WRONG_LOCATION
    # Under the previous value it is fine: nodes one consensus behind still meet us.
    moved = SharedRandom(current=bytes(32), previous=SHARED.current)
    assert store.put(location(r), r, now=0.0, shared=moved) is StoreOutcome.STORED
    assert len(store) == 1
    # Once that value is out of use altogether, the copy goes at the next sweep.
    assert store.sweep(1.0, moved) == 0
    assert store.sweep(1.0, SharedRandom.single(bytes(32))) == 1
    assert len(store) == 0


def test_each_kind_is_checked_as_what_it_claims() -> None:
    store = RecordStore()
    assert max_payload_of(RecordKind.REGISTRATION) == MAX_VALUE_BYTES == 684
    assert max_payload_of(RecordKind.MAILBOX) == 0  # not stored yet
    junk = record(0, payload=b"j" * 600)  # well signed, but not a registration
    assert put(store, junk) is StoreOutcome.MALFORMED
    big = record(0, payload=b"j" * (MAX_VALUE_BYTES + 1))
    assert put(store, big) is StoreOutcome.TOO_LARGE
    kb4 = record(0, payload=b"j" * 4096)  # what the old store took
    assert put(store, kb4) is StoreOutcome.TOO_LARGE
    mailbox = record(0, payload=b"m" * 100, kind=RecordKind.MAILBOX)
    assert put(store, mailbox) is StoreOutcome.UNKNOWN_KIND
    unknown = record(0, payload=b"m", kind=200)
    assert put(store, unknown) is StoreOutcome.UNKNOWN_KIND
    # A registration signed by one blinded key inside a record of another:
    # both signatures verify, but the record does not describe its payload.
    borrowed = record(1, seq=1, payload=record(0).payload)
    assert put(store, borrowed) is StoreOutcome.MALFORMED
    # Same key, but the outer seq or expiry disagree with the sealed ones.
    assert put(store, record(0, seq=2, payload=record(0, seq=1).payload)) is StoreOutcome.MALFORMED
    assert len(store) == 0
    assert MAX_PAYLOAD >= MAX_VALUE_BYTES


def test_rollback_and_replay_are_refused() -> None:
    store = RecordStore()
    v1, v2 = record(0, seq=1), record(0, seq=2)
    assert put(store, v2) is StoreOutcome.STORED
    assert put(store, v1, 1.0) is StoreOutcome.STALE
    same_seq = record(0, seq=2, expiry=9000)
    assert put(store, same_seq, 1.0) is StoreOutcome.CONFLICT
    assert store.get(location(v2), 1.0) == v2
    v3 = record(0, seq=3)
    assert put(store, v3, 2.0) is StoreOutcome.STORED
    assert store.get(location(v3), 2.0) == v3


def test_oversized_expired_and_too_long_expiry_are_refused() -> None:
    store = RecordStore(max_ttl=3600.0)
    assert put(store, record(0, expiry=100), 100.0) is StoreOutcome.EXPIRED
    assert put(store, record(0, expiry=3602), 1.0) is StoreOutcome.TTL_TOO_LONG
    assert put(store, record(0, expiry=3601), 1.0) is StoreOutcome.STORED
    assert len(store) == 1


def test_expiry_sweep() -> None:
    store = RecordStore()
    put(store, record(0, expiry=100))
    put(store, record(1, expiry=200))
    assert store.get(location(record(0, expiry=100)), 100.0) is None  # never served expired
    assert store.sweep(150.0) == 1
    assert len(store) == 1


def test_updates_of_one_record_are_rate_limited_without_knowing_the_sender() -> None:
    store = RecordStore(key_rate=0.5, key_burst=2)
    outcomes = [put(store, record(0, seq=s)) for s in (1, 2, 3)]
    assert outcomes == [StoreOutcome.STORED, StoreOutcome.STORED, StoreOutcome.RATE_LIMITED]
    assert put(store, record(1)) is StoreOutcome.STORED  # per record key
    assert put(store, record(0, seq=3), 1.0) is StoreOutcome.RATE_LIMITED
    assert put(store, record(0, seq=3), 2.0) is StoreOutcome.STORED
    # An identical copy (a refresh, a replica from another node) costs nothing.
    assert put(store, record(0, seq=3), 2.0) is StoreOutcome.REFRESHED
    # Nor does a new record of another key: nothing limits new records as a whole,
    # which would let anyone with free keys crowd honest ones out.
    assert [put(store, record(n), 2.0) for n in range(2, 8)] == [StoreOutcome.STORED] * 6


def test_nobody_else_can_spend_a_records_update_budget() -> None:
    store = RecordStore(key_rate=0.5, key_burst=2)
    victim = record(0, seq=5)
    for seq in range(6, 20):  # newer-looking, but forged: they cost the victim nothing
        forged = dataclasses.replace(record(0, seq=seq), signature=bytes(64))
        assert put(store, forged) is StoreOutcome.BAD_SIGNATURE
    assert put(store, victim) is StoreOutcome.STORED
    assert put(store, record(0, seq=6)) is StoreOutcome.STORED


def test_bounds_keep_what_this_node_is_responsible_for() -> None:
    recs = [record(n) for n in range(6)]
    by_distance = sorted(recs, key=lambda r: OWN.distance(NodeId.from_bytes(location(r))))
    store = RecordStore(max_records=3)
    for r in by_distance[3:]:  # the three farthest fill the store
        assert put(store, r) is StoreOutcome.STORED
    # A nearer record pushes out the farthest; a farther one is refused.
    assert put(store, by_distance[0]) is StoreOutcome.STORED
    assert store.get(location(by_distance[5]), 0.0) is None
    assert len(store) == 3
    assert put(store, by_distance[5]) is StoreOutcome.FULL
    # Without our id (no notion of near), a full store refuses.
    plain = RecordStore(max_records=1)
    assert plain.put(location(recs[0]), recs[0], now=0.0, shared=SHARED) is StoreOutcome.STORED
    assert plain.put(location(recs[1]), recs[1], now=0.0, shared=SHARED) is StoreOutcome.FULL


def test_payload_bytes_are_bounded() -> None:
    size = len(record(0).payload)
    store = RecordStore(max_bytes=2 * size + 10)
    recs = sorted(
        (record(n) for n in range(4)),
        key=lambda r: -OWN.distance(NodeId.from_bytes(location(r))),
    )
    assert [put(store, r) for r in recs[:2]] == [StoreOutcome.STORED] * 2
    assert store.payload_bytes == 2 * size
    assert put(store, recs[2]) is StoreOutcome.STORED  # nearer: the farthest makes room
    assert store.payload_bytes <= 2 * size + 10
    assert len(store) == 2


def test_expired_records_make_room() -> None:
    store = RecordStore(max_records=1)
    assert put(store, record(0, expiry=100)) is StoreOutcome.STORED
    far = record(1)
    assert put(store, far, 200.0) is StoreOutcome.STORED
    assert len(store) == 1


def test_replication_takes_turns_through_the_store() -> None:
    store = RecordStore()
    recs = [record(n) for n in range(5)]
    for r in recs:
        put(store, r)
    seen: list[bytes] = []
    cursor = b""
    for _ in range(5):
        batch = store.after(cursor, 2, 0.0)
        seen += [loc for loc, _ in batch]
        cursor = batch[-1][0]
    # Every record comes round, in turn, and the walk wraps around.
    assert sorted(set(seen)) == sorted(location(r) for r in recs)
    assert seen[:5] == sorted(location(r) for r in recs)
    assert seen[5:] == sorted(location(r) for r in recs)[:5]


def test_token_bucket() -> None:
    bucket = TokenBucket(rate=1.0, burst=1.0, tokens=1.0, updated=0.0)
    assert bucket.take(0.0)
    assert not bucket.take(0.5)
    assert bucket.take(1.0)
    assert not bucket.take(0.0)  # a clock going backwards earns nothing


def test_record_fields_are_checked() -> None:
    r = record(0)
    with pytest.raises(ValueError, match="64-bit"):
        dataclasses.replace(r, seq=-1)
    with pytest.raises(ValueError, match="signature"):
        DhtRecord(kind=1, public_key=r.public_key, seq=1, expiry=1, payload=b"", signature=b"x")
    with pytest.raises(ValueError, match="kind"):
        dataclasses.replace(r, kind=256)


def test_positions_are_replicas_under_each_value() -> None:
    r = record(0)
    moved = SharedRandom(current=bytes(32), previous=SHARED.current)
    where = positions(r.key, moved, 3)
    assert [(p.value, p.replica) for p in where] == [
        (bytes(32), 0),
        (bytes(32), 1),
        (bytes(32), 2),
        (SHARED.current, 0),
        (SHARED.current, 1),
        (SHARED.current, 2),
    ]
    assert len({p.location for p in where}) == 6


def test_a_full_store_fits_in_a_bounded_amount_of_memory() -> None:
    recs = [record(n, expiry=9000 + n) for n in range(300)]
    gc.collect()
    tracemalloc.start()
    try:
        store = RecordStore()
        before = tracemalloc.get_traced_memory()[0]
        for r in recs:
            assert put(store, r) is StoreOutcome.STORED
        added = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    # What the store adds per record, plus the record itself (payload, key, signature).
    per_record = added / len(recs) + len(recs[0].payload) + 400
    assert per_record < 1600
    assert store.max_records * per_record < 64 * 1024 * 1024
    assert store.max_records * MAX_VALUE_BYTES <= store.max_bytes
