"""Mailboxes in the DHT: where a pseudonym's mail waits, what a deposit is, who may delete.

A pseudonym has two mailboxes per time period, each under a key blinded
from its Ed25519 key like a registration but with its own label
(``purpose``): the *open* one (label ``anonsip-mailbox``), which anyone who
knows the address can compute and where contact requests arrive, and the
*contacts'* one (label ``anonsip-mailbox`` followed by a 32-byte secret the
owner gives only to its contacts), which strangers cannot find, so they
cannot crowd out a contact's mail. A storing node cannot tell whose either
is, nor link it to the same pseudonym's registration, its other mailbox or
its mailboxes in other periods. The DHT key is SHA3-256 of the mailbox key,
as for every record.

A deposit (what storing nodes keep, many per mailbox)::

    mailbox key (32) | expiry, Unix s (u32) | proof nonce (16) | sealed letter

The proof of work is hashcash over ``LABEL | mailbox key | expiry |
SHA3-256(sealed letter)``: a storing node checks it (one hash) before
spending memory, so filling a mailbox or the DHT with junk costs work per
deposit; a contact request deposited by a stranger needs more. The deposit
id is SHA3-256 of the whole deposit.

A deletion is signed by the mailbox key's owner (the blinded secret only
the recipient holds)::

    mailbox key (32) | time, Unix s (u32) | n (u8) | n x deposit id (32) | signature (64)

over ``LABEL | everything before the signature``, so nobody but the
recipient can empty a mailbox, and an old deletion cannot be replayed far
from its time. Parsers treat their input as hostile and raise only
``DepositError``.
"""

from __future__ import annotations

import hashlib
import os
import struct
from collections.abc import Callable
from dataclasses import dataclass

from anonsip._errors import LocalError, RemoteProtocolError
from anonsip.admission import leading_zero_bits, solve
from anonsip.identity import TOR_TIME_PERIODS, BlindedKey, Identity, TimePeriods, verify_signature
from anonsip.identity._blinding import blind_public_key
from anonsip.mailbox._letter import BOX_SECRET, sealed_sizes

__all__ = [
    "DEPOSIT_POW_BITS",
    "MAILBOX_PURPOSE",
    "MAX_DELETE",
    "MAX_TTL",
    "REQUEST_POW_BITS",
    "Deletion",
    "Deposit",
    "DepositError",
    "dht_key",
    "mailbox_key",
    "mailbox_keypair",
]

MAILBOX_PURPOSE = b"anonsip-mailbox"
POW_LABEL = b"anonsip-mailbox-deposit-v1\x00"
DELETE_LABEL = b"anonsip-mailbox-delete-v1\x00"
DEPOSIT_POW_BITS = 12  # a message to someone who knows us
REQUEST_POW_BITS = 18  # a contact request: a stranger's first word costs more
MAX_TTL = 7 * 86400
MAX_DELETE = 64
DELETE_WINDOW = 3600  # a deletion is honoured within an hour of its time
NONCE = 16
_HEAD = struct.Struct(">32sI16s")
_DEL_HEAD = struct.Struct(">32sIB")


class DepositError(RemoteProtocolError):
    """Bytes that are not a valid deposit or deletion."""


def _purpose(secret: bytes) -> bytes:
    if len(secret) not in (0, BOX_SECRET):
        raise LocalError(f"a mailbox secret is {BOX_SECRET} bytes")
    return MAILBOX_PURPOSE + secret


def mailbox_key(
    address_key: bytes,
    period: int,
    periods: TimePeriods = TOR_TIME_PERIODS,
    *,
    secret: bytes = b"",
) -> bytes:
    """The mailbox key of the pseudonym ``address_key`` for ``period``: its open mailbox
    (anyone can compute it), or with the owner's ``secret`` its contacts' mailbox."""
    return blind_public_key(address_key, period, periods, purpose=_purpose(secret))


def mailbox_keypair(
    identity: Identity,
    period: int,
    periods: TimePeriods = TOR_TIME_PERIODS,
    *,
    secret: bytes = b"",
) -> BlindedKey:
    """The owner's key pair of a mailbox for ``period``: it signs deletions."""
    return BlindedKey.for_identity(identity, period, periods, purpose=_purpose(secret))


def dht_key(mailbox: bytes) -> bytes:
    return hashlib.sha3_256(mailbox).digest()


def _pow_material(mailbox: bytes, expiry: int, sealed: bytes) -> bytes:
    return POW_LABEL + mailbox + expiry.to_bytes(4, "big") + hashlib.sha3_256(sealed).digest()


def _work(material: bytes, nonce: bytes) -> int:
    return leading_zero_bits(hashlib.blake2b(material + nonce, digest_size=32).digest())


