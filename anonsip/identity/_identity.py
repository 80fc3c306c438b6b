"""A user identity: an Ed25519 key pair (RFC 8032) and a local nickname.

The public key *is* the user: it is what the address encodes, what the
registration record is blinded from, and (converted to X25519) the Noise
static key.  The nickname never leaves this machine.
"""

import hashlib
import os
from collections.abc import Callable
from dataclasses import dataclass, field

import nacl.bindings
import nacl.exceptions
import nacl.signing

from anonsip._errors import LocalError
from anonsip.identity._address import Address

RandomSource = Callable[[int], bytes]
"""Where randomness comes from: ``rng(n)`` returns ``n`` random bytes.

Cores take one explicitly so known-answer tests can repeat; the node hands
them ``system_random``.
"""

system_random: RandomSource = os.urandom

SEED_BYTES = 32
MAX_NICKNAME_CHARS = 64


def _check_nickname(nickname: str) -> str:
    if not isinstance(nickname, str) or len(nickname) > MAX_NICKNAME_CHARS:
        raise LocalError(f"a nickname is text of at most {MAX_NICKNAME_CHARS} characters")
    if any(ord(c) < 32 or ord(c) == 127 for c in nickname):
        raise LocalError("a nickname cannot contain control characters")
    return nickname


@dataclass(frozen=True, repr=False, eq=False)
class Identity:
    """An Ed25519 key pair with a local nickname.  ``repr`` never shows the secret."""

    seed: bytes
    nickname: str = ""
    _signing_key: nacl.signing.SigningKey = field(init=False, compare=False)

    def __post_init__(self) -> None:
        if not isinstance(self.seed, bytes) or len(self.seed) != SEED_BYTES:
            raise LocalError("an identity seed is exactly 32 bytes")
        _check_nickname(self.nickname)
        object.__setattr__(self, "_signing_key", nacl.signing.SigningKey(self.seed))

    @classmethod
    def generate(cls, nickname: str = "", *, rng: RandomSource) -> "Identity":
        """A fresh identity from ``rng`` (pass ``system_random`` outside tests)."""
        seed = rng(SEED_BYTES)
        if len(seed) != SEED_BYTES:
            raise LocalError("the random source returned the wrong number of bytes")
        return cls(seed=seed, nickname=nickname)

    def with_nickname(self, nickname: str) -> "Identity":
        return Identity(seed=self.seed, nickname=nickname)

    @property
    def public_key(self) -> bytes:
        """The 32-byte Ed25519 public key."""
        return bytes(self._signing_key.verify_key)

    @property
    def address(self) -> Address:
        return Address(self.public_key)

    @property
    def expanded_secret_key(self) -> bytes:
        """RFC 8032 expanded key: clamped scalar ``a`` (32 bytes) then prefix ``RH`` (32)."""
        digest = bytearray(hashlib.sha512(self.seed).digest())
        digest[0] &= 248
        digest[31] &= 63
        digest[31] |= 64
        return bytes(digest)

    def sign(self, message: bytes) -> bytes:
        """A 64-byte Ed25519 signature of ``message``."""
        return self._signing_key.sign(message).signature

    @property
    def x25519_private_key(self) -> bytes:
        """The Curve25519 secret for Noise, converted from the Ed25519 key (RFC 7748 form)."""
        sk64 = self.seed + self.public_key
        return nacl.bindings.crypto_sign_ed25519_sk_to_curve25519(sk64)

    @property
    def x25519_public_key(self) -> bytes:
        return ed25519_to_x25519_public(self.public_key)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Identity):
            return NotImplemented
        return self.seed == other.seed and self.nickname == other.nickname

    def __hash__(self) -> int:
        return hash(self.public_key)

    def __repr__(self) -> str:
        return f"Identity(nickname={self.nickname!r}, address={self.address})"


def verify_signature(public_key: bytes, message: bytes, signature: bytes) -> bool:
    """True if ``signature`` is a valid Ed25519 signature of ``message`` by ``public_key``."""
    if len(public_key) != 32 or len(signature) != 64:
        return False
    try:
        nacl.signing.VerifyKey(public_key).verify(message, signature)
    except (nacl.exceptions.BadSignatureError, nacl.exceptions.ValueError):
        return False
    return True


def ed25519_to_x25519_public(public_key: bytes) -> bytes:
    """The Curve25519 (Montgomery) form of an Ed25519 public key."""
    try:
        return nacl.bindings.crypto_sign_ed25519_pk_to_curve25519(public_key)
    except (nacl.exceptions.RuntimeError, nacl.exceptions.ValueError) as exc:
        raise LocalError("this is not a usable Ed25519 public key") from exc
