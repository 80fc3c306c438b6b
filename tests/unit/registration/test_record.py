"""Registration records: round trips, period boundaries, rollback, wrong key, tampering."""

import dataclasses

import msgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from anonsip import LocalError, RemoteProtocolError
from anonsip.dht import record_key as dht_key
from anonsip.identity import Identity, TimePeriods, blind_public_key
from anonsip.registration import (
    MAX_EFFORT,
    MAX_VALUE_BYTES,
    BadSignature,
    Contact,
    MalformedRecord,
    Presence,
    RecordError,
    RecordExpired,
    Registration,
    RolledBack,
    WrongKey,
    WrongPeriod,
    onion_address,
    onion_public_key,
    open_record,
    record_period,
    seal,
    verify_outer,
)
from anonsip.registration._record import PADDED_SIZE, _decode_inner, _encode_inner
from tests.unit.identity._helpers import CountingRandom

PERIODS = TimePeriods(length_minutes=60, rotation_offset_minutes=0)
ALICE = Identity(seed=bytes([1]) * 32)
BOB = Identity(seed=bytes([2]) * 32)
PERIOD = 480_000
START = PERIODS.start_of(PERIOD)
END = PERIODS.end_of(PERIOD)
ONION = onion_address(bytes(range(32)))


def _record(sequence: int = 1, expires: int = END, contacts: int = 1) -> Registration:
    return Registration(
        contacts=tuple(
            Contact(onion=onion_address(bytes([i]) * 32), port=5060 + i) for i in range(contacts)
        ),
        presence=Presence.AVAILABLE,
        expires=expires,
        sequence=sequence,
        note="at my desk",
    )


def _seal(record: Registration, identity: Identity = ALICE, period: int = PERIOD) -> bytes:
    return seal(identity, period, record, rng=CountingRandom(), periods=PERIODS)


def _open(
    value: bytes, *, period: int = PERIOD, now: int = START + 10, last_sequence: int | None = None
) -> Registration:
    return open_record(
        ALICE.public_key, period, value, now, last_sequence=last_sequence, periods=PERIODS
    )


def test_round_trip_and_outer_view() -> None:
    record = _record(sequence=7, contacts=3)
    value = _seal(record)
    assert _open(value) == record
    blinded, seq, expires = verify_outer(value)
    assert blinded == blind_public_key(ALICE.public_key, PERIOD, PERIODS)
    assert (seq, expires) == (7, END)
    assert record_period(value) == PERIOD
    assert len(dht_key(blinded)) == 32
    # The outer value hides the identity and the contacts.
    assert ALICE.public_key not in value
    assert onion_public_key(record.contacts[0].onion) not in value
    # Padding: the size does not depend on the number of contacts.
    assert len(_seal(_record(contacts=0))) == len(_seal(_record(contacts=8)))
    # Repeatable with the same randomness.
    assert _seal(record) == value


def test_period_boundary() -> None:
    value = _seal(_record(expires=END))
    assert _open(value, now=END - 1).sequence == 1
    with pytest.raises(RecordExpired):
        _open(value, now=END)
    assert PERIODS.number_at(END) == PERIOD + 1
    with pytest.raises(WrongPeriod, match=str(PERIOD)):
        _open(value, period=PERIOD + 1, now=END)
    # The next period's record is signed by a different, unlinkable key.
    nxt = _seal(_record(expires=PERIODS.end_of(PERIOD + 1)), period=PERIOD + 1)
    assert verify_outer(nxt).blinded_public_key != verify_outer(value).blinded_public_key
    assert _open(nxt, period=PERIOD + 1, now=END).sequence == 1


def test_expiry_must_fit_the_period() -> None:
    with pytest.raises(Exception, match="expire"):
        _seal(_record(expires=START))
    with pytest.raises(Exception, match="expire"):
        _seal(_record(expires=PERIODS.end_of(PERIOD + 1) + 1))


def test_rollback_is_refused() -> None:
    value = _seal(_record(sequence=5))
    assert _open(value, last_sequence=5).sequence == 5
    assert _open(value, last_sequence=4).sequence == 5
    with pytest.raises(RolledBack):
        _open(value, last_sequence=6)


def test_wrong_key() -> None:
    value = _seal(_record(), identity=BOB)
    verify_outer(value)  # valid for a storage node
    with pytest.raises(WrongKey):
        _open(value)


def test_storage_nodes_refuse_forgeries() -> None:
    value = _seal(_record())
    import msgpack

    fields = msgpack.unpackb(value)
    fields[1] = blind_public_key(BOB.public_key, PERIOD, PERIODS)  # claim another key
    with pytest.raises(BadSignature):
        verify_outer(msgpack.packb(fields))
    fields = msgpack.unpackb(value)
    fields[3] += 1  # bump the sequence number
    with pytest.raises(BadSignature):
        verify_outer(msgpack.packb(fields))


