"""v3 onion service keys and addresses (rend-spec-v3.txt, section 6 "Encoding onion addresses").

    onion_address = base32(PUBKEY | CHECKSUM | VERSION) + ".onion"
    CHECKSUM = SHA3-256(".onion checksum" | PUBKEY | VERSION)[:2], VERSION = 0x03

ADD_ONION's ``ED25519-V3`` key is the base64 of tor's 64-byte "expanded"
secret key: the clamped scalar ``a`` (first half of SHA-512(seed)) followed by
the nonce-derivation half (control-spec 3.27, tor's ``ed25519_secret_key_t``).
Pure functions; the secret never appears in ``repr``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from dataclasses import dataclass, field

import nacl.bindings

from onion._errors import InvalidOnionAddress, InvalidOnionKey

__all__ = [
    "OnionKey",
    "expanded_key_from_seed",
    "normalize_onion_address",
    "onion_address_from_public_key",
    "public_key_from_expanded_key",
    "public_key_from_onion_address",
]

ONION_VERSION = b"\x03"
ADDRESS_LENGTH = 56
KEY_TYPE = "ED25519-V3"


def expanded_key_from_seed(seed: bytes) -> bytes:
    """tor's 64-byte expanded secret key for an RFC 8032 Ed25519 ``seed`` (32 bytes)."""
    if len(seed) != 32:
        raise InvalidOnionKey("an Ed25519 seed is 32 bytes")
    digest = hashlib.sha512(seed).digest()
    scalar = bytearray(digest[:32])
    scalar[0] &= 248
    scalar[31] &= 127
    scalar[31] |= 64
    return bytes(scalar) + digest[32:]


def public_key_from_expanded_key(expanded: bytes) -> bytes:
    """The Ed25519 public key ``a*B`` for an expanded secret key."""
    if len(expanded) != 64:
        raise InvalidOnionKey("an expanded Ed25519 secret key is 64 bytes")
    return nacl.bindings.crypto_scalarmult_ed25519_base_noclamp(expanded[:32])


def onion_address_from_public_key(public_key: bytes) -> str:
    """The 56-character v3 address (lower case, without ``.onion``) of ``public_key``."""
    if len(public_key) != 32:
        raise InvalidOnionKey("an Ed25519 public key is 32 bytes")
    checksum = hashlib.sha3_256(b".onion checksum" + public_key + ONION_VERSION).digest()[:2]
    return base64.b32encode(public_key + checksum + ONION_VERSION).decode("ascii").lower()


def normalize_onion_address(address: str) -> str:
    """``address`` lower-cased without ``.onion``, checked (length, base32, checksum)."""
    public_key_from_onion_address(address)
    return address.lower().removesuffix(".onion")


def public_key_from_onion_address(address: str) -> bytes:
    """The Ed25519 public key inside a v3 address; raises ``InvalidOnionAddress``."""
    bare = address.lower().removesuffix(".onion")
    if len(bare) != ADDRESS_LENGTH:
        raise InvalidOnionAddress(
            f"{address!r} is not a v3 onion address (56 base32 characters before .onion)"
        )
    try:
        raw = base64.b32decode(bare.upper())
    except (binascii.Error, ValueError) as exc:
        raise InvalidOnionAddress(f"{address!r} is not base32") from exc
    public_key, version = raw[:32], raw[34:]
    if version != ONION_VERSION or onion_address_from_public_key(public_key) != bare:
        raise InvalidOnionAddress(f"{address!r} has a wrong checksum or version (typo?)")
    return public_key


@dataclass(frozen=True)
class OnionKey:
    """The secret key of a v3 onion service, as ADD_ONION takes and returns it."""

    expanded: bytes = field(repr=False)

    def __post_init__(self) -> None:
        if len(self.expanded) != 64:
            raise InvalidOnionKey("an expanded Ed25519 secret key is 64 bytes")

    @classmethod
    def from_seed(cls, seed: bytes) -> OnionKey:
        """The onion key of the Ed25519 identity whose 32-byte seed is ``seed``."""
        return cls(expanded_key_from_seed(seed))

    @classmethod
    def from_blob(cls, blob: str) -> OnionKey:
        """Parse ``ED25519-V3:<base64>`` (what ``blob`` returns and tor prints)."""
        kind, sep, b64 = blob.partition(":")
        if not sep or kind != KEY_TYPE:
            raise InvalidOnionKey(f"onion key blobs start with {KEY_TYPE}:")
        try:
            return cls(base64.b64decode(b64, validate=True))
        except (binascii.Error, ValueError) as exc:
            raise InvalidOnionKey("the onion key blob is not valid base64") from exc

    @property
    def blob(self) -> str:
        """``ED25519-V3:<base64>``: persist this (encrypted) to keep the address."""
        return f"{KEY_TYPE}:{base64.b64encode(self.expanded).decode('ascii')}"

    @property
    def public_key(self) -> bytes:
        return public_key_from_expanded_key(self.expanded)

    @property
    def address(self) -> str:
        """The 56-character onion address (no ``.onion``)."""
        return onion_address_from_public_key(self.public_key)
