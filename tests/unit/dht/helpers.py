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
from anonsip.mailbox import (
    DEPOSIT_POW_BITS,
    Deletion,
    Deposit,
    Letter,
    LetterKind,
    mailbox_key,
    mailbox_keypair,
    seal_letter,
)
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


SENDER = Identity(seed=random.Random("sender").randbytes(32))
MAILBOX_PERIOD = 7


def mailbox(n: int) -> bytes:
    """Pseudonym ``n``'s mailbox key (the same period throughout)."""
    return mailbox_key(owner(n).public_key, MAILBOX_PERIOD, PERIODS)


@functools.lru_cache(maxsize=4096)
def deposit(
    n: int = 0,
    i: int = 0,
    *,
    expiry: int = 10_000,
    difficulty: int = DEPOSIT_POW_BITS,
    text: str = "",
) -> Deposit:
    """Letter ``i`` to pseudonym ``n``'s mailbox, with at least ``difficulty`` bits of work."""
    letter = Letter(kind=LetterKind.MESSAGE, message_id=f"m-{i}", time_ms=i, text=text)
    sealed = seal_letter(SENDER, owner(n).public_key, letter)
    rng = random.Random(f"nonce-{n}-{i}-{expiry}-{difficulty}")
    return Deposit.make(
        mailbox=mailbox(n), expiry=expiry, sealed=sealed, difficulty=difficulty, rng=rng.randbytes
    )


def deletion(n: int, deposits: tuple[Deposit, ...], time: int) -> Deletion:
    """Pseudonym ``n``'s deletion of ``deposits`` (signed by its mailbox key)."""
    owner_key = mailbox_keypair(owner(n), MAILBOX_PERIOD, PERIODS)
    return Deletion.make(owner_key, time, tuple(d.deposit_id for d in deposits))


def deposit_location(d: Deposit, replica: int = 0, shared: SharedRandom = SHARED) -> bytes:
    return positions(d.key, shared)[replica].location