@dataclass(frozen=True, kw_only=True)
class Deposit:
    mailbox: bytes
    expiry: int
    nonce: bytes
    sealed: bytes

    @classmethod
    def make(
        cls,
        *,
        mailbox: bytes,
        expiry: int,
        sealed: bytes,
        difficulty: int = DEPOSIT_POW_BITS,
        rng: Callable[[int], bytes] = os.urandom,
    ) -> Deposit:
        """A deposit with its proof of work solved (CPU: run it in a worker thread)."""
        if len(mailbox) != 32:
            raise LocalError("a mailbox key is 32 bytes")
        material = _pow_material(mailbox, expiry, sealed)
        nonce = solve(material, difficulty, rng)
        return cls(mailbox=mailbox, expiry=expiry, nonce=nonce, sealed=sealed)

    @property
    def work(self) -> int:
        """How many leading zero bits the proof has."""
        return _work(_pow_material(self.mailbox, self.expiry, self.sealed), self.nonce)

    @property
    def deposit_id(self) -> bytes:
        return hashlib.sha3_256(self.encode()).digest()

    @property
    def key(self) -> bytes:
        return dht_key(self.mailbox)

    def encode(self) -> bytes:
        return _HEAD.pack(self.mailbox, self.expiry, self.nonce) + self.sealed

    @classmethod
    def decode(cls, raw: bytes) -> Deposit:
        if len(raw) < _HEAD.size:
            raise DepositError("a deposit cut short")
        mailbox, expiry, nonce = _HEAD.unpack_from(raw)
        sealed = raw[_HEAD.size :]
        if len(sealed) not in sealed_sizes():
            raise DepositError("a deposit whose letter has a size no letter has")
        return cls(mailbox=mailbox, expiry=expiry, nonce=nonce, sealed=sealed)

    def check(self, now: float, *, difficulty: int = DEPOSIT_POW_BITS) -> None:
        """What a storing node checks before keeping it; ``DepositError`` says what is wrong."""
        if self.expiry <= now:
            raise DepositError("a deposit that has expired")
        if self.expiry > now + MAX_TTL + 300:
            raise DepositError("a deposit that would stay longer than a week")
        if self.work < difficulty:
            raise DepositError("a deposit without enough proof of work")


@dataclass(frozen=True, kw_only=True)
class Deletion:
    mailbox: bytes
    time: int
    deposit_ids: tuple[bytes, ...]
    signature: bytes = b""

    def _signed_part(self) -> bytes:
        head = _DEL_HEAD.pack(self.mailbox, self.time, len(self.deposit_ids))
        return head + b"".join(self.deposit_ids)

    @classmethod
    def make(cls, owner: BlindedKey, time: int, deposit_ids: tuple[bytes, ...]) -> Deletion:
        if not 0 < len(deposit_ids) <= MAX_DELETE:
            raise LocalError(f"a deletion names 1 to {MAX_DELETE} deposits")
        unsigned = cls(mailbox=owner.public_key, time=time, deposit_ids=deposit_ids)
        signature = owner.sign(DELETE_LABEL + unsigned._signed_part())
        return cls(
            mailbox=owner.public_key, time=time, deposit_ids=deposit_ids, signature=signature
        )

    @property
    def key(self) -> bytes:
        return dht_key(self.mailbox)

    def encode(self) -> bytes:
        return self._signed_part() + self.signature

    @classmethod
    def decode(cls, raw: bytes) -> Deletion:
        if len(raw) < _DEL_HEAD.size + 64:
            raise DepositError("a deletion cut short")
        mailbox, time, count = _DEL_HEAD.unpack_from(raw)
        if not 0 < count <= MAX_DELETE or len(raw) != _DEL_HEAD.size + 32 * count + 64:
            raise DepositError("a deletion whose length does not match what it names")
        at = _DEL_HEAD.size
        ids = tuple(raw[at + 32 * i : at + 32 * (i + 1)] for i in range(count))
        return cls(mailbox=mailbox, time=time, deposit_ids=ids, signature=raw[-64:])

    def check(self, now: float) -> None:
        """Only the mailbox's owner signs a deletion, and only a recent one counts."""
        if abs(now - self.time) > DELETE_WINDOW:
            raise DepositError("a deletion too far from now (replayed, or a wrong clock)")
        try:
            good = verify_signature(
                self.mailbox, DELETE_LABEL + self._signed_part(), self.signature
            )
        except (LocalError, ValueError) as exc:
            raise DepositError("a deletion for a key that is not a valid key") from exc
        if not good:
            raise DepositError("a deletion not signed by the mailbox's owner")
