"""Signed, mutable DHT records (the value a Kademlia STORE carries).

A record is published under ``key = SHA3-256(public_key)`` and signed by
that key (in practice a blinded Ed25519 key, so the signer is a callable):

    signature = Sign(LABEL | key | seq (u64 BE) | expiry (u64 BE) | payload)

Because the key is the hash of the verifying key, nobody but its holder can
write under it; ``seq`` lets a store refuse rollbacks and replays of older
versions; ``expiry`` (Unix seconds) bounds how long a copy lives.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass

import nacl.exceptions
import nacl.signing

__all__ = [
    "MAX_PAYLOAD",
    "RECORD_LABEL",
    "DhtRecord",
    "record_key",
    "record_signed_message",
    "sign_record",
]

RECORD_LABEL = b"anonsip-dht-record-v1\x00"
MAX_PAYLOAD = 4096
_U64 = 1 << 64


def record_key(public_key: bytes) -> bytes:
    """The DHT key a record signed by ``public_key`` lives under."""
    return hashlib.sha3_256(public_key).digest()


def record_signed_message(key: bytes, seq: int, expiry: int, payload: bytes) -> bytes:
    return RECORD_LABEL + key + seq.to_bytes(8, "big") + expiry.to_bytes(8, "big") + payload


@dataclass(frozen=True, slots=True)
class DhtRecord:
    """One signed version of the value under ``key``; ``verify_signature`` before trusting it."""

    public_key: bytes
    seq: int
    expiry: int
    payload: bytes
    signature: bytes

    def __post_init__(self) -> None:
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
        message = record_signed_message(self.key, self.seq, self.expiry, self.payload)
        try:
            nacl.signing.VerifyKey(self.public_key).verify(message, self.signature)
        except (nacl.exceptions.CryptoError, ValueError, TypeError):
            return False
        return True

    def is_valid_for(self, key: bytes, now: float) -> bool:
        """A lookup's check: right key, not expired, signature good."""
        return self.key == key and self.expiry > now and self.verify_signature()


def sign_record(
    sign: Callable[[bytes], bytes], *, public_key: bytes, seq: int, expiry: int, payload: bytes
) -> DhtRecord:
    """A record signed through ``sign(message) -> 64-byte signature``."""
    message = record_signed_message(record_key(public_key), seq, expiry, payload)
    return DhtRecord(
        public_key=public_key, seq=seq, expiry=expiry, payload=payload, signature=sign(message)
    )
