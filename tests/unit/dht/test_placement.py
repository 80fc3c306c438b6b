"""Record placement under the shared random value: Tor's disaster values, parsing tor's
values, the positions and the agreement rules."""

import base64
import hashlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from anonsip.dht import (
    SharedRandom,
    disaster_value,
    parse_tor_shared_random,
    positions,
    shared_random_at,
)
from anonsip.dht._placement import position, value_of_location
from anonsip.identity import TOR_TIME_PERIODS

# tor's test_hs_common.c test_disaster_srv (period 1) and onionbalance's vectors from it.
TOR_DISASTER = {
    1: "F8A4948707653837FA44ABB5BBC75A12F6F101E7F8FAF699B9715F4965D3507D",
    2: "C17966DF8B4834638E1B7BF38944C4995B92E89749D1623E417A44938D08FD67",
    3: "A3BAB4327F9C2F8B30A126DAD3ABCCE12DD813169A5D924244B57987AEE413C2",
    4: "C79ABE7116FCF7810F7A5C76198B97339990C738B456EFDBC1399189927BADEC",
    5: "941D5FE4289FBF2F853766EAC4B948B51C81A4137A44516342ABC80518E0183D",
}


@pytest.mark.parametrize(("period", "expected"), sorted(TOR_DISASTER.items()))
def test_disaster_values_are_tors(period: int, expected: str) -> None:
    assert disaster_value(period, 1440).hex().upper() == expected


# A value as a private network's tor printed it (GETINFO sr/current).
SEEN = "zxJao+gBmFMSezvz/VXkEWEQJD5b/z+7AXNCGoLFVW0="


def test_tors_values_are_read_strictly() -> None:
    raw = parse_tor_shared_random(SEEN)
    assert raw is not None
    assert base64.b64encode(raw).decode() == SEEN
    assert parse_tor_shared_random(SEEN + "\r\n") == raw
    for bad in (
        "",
        SEEN[:-1],
        SEEN[:-2] + "==",
        "!" + SEEN[1:],
        SEEN.replace("z", "é", 1),
        base64.b64encode(bytes(33)).decode()[:44],
        SEEN[:43] + "A",
    ):
        assert parse_tor_shared_random(bad) is None, bad


@given(st.text(max_size=80))
def test_any_text_from_tor_gives_a_value_or_none(text: str) -> None:
    got = parse_tor_shared_random(text)
    assert got is None or len(got) == 32


def test_missing_values_fall_back_to_disaster_values() -> None:
    now = float(TOR_TIME_PERIODS.start_of(20_000) + 10)
    disaster = disaster_value(20_000, 1440)
    cur, prev = bytes([1]) * 32, bytes([2]) * 32
    assert shared_random_at(now, cur, prev) == SharedRandom(current=cur, previous=prev)
    # No value yet: everybody uses the period's disaster value.
    assert shared_random_at(now, None, None) == SharedRandom.single(disaster)
    # The first value appears: the disaster value everybody used is the previous one.
    assert shared_random_at(now, cur, None) == SharedRandom(current=cur, previous=disaster)
    assert shared_random_at(now, None, prev) == SharedRandom(current=disaster, previous=prev)


def test_positions_mix_the_value_and_the_replica() -> None:
    key = hashlib.sha3_256(b"a blinded key").digest()
    a, b = bytes([1]) * 32, bytes([2]) * 32
    shared = SharedRandom(current=a, previous=b)
    where = positions(key, shared, 2)
    assert [p.location for p in where] == [
        position(key, a, 0),
        position(key, a, 1),
        position(key, b, 0),
        position(key, b, 1),
    ]
    assert (
        position(key, a, 0)
        == hashlib.sha3_256(b"anonsip-dht-store-at" + key + a + b"\x00").digest()
    )
    for p in where:
        assert value_of_location(p.location, key, shared, 2) == p.value
    assert value_of_location(position(key, a, 2), key, shared, 2) is None  # replica out of range
    assert value_of_location(position(key, a, 0), bytes(32), shared, 2) is None  # other key
    assert len(positions(key, SharedRandom.single(a), 2)) == 2
    with pytest.raises(ValueError, match="replica"):
        positions(key, shared, 0)
    with pytest.raises(ValueError, match="32 bytes"):
        SharedRandom(current=b"short", previous=a)


def test_publisher_and_looker_one_value_apart_still_meet() -> None:
    """Publishers store under current and previous, lookers ask current then previous."""
    key = hashlib.sha3_256(b"k").digest()
    old, mid, new = (bytes([n]) * 32 for n in (1, 2, 3))
    for publisher, looker in (
        (SharedRandom(current=new, previous=mid), SharedRandom(current=mid, previous=old)),
        (SharedRandom(current=mid, previous=old), SharedRandom(current=new, previous=mid)),
    ):
        stored = {p.location for p in positions(key, publisher)}
        asked = [p.location for p in positions(key, looker)]
        assert stored & set(asked)
