"""An invite: one line that brings a new contact — and, if needed, a node that knows nobody.

An invite carries the inviter's address, a few DHT contacts (an onion
service key and port each) that the inviter's node knows, and an expiry.
A node that knows nobody joins the DHT through those contacts, then finds
the inviter as it finds anyone: by looking the address up.

Text form: bech32m (BIP-350's checksum, with the human-readable part
``asipinv``) over ``version (1) | address key (32) | expires, Unix seconds
(u32) | n (1) | n x (onion key (32) | port (u16))``, all big-endian. Every
single-character change is caught by the checksum; a truncation by the
checksum and the exact length the count implies. Parsing treats the text
as hostile: every way it can be wrong is an ``InvalidInvite`` that says
what is wrong.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from anonsip._errors import LocalError
from anonsip.identity import Address, InvalidAddress
from anonsip.identity._bech32m import convert_bits, decode, encode

__all__ = ["HRP", "MAX_CONTACTS", "DhtSeed", "InvalidInvite", "Invite", "looks_like_invite"]

HRP = "asipinv"
VERSION = 1
MAX_CONTACTS = 4
MAX_LENGTH = 1023  # the checksum's code length
_HEAD = struct.Struct(">B32sIB")
_SEED = struct.Struct(">32sH")


class InvalidInvite(LocalError):
    """The text is not a valid invite; the message says what is wrong."""


@dataclass(frozen=True, kw_only=True)
class DhtSeed:
    """A DHT node to join through: its onion service's Ed25519 key and virtual port."""

    key: bytes
    port: int

    def __post_init__(self) -> None:
        if len(self.key) != 32:
            raise InvalidInvite("a DHT contact's key is 32 bytes")
        if not 1 <= self.port <= 65535:
            raise InvalidInvite("a DHT contact's port is 1 to 65535")


@dataclass(frozen=True, kw_only=True)
class Invite:
    address: Address
    seeds: tuple[DhtSeed, ...]
    expires: int  # Unix seconds

    def __post_init__(self) -> None:
        if len(self.seeds) > MAX_CONTACTS:
            raise InvalidInvite(f"an invite carries at most {MAX_CONTACTS} DHT contacts")
        if not 0 <= self.expires < 1 << 32:
            raise InvalidInvite("the expiry is out of range")

    def expired(self, now: float) -> bool:
        return now >= self.expires

    @property
    def text(self) -> str:
        raw = _HEAD.pack(VERSION, self.address.public_key, self.expires, len(self.seeds))
        raw += b"".join(_SEED.pack(seed.key, seed.port) for seed in self.seeds)
        return encode(HRP, convert_bits(raw, 8, 5, pad=True), max_length=MAX_LENGTH)

    @classmethod
    def parse(cls, text: str) -> Invite:
        text = text.strip()
        try:
            hrp, data = decode(text, max_length=MAX_LENGTH)
        except InvalidAddress as exc:
            raise InvalidInvite(f"this is not a valid invite: {exc}") from None
        if hrp != HRP:
            raise InvalidInvite(f"this is not an invite (it starts with {hrp!r}, not {HRP!r})")
        try:
            raw = bytes(convert_bits(data, 5, 8, pad=False))
        except ValueError:
            raise InvalidInvite("this invite is cut short or padded wrongly") from None
        if len(raw) < _HEAD.size:
            raise InvalidInvite("this invite is cut short")
        version, key, expires, count = _HEAD.unpack_from(raw)
        if version != VERSION:
            raise InvalidInvite(
                f"this invite is version {version}; this anonsip reads version {VERSION}"
            )
        if count > MAX_CONTACTS or len(raw) != _HEAD.size + count * _SEED.size:
            raise InvalidInvite("this invite's length does not match what it says it holds")
        try:
            address = Address(key)
        except InvalidAddress as exc:
            raise InvalidInvite(f"this invite's address is not valid: {exc}") from None
        seeds = tuple(
            DhtSeed(key=k, port=p)
            for k, p in (_SEED.unpack_from(raw, _HEAD.size + i * _SEED.size) for i in range(count))
        )
        return cls(address=address, seeds=seeds, expires=expires)


def looks_like_invite(text: str) -> bool:
    """True for text meant as an invite (so its errors, not an address's, are shown)."""
    return text.strip().lower().startswith(HRP + "1")
