"""The shareable text form of a user's Ed25519 public key, and its SIP URI.

An address is Bech32m (BIP-350) with human-readable part ``asip``, one
version character, then the 32-byte key::

    asip1q<52 key characters><6 checksum characters>      (64 characters)

It is case-insensitive (all upper case is fine for QR codes and reading
aloud) and the BCH checksum always detects a single mistyped character.
The SIP URI form is ``sip:<address>@anonsip.invalid``: ``.invalid`` is
reserved by RFC 2606, so no DNS lookup for it can ever succeed or leak.
"""

import functools
from dataclasses import dataclass

import nacl.bindings

from anonsip.identity import _bech32m
from anonsip.identity._errors import InvalidAddress

ADDRESS_HRP = "asip"
ADDRESS_VERSION = 0
SIP_DOMAIN = "anonsip.invalid"
PUBLIC_KEY_BYTES = 32
# Addresses are parsed, printed and checked for every message a node sends or
# takes (a peer's key becomes text for the store, text a key for the link);
# Bech32m in Python and the curve check cost ~0.1 ms each. These caches hold
# the last results: pure functions, bounded.
_CACHED = 1024


@functools.lru_cache(maxsize=_CACHED)
def _is_valid_point(public_key: bytes) -> bool:
    return bool(nacl.bindings.crypto_core_ed25519_is_valid_point(public_key))


@functools.lru_cache(maxsize=_CACHED)
def _encode(public_key: bytes) -> str:
    data = [ADDRESS_VERSION, *_bech32m.convert_bits(public_key, 8, 5, pad=True)]
    return _bech32m.encode(ADDRESS_HRP, data)


@dataclass(frozen=True, slots=True)
class Address:
    """A user's address: wraps the 32-byte Ed25519 public key."""

    public_key: bytes

    def __post_init__(self) -> None:
        if not isinstance(self.public_key, bytes) or len(self.public_key) != PUBLIC_KEY_BYTES:
            raise InvalidAddress("an address holds exactly a 32-byte Ed25519 public key")
        if not _is_valid_point(self.public_key):
            raise InvalidAddress("this key is not a valid Ed25519 public key")

    @classmethod
    def parse(cls, text: str) -> "Address":
        """Parse a typed or pasted address; ``InvalidAddress`` says what is wrong."""
        if not isinstance(text, str):
            raise InvalidAddress("an address is text")
        return cls(_decode(text))

    @property
    def text(self) -> str:
        return _encode(self.public_key)

    def __str__(self) -> str:
        return self.text

    def __repr__(self) -> str:
        return f"Address({self.text!r})"

    @property
    def sip_uri(self) -> str:
        return f"sip:{self.text}@{SIP_DOMAIN}"

    @classmethod
    def from_sip_uri(cls, uri: str) -> "Address":
        """Parse ``sip:<address>@anonsip.invalid`` (scheme and host case-insensitive)."""
        if not isinstance(uri, str):
            raise InvalidAddress("a SIP URI is text")
        text = uri.strip()
        if text[:4].lower() != "sip:":
            raise InvalidAddress(f"{text!r} is not a sip: URI")
        user, sep, host = text[4:].partition("@")
        if not sep:
            raise InvalidAddress(f"{text!r} has no '@{SIP_DOMAIN}' part")
        if host.lower() != SIP_DOMAIN:
            raise InvalidAddress(f"{text!r} is not an anonsip URI: the host must be {SIP_DOMAIN}")
        return cls.parse(user)


@functools.lru_cache(maxsize=_CACHED)  # errors are not cached: they are raised anew
def _decode(text: str) -> bytes:
    """The key an address's text holds; ``InvalidAddress`` says what is wrong."""
    stripped = text.strip()
    if not stripped:
        raise InvalidAddress("the address is empty")
    if not stripped.lower().startswith(ADDRESS_HRP + "1"):
        raise InvalidAddress(
            f"{stripped!r} is not an anonsip address: it must start with '{ADDRESS_HRP}1'"
        )
    try:
        hrp, data = _bech32m.decode(stripped)
    except InvalidAddress as exc:
        raise InvalidAddress(f"{stripped!r} is not a valid anonsip address: {exc}") from None
    if hrp != ADDRESS_HRP:
        raise InvalidAddress(
            f"{stripped!r} is not an anonsip address: it must start with '{ADDRESS_HRP}1'"
        )
    if not data:
        raise InvalidAddress(f"{stripped!r} is not a valid anonsip address: it is empty")
    version, payload = data[0], data[1:]
    if version != ADDRESS_VERSION:
        raise InvalidAddress(
            f"{stripped!r} is an address of version {version}, which this program "
            "does not understand; a newer anonsip may"
        )
    try:
        key = bytes(_bech32m.convert_bits(payload, 5, 8, pad=False))
    except ValueError:
        raise InvalidAddress(
            f"{stripped!r} is not a valid anonsip address: its length is wrong"
        ) from None
    if len(key) != PUBLIC_KEY_BYTES:
        raise InvalidAddress(
            f"{stripped!r} is not a valid anonsip address: it holds {len(key)} bytes, not 32"
        )
    return key
