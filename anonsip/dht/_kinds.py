"""Checking a record as the kind it claims to be, before a storing node keeps it.

A DHT node stores nothing it cannot check. Each ``RecordKind`` has a size
cap and a validator, and a record of any other kind is refused:

* ``REGISTRATION``: the payload must be a canonical sealed registration
  (``anonsip.registration.verify_outer``: strict shape, fixed-size
  ciphertext, its own signature verifying) made by the same blinded key
  that signed the record, with the same sequence number and expiry. At most
  ``anonsip.registration.MAX_VALUE_BYTES`` (684) bytes.
* ``MAILBOX``: reserved for mailbox deposits; refused until they exist.
  Adding it is one entry in ``_VALIDATORS`` with its own cap and check.

``registration_record`` makes the DHT record of a registration the way
storing nodes check it: sealed for the period, signed by the period's
blinded key.
"""

from __future__ import annotations

import enum
from collections.abc import Callable

from anonsip.dht._record import DhtRecord, RecordKind, sign_record
from anonsip.identity import TOR_TIME_PERIODS, BlindedKey, Identity, RandomSource, TimePeriods
from anonsip.registration import MAX_VALUE_BYTES, RecordError, Registration, seal, verify_outer

__all__ = ["KindVerdict", "check_kind", "max_payload_of", "registration_record"]


class KindVerdict(enum.Enum):
    OK = "ok"
    UNKNOWN_KIND = "unknown-kind"
    TOO_LARGE = "too-large"
    MALFORMED = "malformed"


def _registration(record: DhtRecord) -> KindVerdict:
    try:
        outer = verify_outer(record.payload)
    except RecordError:
        return KindVerdict.MALFORMED
    if (outer.blinded_public_key, outer.sequence, outer.expires) != (
        record.public_key,
        record.seq,
        record.expiry,
    ):
        return KindVerdict.MALFORMED
    return KindVerdict.OK


_VALIDATORS: dict[int, tuple[int, Callable[[DhtRecord], KindVerdict]]] = {
    RecordKind.REGISTRATION: (MAX_VALUE_BYTES, _registration),
}


def max_payload_of(kind: int) -> int:
    """The size cap of ``kind`` (0 for a kind this node does not store)."""
    entry = _VALIDATORS.get(kind)
    return 0 if entry is None else entry[0]


def check_kind(record: DhtRecord) -> KindVerdict:
    """Whether ``record``'s payload is what its kind says (the caller checks its signature)."""
    entry = _VALIDATORS.get(record.kind)
    if entry is None:
        return KindVerdict.UNKNOWN_KIND
    cap, validate = entry
    if len(record.payload) > cap:
        return KindVerdict.TOO_LARGE
    return validate(record)


def registration_record(
    identity: Identity,
    period: int,
    registration: Registration,
    *,
    rng: RandomSource,
    periods: TimePeriods = TOR_TIME_PERIODS,
) -> DhtRecord:
    """The DHT record of ``registration`` for ``period``: sealed, signed by the blinded key."""
    value = seal(identity, period, registration, rng=rng, periods=periods)
    blinded = BlindedKey.for_identity(identity, period, periods)
    return sign_record(
        blinded.sign,
        kind=RecordKind.REGISTRATION,
        public_key=blinded.public_key,
        seq=registration.sequence,
        expiry=registration.expires,
        payload=value,
    )
