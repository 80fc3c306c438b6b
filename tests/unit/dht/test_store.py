import dataclasses

import pytest

from anonsip.dht import MAX_PAYLOAD, DhtRecord, RecordStore, StoreOutcome, TokenBucket, record_key

from .helpers import contact, record

PEER = contact(1).node_id
OTHER = contact(2).node_id


def test_a_good_record_is_stored_and_found_under_the_hash_of_its_key() -> None:
    store = RecordStore()
    r = record(0, expiry=1000)
    assert r.key == record_key(r.public_key)
    assert store.put(r, peer=PEER, now=0.0) is StoreOutcome.STORED
    assert store.get(r.key, 0.0) == r
    assert store.put(r, peer=OTHER, now=1.0) is StoreOutcome.REFRESHED
    assert len(store) == 1


def test_forged_signature_is_refused() -> None:
    store = RecordStore()
    r = record(0)
    forged = dataclasses.replace(r, payload=b"evil")
    assert store.put(forged, peer=PEER, now=0.0) is StoreOutcome.BAD_SIGNATURE
    wrong_sig = dataclasses.replace(r, signature=bytes(64))
    assert store.put(wrong_sig, peer=PEER, now=0.0) is StoreOutcome.BAD_SIGNATURE


def test_a_record_under_another_key_is_refused() -> None:
    # A signature made by key 0 presented with key 1: the key (hash of the
    # public key) moves, and the signature no longer verifies.
    store = RecordStore()
    r = dataclasses.replace(record(0), public_key=record(1).public_key)
    assert store.put(r, peer=PEER, now=0.0) is StoreOutcome.BAD_SIGNATURE
    assert not r.is_valid_for(record(0).key, 0.0)
    assert not record(0).is_valid_for(record(1).key, 0.0)


def test_rollback_and_replay_are_refused() -> None:
    store = RecordStore()
    v1, v2 = record(0, seq=1), record(0, seq=2)
    assert store.put(v2, peer=PEER, now=0.0) is StoreOutcome.STORED
    assert store.put(v1, peer=PEER, now=1.0) is StoreOutcome.STALE
    same_seq = record(0, seq=2, payload=b"other")
    assert store.put(same_seq, peer=PEER, now=1.0) is StoreOutcome.CONFLICT
    assert store.get(v2.key, 1.0) == v2
    v3 = record(0, seq=3)
    assert store.put(v3, peer=OTHER, now=2.0) is StoreOutcome.STORED
    assert store.get(v3.key, 2.0) == v3


def test_oversized_expired_and_too_long_expiry_are_refused() -> None:
    store = RecordStore(max_ttl=3600.0)
    big = record(0, payload=bytes(MAX_PAYLOAD + 1))
    assert store.put(big, peer=PEER, now=0.0) is StoreOutcome.TOO_LARGE
    assert store.put(record(0, expiry=100), peer=PEER, now=100.0) is StoreOutcome.EXPIRED
    assert store.put(record(0, expiry=3602), peer=PEER, now=1.0) is StoreOutcome.TTL_TOO_LONG
    assert store.put(record(0, expiry=3601), peer=PEER, now=1.0) is StoreOutcome.STORED
    assert len(store) == 1


def test_expiry_sweep() -> None:
    store = RecordStore()
    store.put(record(0, expiry=100), peer=PEER, now=0.0)
    store.put(record(1, expiry=200), peer=PEER, now=0.0)
    assert store.get(record(0).key, 100.0) is None  # expired copies are never served
    assert store.sweep(150.0) == 1
    assert len(store) == 1
    assert store.records_of(PEER) == 1


def test_per_peer_quota() -> None:
    store = RecordStore(max_per_peer=3)
    for n in range(3):
        assert store.put(record(n), peer=PEER, now=0.0) is StoreOutcome.STORED
    assert store.put(record(3), peer=PEER, now=0.0) is StoreOutcome.QUOTA
    assert store.put(record(0, seq=2), peer=PEER, now=0.0) is StoreOutcome.STORED  # an update
    assert store.put(record(3), peer=OTHER, now=0.0) is StoreOutcome.STORED
    assert store.records_of(PEER) == 3


def test_total_bound() -> None:
    store = RecordStore(max_records=2)
    assert store.put(record(0), peer=PEER, now=0.0) is StoreOutcome.STORED
    assert store.put(record(1), peer=OTHER, now=0.0) is StoreOutcome.STORED
    assert store.put(record(2), peer=contact(3).node_id, now=0.0) is StoreOutcome.FULL
    assert len(store) == 2


def test_rate_limit_refills_with_the_injected_clock() -> None:
    store = RecordStore(rate=0.5, burst=2)
    outcomes = [store.put(record(n), peer=PEER, now=0.0) for n in range(3)]
    assert outcomes == [StoreOutcome.STORED, StoreOutcome.STORED, StoreOutcome.RATE_LIMITED]
    assert store.put(record(3), peer=OTHER, now=0.0) is StoreOutcome.STORED  # per peer
    assert store.put(record(4), peer=PEER, now=1.0) is StoreOutcome.RATE_LIMITED
    assert store.put(record(4), peer=PEER, now=2.0) is StoreOutcome.STORED


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
        DhtRecord(public_key=r.public_key, seq=1, expiry=1, payload=b"", signature=b"x")
