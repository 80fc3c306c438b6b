"""Deterministic identities, contacts, records and placements for the DHT tests."""

from __future__ import annotations

import functools
import random

from anonsip.dht import (
    Contact,
    DhtRecord,
    NodeIdentity,
    RecordKind,
    SharedRandom,
    positions,
    registration_record,
    sign_record,
)
from anonsip.identity import BlindedKey, Identity, TimePeriods
from anonsip.registration import Contact as Reachable
from anonsip.registration import Presence, Registration, onion_address

# One-hour periods from the epoch, so small test times have a period.
PERIODS = TimePeriods(length_minutes=60, rotation_offset_minutes=0)
SHARED = SharedRandom.single(bytes(range(32)))
ONION = Reachable(onion=onion_address(bytes(range(32))), port=5061)


def identity(n: int, port: int = 9000) -> NodeIdentity:
    return NodeIdentity.from_seed(random.Random(n).randbytes(32), port)


def contact(n: int, port: int = 9000) -> Contact:
    return identity(n, port).contact


def owner(n: int) -> Identity:
    """The pseudonym whose registrations are record ``n``."""
    return Identity(seed=random.Random(f"record-{n}").randbytes(32))


@functools.lru_cache(maxsize=1024)
def record(
    n: int = 0,
    *,
    seq: int = 1,
    expiry: int = 10_000,
    payload: bytes | None = None,
    kind: int = RecordKind.REGISTRATION,
) -> DhtRecord:
    """Pseudonym ``n``'s registration record, valid as its kind unless ``payload`` is given
    (then that payload, signed as ``kind`` by the same blinded key)."""
    period = PERIODS.number_at(expiry - 1)
    if payload is None and kind == RecordKind.REGISTRATION:
        registration = Registration(
            contacts=(ONION,), presence=Presence.AVAILABLE, expires=expiry, sequence=seq
        )
        rng = random.Random(f"seal-{n}-{seq}-{expiry}")
        return registration_record(
            owner(n), period, registration, rng=rng.randbytes, periods=PERIODS
        )
    blinded = BlindedKey.for_identity(owner(n), period, PERIODS)
    return sign_record(
        blinded.sign,
        kind=kind,
        public_key=blinded.public_key,
        seq=seq,
        expiry=expiry,
        payload=payload or b"",
    )


def location(rec: DhtRecord, replica: int = 0, shared: SharedRandom = SHARED) -> bytes:
    """Where ``rec`` is stored (replica ``replica`` under the current value of ``shared``)."""
    return positions(rec.key, shared)[replica].location
