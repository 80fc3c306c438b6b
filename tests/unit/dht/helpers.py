"""Deterministic identities, contacts and records for the DHT tests."""

from __future__ import annotations

import random

import nacl.signing

from anonsip.dht import Contact, DhtRecord, NodeIdentity, sign_record


def identity(n: int, port: int = 9000) -> NodeIdentity:
    return NodeIdentity.from_seed(random.Random(n).randbytes(32), port)


def contact(n: int, port: int = 9000) -> Contact:
    return identity(n, port).contact


def record_key_pair(n: int) -> nacl.signing.SigningKey:
    return nacl.signing.SigningKey(random.Random(f"record-{n}").randbytes(32))


def record(
    n: int = 0, *, seq: int = 1, expiry: int = 10_000, payload: bytes = b"hello"
) -> DhtRecord:
    key = record_key_pair(n)

    def sign(message: bytes) -> bytes:
        return bytes(key.sign(message).signature)

    return sign_record(
        sign, public_key=bytes(key.verify_key), seq=seq, expiry=expiry, payload=payload
    )