def test_every_bit_flip_is_refused() -> None:
    value = _seal(_record())
    for i in range(len(value)):
        for bit in range(8):
            bad = bytearray(value)
            bad[i] ^= 1 << bit
            with pytest.raises(RecordError):
                verify_outer(bytes(bad))
            with pytest.raises(RecordError):
                _open(bytes(bad))


def test_every_truncation_is_refused() -> None:
    value = _seal(_record())
    for cut in range(len(value)):
        with pytest.raises(MalformedRecord):
            verify_outer(value[:cut])


@settings(max_examples=200)
@given(st.binary(max_size=1200))
def test_garbage_raises_only_record_errors(junk: bytes) -> None:
    with pytest.raises(RecordError):
        verify_outer(junk)
    with pytest.raises(RemoteProtocolError):
        _open(junk)


@settings(max_examples=30, deadline=None)
@given(
    st.lists(st.tuples(st.binary(min_size=32, max_size=32), st.integers(1, 65535)), max_size=8),
    st.sampled_from(list(Presence)),
    st.integers(0, 2**64 - 1),
    st.text(max_size=40),
)
def test_round_trip_property(
    contacts: list[tuple[bytes, int]], presence: Presence, sequence: int, note: str
) -> None:
    record = Registration(
        contacts=tuple(Contact(onion=onion_address(k), port=p) for k, p in contacts),
        presence=presence,
        expires=END,
        sequence=sequence,
        note=note,
    )
    assert _open(_seal(record)) == record


def test_onion_addresses_are_validated() -> None:
    assert onion_public_key(ONION) == bytes(range(32))
    assert onion_public_key(ONION.upper()) == bytes(range(32))
    bad = ONION[:10] + ("a" if ONION[10] != "a" else "b") + ONION[11:]
    with pytest.raises(ValueError, match="checksum"):
        onion_public_key(bad)
    with pytest.raises(Exception, match="onion"):
        Contact(onion="example.com", port=1)
    with pytest.raises(Exception, match="port"):
        Contact(onion=ONION, port=0)


def test_tor_onion_address_vector() -> None:
    # torproject/tor src/test/test_hs_common.c, test_build_address: the v3
    # address of RFC 8032 test 1's public key.
    key = bytes.fromhex("d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a")
    address = "25njqamcweflpvkl73j4szahhihoc4xt3ktcgjnpaingr5yhkenl5sid.onion"
    assert onion_address(key) == address
    assert onion_public_key(address) == key


def test_the_size_bound_is_the_longest_canonical_value() -> None:
    value = _seal(_record(sequence=2**64 - 1))
    # Every integer at its longest (9 bytes): same shape, exactly the bound.
    longest = value.replace(msgpack.packb(PERIOD), msgpack.packb(2**64 - 1), 1).replace(
        msgpack.packb(END), msgpack.packb(2**64 - 2), 1
    )
    assert len(value) < len(longest) == MAX_VALUE_BYTES == 684
    with pytest.raises(BadSignature):
        verify_outer(longest)  # within the bound: parsed, then refused for its signature
    with pytest.raises(MalformedRecord, match="too large"):
        verify_outer(longest + b"\x00")


def test_the_advertised_effort_round_trips() -> None:
    for effort in (0, 1, 20, MAX_EFFORT):
        record = dataclasses.replace(_record(), effort=effort)
        assert _open(_seal(record)).effort == effort


def test_a_record_without_the_effort_field_reads_as_not_said() -> None:
    # What a node from before the field sealed: three keys, no "e"; and effort 0 is sealed
    # the same way (one encoding per record).
    old = msgpack.packb({"c": [[bytes(range(32)), 5060]], "p": "available", "n": ""})
    padded = (len(old).to_bytes(2, "big") + old).ljust(PADDED_SIZE, b"\0")
    assert _decode_inner(padded, 1, END).effort == 0
    assert _encode_inner(dataclasses.replace(_record(), effort=0)) == _encode_inner(_record())


@pytest.mark.parametrize(
    "effort", [0, -1, MAX_EFFORT + 1, 2**64 - 1, True, 1.5, "20", b"\x14", None]
)
def test_a_hostile_advertised_effort_is_refused(effort: object) -> None:
    content = msgpack.packb({"c": [], "p": "available", "n": "", "e": effort})
    padded = (len(content).to_bytes(2, "big") + content).ljust(PADDED_SIZE, b"\0")
    with pytest.raises(MalformedRecord):
        _decode_inner(padded, 1, END)


@pytest.mark.parametrize("effort", [-1, MAX_EFFORT + 1, True])
def test_a_registration_cannot_advertise_an_impossible_effort(effort: int) -> None:
    with pytest.raises(LocalError):
        dataclasses.replace(_record(), effort=effort)
