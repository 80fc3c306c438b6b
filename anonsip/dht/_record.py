"""Signed, mutable DHT records (the value a Kademlia STORE carries), each of one kind.

A record is published under ``key = SHA3-256(public_key)`` and signed by
that key (in practice a blinded Ed25519 key, so the signer is a callable):

    signature = Sign(LABEL | INT_1(kind) | key | seq (u64 BE) | expiry (u64 BE) | payload)

Because the key is the hash of the verifying key, nobody but its holder can
write under it; ``seq`` lets a store refuse rollbacks and replays of older
versions; ``expiry`` (Unix seconds) bounds how long a copy lives. ``kind``
says what the payload is (``RecordKind``): storing nodes check the payload
as that kind, with that kind's size cap (``anonsip.dht._kinds``), and a
signature made for one kind can never pass for another.
"""

from __future__ import annotations

import enum
import hashlib
from collections.abc import Callable
from dataclasses import dataclass

import nacl.exceptions
import nacl.signing

__all__ = [
    "MAX_PAYLOAD",
    "RECORD_LABEL",
    "DhtRecord",
    "RecordKind",
    "record_key",
    "record_signed_message",
    "sign_record",
]

RECORD_LABEL = b"anonsip-dht-record-v2\x00"
# The wire bound for any kind; each kind has its own, tighter cap (``_kinds``).
MAX_PAYLOAD = 1024
_U64 = 1 << 64


class RecordKind(enum.IntEnum):
    """What a record's payload is. Values are on the wire and in the signature: never reuse one."""

    REGISTRATION = 1  # anonsip.registration's sealed record
    MAILBOX = 2  # reserved for mailbox deposits; not accepted yet


def record_key(public_key: bytes) -> bytes:
    """The DHT key a record signed by ``public_key`` lives under."""
    return hashlib.sha3_256(public_key).digest()


def record_signed_message(kind: int, key: bytes, seq: int, expiry: int, payload: bytes) -> bytes:
    return (
        RECORD_LABEL
        + kind.to_bytes(1, "big")
        + key
        + seq.to_bytes(8, "big")
        + expiry.to_bytes(8, "big")
        + payload
    )


@dataclass(frozen=True, slots=True)
class DhtRecord:
    """One signed version of the value under ``key``; ``verify_signature`` before trusting it."""

    kind: int
    public_key: bytes
    seq: int
    expiry: int
    payload: bytes
    signature: bytes

    def __post_init__(self) -> None:
        if not 0 <= self.kind <= 255:
            raise ValueError("a record's kind is one byte")
        if len(self.public_key) != 32:
            raise ValueError("a record's public key is 32 bytes")
        if len(self.signature) != 64:
            raise ValueError("a record's signature is 64 bytes")
        if not (0 <= self.seq < _U64 and 0 <= self.expiry < _U64):
            raise ValueError("seq and expiry are unsigned 64-bit integers")

    @property
    def key(self) -> bytes:
        return record_key(self.public_key)

    def verify_signature(self) -> bool:
        message = record_signed_message(self.kind, self.key, self.seq, self.expiry, self.payload)
        try:
            nacl.signing.VerifyKey(self.public_key).verify(message, self.signature)
        except (nacl.exceptions.CryptoError, ValueError, TypeError):
            return False
        return True

    def is_valid_for(self, key: bytes, now: float) -> bool:
        """A lookup's check: right key, not expired, signature good."""
        return self.key == key and self.expiry > now and self.verify_signature()


def sign_record(
    sign: Callable[[bytes], bytes],
    *,
    kind: int,
    public_key: bytes,
    seq: int,
    expiry: int,
    payload: bytes,
) -> DhtRecord:
    """A record signed through ``sign(message) -> 64-byte signature``."""
    message = record_signed_message(kind, record_key(public_key), seq, expiry, payload)
    return DhtRecord(
        kind=kind,
        public_key=public_key,
        seq=seq,
        expiry=expiry,
        payload=payload,
        signature=sign(message),
    )
