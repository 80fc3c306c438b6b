"""Proof of work that a contact request from an unknown pseudonym must carry.

Hashcash over BLAKE2b-256: the sender searches for a nonce such that
``BLAKE2b(DOMAIN, recipient, sender, time bucket, nonce)`` starts with at
least ``difficulty_bits`` zero bits. Binding both addresses means a proof
is useless against any other recipient or as any other sender; the time
bucket (``BUCKET_SECONDS`` wide, the current and adjacent ones accepted)
bounds how long a proof can be replayed. Expected work is
``2 ** difficulty_bits`` hashes; verification is one hash.

How many bits a node asks is its own choice and changes with its load
(``_effort``): ``RESTING_EFFORT`` = 16 bits at rest, a mean of 0.03 s on
the reference machine (2 cores, pure Python, ~3 M BLAKE2b/s; ``python -m
bench.pow``), well under the onion dial it overlaps with. The time to solve
is geometric, so some solves take several times the mean; each extra bit
doubles it (20 bits: 0.4 s mean, 22 bits: 1.7-3.3 s).
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from typing import Final

from anonsip._errors import LocalError

__all__ = [
    "BUCKET_SECONDS",
    "DOMAIN",
    "MAX_DIFFICULTY",
    "NONCE_SIZE",
    "RESTING_EFFORT",
    "challenge",
    "leading_zero_bits",
    "solve",
    "time_bucket",
    "verify",
    "work",
]

DOMAIN: Final = b"anonsip contact-request pow v1"
RESTING_EFFORT: Final = 16
MAX_DIFFICULTY: Final = 40
BUCKET_SECONDS: Final = 600
NONCE_SIZE: Final = 16
_DIGEST_SIZE: Final = 32


def time_bucket(now: float, bucket_seconds: int = BUCKET_SECONDS) -> int:
    """The replay window ``now`` (Unix seconds) falls in."""
    return int(now // bucket_seconds)


def _field(data: bytes) -> bytes:
    return len(data).to_bytes(2, "big") + data


def challenge(recipient: str, sender: str, bucket: int) -> bytes:
    """The material a proof is computed over (unambiguous: every field length-prefixed)."""
    if bucket < 0:
        raise LocalError("a time bucket is never negative")
    return (
        _field(DOMAIN)
        + _field(recipient.encode())
        + _field(sender.encode())
        + bucket.to_bytes(8, "big")
    )


def leading_zero_bits(digest: bytes) -> int:
    value = int.from_bytes(digest, "big")
    return len(digest) * 8 - value.bit_length()


def _check_difficulty(difficulty_bits: int) -> None:
    if not 0 <= difficulty_bits <= MAX_DIFFICULTY:
        raise LocalError(f"difficulty must be 0 to {MAX_DIFFICULTY} bits")


def solve(
    material: bytes,
    difficulty_bits: int,
    rng: Callable[[int], bytes] = os.urandom,
    *,
    max_attempts: int | None = None,
) -> bytes:
    """Find a ``NONCE_SIZE``-byte nonce for ``material``; CPU-bound (run it in a thread).

    The nonce is a random 8-byte prefix from ``rng`` and an 8-byte counter.
    Raises ``LocalError`` if ``max_attempts`` hashes found nothing.
    """
    _check_difficulty(difficulty_bits)
    prefix = rng(NONCE_SIZE - 8)
    base = hashlib.blake2b(material + prefix, digest_size=_DIGEST_SIZE)
    limit = 1 << (_DIGEST_SIZE * 8 - difficulty_bits)  # digest < limit <=> enough zero bits
    counter = 0
    stop = (1 << 64) if max_attempts is None else min(max_attempts, 1 << 64)
    while counter < stop:
        h = base.copy()
        tail = counter.to_bytes(8, "big")
        h.update(tail)
        if int.from_bytes(h.digest(), "big") < limit:
            return prefix + tail
        counter += 1
    raise LocalError(f"no proof of work found in {max_attempts} attempts")


def work(material: bytes, nonce: bytes) -> int:
    """The effort ``nonce`` proves for ``material``: leading zero bits (0 if malformed)."""
    if len(nonce) != NONCE_SIZE:
        return 0
    return leading_zero_bits(hashlib.blake2b(material + nonce, digest_size=_DIGEST_SIZE).digest())


def verify(material: bytes, nonce: bytes, difficulty_bits: int) -> bool:
    """True if ``nonce`` is a proof of at least ``difficulty_bits`` for ``material``."""
    _check_difficulty(difficulty_bits)
    if len(nonce) != NONCE_SIZE:
        return False
    digest = hashlib.blake2b(material + nonce, digest_size=_DIGEST_SIZE).digest()
    return leading_zero_bits(digest) >= difficulty_bits
