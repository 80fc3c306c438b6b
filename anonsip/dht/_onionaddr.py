"""Tor v3 onion addresses from Ed25519 public keys (rend-spec-v3, "Encoding onion addresses").

    onion_address = base32(PUBKEY | CHECKSUM | VERSION)   (56 characters, no ".onion")
    CHECKSUM      = SHA3-256(".onion checksum" | PUBKEY | VERSION)[:2]
    VERSION       = b"\\x03"

The DHT binds a node's identity to the onion service it answers on, so a
contact's address must be exactly the one its key implies.
"""

import base64
import hashlib

from anonsip._errors import RemoteProtocolError

__all__ = ["ONION_ADDRESS_LENGTH", "onion_address_from_public_key", "public_key_from_onion_address"]

ONION_ADDRESS_LENGTH = 56
_VERSION = b"\x03"
_CHECKSUM_LABEL = b".onion checksum"


def _checksum(public_key: bytes) -> bytes:
    return hashlib.sha3_256(_CHECKSUM_LABEL + public_key + _VERSION).digest()[:2]


def onion_address_from_public_key(public_key: bytes) -> str:
    """The 56-character lower-case v3 onion address (without ".onion") of ``public_key``."""
    if len(public_key) != 32:
        raise ValueError("an Ed25519 public key is 32 bytes")
    raw = public_key + _checksum(public_key) + _VERSION
    return base64.b32encode(raw).decode("ascii").lower()


def public_key_from_onion_address(address: str) -> bytes:
    """The Ed25519 public key inside a v3 onion address; raises RemoteProtocolError if invalid."""
    if address.endswith(".onion"):
        address = address[: -len(".onion")]
    if len(address) != ONION_ADDRESS_LENGTH:
        raise RemoteProtocolError("an onion address has 56 characters")
    try:
        raw = base64.b32decode(address.upper())
    except (ValueError, TypeError) as exc:
        raise RemoteProtocolError("an onion address is base32") from exc
    public_key, checksum, version = raw[:32], raw[32:34], raw[34:]
    if version != _VERSION:
        raise RemoteProtocolError("only version 3 onion addresses are supported")
    if checksum != _checksum(public_key):
        raise RemoteProtocolError("the onion address checksum does not match")
    return public_key
