"""Records checked as the kind they claim: registrations only, any other payload refused."""

import msgpack
from hypothesis import given, settings
from hypothesis import strategies as st

from anonsip.dht import KindVerdict, RecordKind, check_kind, max_payload_of
from anonsip.registration import MAX_VALUE_BYTES

from .helpers import record


def test_a_registration_is_one() -> None:
    assert check_kind(record(1)) is KindVerdict.OK
    assert max_payload_of(RecordKind.REGISTRATION) == MAX_VALUE_BYTES


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=MAX_VALUE_BYTES + 50), st.integers(0, 255))
def test_any_other_payload_is_refused_and_nothing_raises(payload: bytes, kind: int) -> None:
    verdict = check_kind(record(2, payload=payload, kind=kind))
    if kind != RecordKind.REGISTRATION:
        assert verdict is KindVerdict.UNKNOWN_KIND
    elif len(payload) > MAX_VALUE_BYTES:
        assert verdict is KindVerdict.TOO_LARGE
    else:
        assert verdict is KindVerdict.MALFORMED


@settings(max_examples=200, deadline=None)
@given(st.data())
def test_a_mutated_registration_is_refused(data: st.DataObject) -> None:
    good = record(3).payload
    body = bytearray(good)
    for _ in range(data.draw(st.integers(1, 3))):
        body[data.draw(st.integers(0, len(body) - 1))] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(0, len(body)))
    mutated = bytes(body[:cut])
    verdict = check_kind(record(3, payload=mutated))
    assert verdict is (KindVerdict.OK if mutated == good else KindVerdict.MALFORMED)


def test_a_registration_signed_for_another_shape_is_refused() -> None:
    # Canonical form only: the same fields re-encoded differently do not pass.
    fields = msgpack.unpackb(record(4).payload)
    loose = msgpack.packb(fields, use_bin_type=False)
    assert loose != record(4).payload
    assert check_kind(record(4, payload=loose)) is KindVerdict.MALFORMED
