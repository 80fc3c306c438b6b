"""The join code of a private Tor network: one line that another machine types in.

A join code carries what a machine needs to use a private network: each
directory authority's address, ports and identities (tor(1) ``DirAuthority``)
and a few onion services that users of the network can start from (the DHT
contacts of nodes running on it; this package does not interpret them).
Pure functions, no I/O.

Text form (version 1)::

    ANONSIP-NET1-<base32 of PAYLOAD, RFC 4648 alphabet, no padding>

    PAYLOAD = LENGTH(u16) FIELDS CRC32(LENGTH FIELDS, 4 bytes little-endian)
    FIELDS  = N_AUTH(u8) AUTH{N_AUTH} N_CONTACTS(u8) CONTACT{N_CONTACTS}
    AUTH    = NICK_LEN(u8) NICK  IPV4(4)  OR_PORT(u16)  DIR_PORT(u16)
              V3IDENT(20)  FINGERPRINT(20)
    CONTACT = ED25519_PUBLIC_KEY(32)  PORT(u16)

Integers are big-endian except the CRC, which follows the CRC-32 of zlib
appended little-endian so that PAYLOAD is one CRC codeword. One base32
character covers at most two adjacent bytes, a burst of at most 16 bits in
CRC-32's bit order, and CRC-32 detects every burst up to 32 bits: every
single-character change is caught, not just most. ``LENGTH`` catches every
truncation and every extra character before the checksum is even read.
The code may be typed in upper or lower case, not a mix, so a change of
case is a change too. Whatever the checksum says, the fields are then read
as hostile input: bounded counts, exact lengths, nothing left over.
"""

from __future__ import annotations

import base64
import ipaddress
import re
import struct
import zlib
from dataclasses import dataclass

from onion._errors import InvalidJoinCode, TestnetError

__all__ = [
    "JOIN_CODE_PREFIX",
    "MAX_AUTHORITIES",
    "MAX_CONTACTS",
    "DirAuthority",
    "JoinCode",
    "ServiceContact",
    "decode_join_code",
    "encode_join_code",
]

JOIN_CODE_PREFIX = "ANONSIP-NET"
VERSION = 1
MAX_AUTHORITIES = 9
MAX_CONTACTS = 8
MAX_CODE_CHARS = 4096  # far above the largest valid code; bounds the work on garbage
_NICKNAME = re.compile(r"[A-Za-z0-9]{1,19}")
_HEX40 = re.compile(r"[0-9A-Fa-f]{40}")
_BASE32 = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZ234567")
_AUTH_FIXED = struct.Struct(">4sHH20s20s")
_CONTACT = struct.Struct(">32sH")
_LENGTH = struct.Struct(">H")
_LENGTH_CHARS = 4  # base32 characters that hold the two LENGTH bytes
_CRC_BYTES = 4


@dataclass(frozen=True, kw_only=True)
class DirAuthority:
    """One directory authority, as a ``DirAuthority`` torrc line names it."""

    nickname: str
    address: str  # IPv4: tor's DirAuthority takes IPv6 only as an extra ipv6= flag
    or_port: int
    dir_port: int
    v3ident: str  # 40 hex digits: the authority's v3 identity (tor-gencert)
    fingerprint: str  # 40 hex digits: its relay identity (RSA)

    def __post_init__(self) -> None:
        if not _NICKNAME.fullmatch(self.nickname):
            raise TestnetError(f"bad authority nickname {self.nickname!r}")
        try:
            address = ipaddress.IPv4Address(self.address)
        except ValueError:
            raise TestnetError(f"authority address {self.address!r} is not IPv4") from None
        if address.is_unspecified or address.is_multicast:
            raise TestnetError(f"authority address {self.address} cannot be reached")
        for port in (self.or_port, self.dir_port):
            if not 0 < port < 65536:
                raise TestnetError(f"authority port {port} is out of range")
        for digest in (self.v3ident, self.fingerprint):
            if not _HEX40.fullmatch(digest):
                raise TestnetError(f"authority identity {digest!r} is not 40 hex digits")
        object.__setattr__(self, "v3ident", self.v3ident.upper())
        object.__setattr__(self, "fingerprint", self.fingerprint.upper())

    def torrc_line(self) -> str:
        """The value of a ``DirAuthority`` option for this authority."""
        return (
            f"{self.nickname} orport={self.or_port} no-v2 v3ident={self.v3ident}"
            f" {self.address}:{self.dir_port} {self.fingerprint}"
        )

    @classmethod
    def from_torrc_line(cls, line: str) -> DirAuthority:
        """Read a ``DirAuthority`` value (tor(1)): nickname, flags, address:port, fingerprint."""
        words = line.split()
        flags: dict[str, str] = {}
        where: str | None = None
        fingerprint: list[str] = []
        for word in words[1:]:
            if where is None and "=" in word:
                key, _, value = word.partition("=")
                flags[key] = value
            elif where is None and ":" in word:
                where = word
            elif where is None:
                continue  # a flag without a value (no-v2, hs, bridge...)
            else:
                fingerprint.append(word)
        if not words or where is None or "orport" not in flags or "v3ident" not in flags:
            raise TestnetError(f"not a DirAuthority line with orport and v3ident: {line!r}")
        address, _, dir_port = where.rpartition(":")
        try:
            return cls(
                nickname=words[0],
                address=address,
                or_port=int(flags["orport"]),
                dir_port=int(dir_port),
                v3ident=flags["v3ident"],
                fingerprint="".join(fingerprint),
            )
        except ValueError:
            raise TestnetError(f"bad port in DirAuthority line {line!r}") from None


@dataclass(frozen=True, kw_only=True)
class ServiceContact:
    """An onion service (its Ed25519 public key) and port that users start from."""

    public_key: bytes
    port: int

    def __post_init__(self) -> None:
        if len(self.public_key) != 32:
            raise TestnetError("an onion service public key is 32 bytes")
        if not 0 < self.port < 65536:
            raise TestnetError(f"contact port {self.port} is out of range")


@dataclass(frozen=True, kw_only=True)
class JoinCode:
    """Everything another machine needs to use a private Tor network."""

    authorities: tuple[DirAuthority, ...]
    contacts: tuple[ServiceContact, ...] = ()

    def __post_init__(self) -> None:
        if not 1 <= len(self.authorities) <= MAX_AUTHORITIES:
            raise TestnetError(f"a join code names 1 to {MAX_AUTHORITIES} authorities")
        if len(self.contacts) > MAX_CONTACTS:
            raise TestnetError(f"a join code carries at most {MAX_CONTACTS} contacts")

    def encode(self) -> str:
        return encode_join_code(self)

    @classmethod
    def decode(cls, text: str) -> JoinCode:
        return decode_join_code(text)


def encode_join_code(code: JoinCode) -> str:
    """The one-line text form of ``code``."""
    fields = bytearray([len(code.authorities)])
    for auth in code.authorities:
        nick = auth.nickname.encode("ascii")
        fields += bytes([len(nick)]) + nick
        fields += _AUTH_FIXED.pack(
            ipaddress.IPv4Address(auth.address).packed,
            auth.or_port,
            auth.dir_port,
            bytes.fromhex(auth.v3ident),
            bytes.fromhex(auth.fingerprint),
        )
    fields.append(len(code.contacts))
    for contact in code.contacts:
        fields += _CONTACT.pack(contact.public_key, contact.port)
    body = _LENGTH.pack(len(fields)) + fields
    payload = body + zlib.crc32(body).to_bytes(_CRC_BYTES, "little")
    text = base64.b32encode(payload).decode("ascii").rstrip("=")
    return f"{JOIN_CODE_PREFIX}{VERSION}-{text}"


def _chars_for(payload_bytes: int) -> int:
    return (8 * payload_bytes + 4) // 5


def decode_join_code(text: str) -> JoinCode:
    """Read a join code; ``InvalidJoinCode`` says what is wrong and what to do."""
    text = text.strip()
    if not text:
        raise InvalidJoinCode("the join code is empty: paste the last line `testnet share` printed")
    if len(text) > MAX_CODE_CHARS:
        raise InvalidJoinCode(f"this is not a join code: it is longer than {MAX_CODE_CHARS} chars")
    if text != text.upper() and text != text.lower():
        raise InvalidJoinCode(
            "the join code mixes upper and lower case: type it exactly as it was shown"
        )
    upper = text.upper()
    head, sep, data = upper.partition("-NET")
    if head != "ANONSIP" or not sep:
        raise InvalidJoinCode(
            "this is not an anonsip join code (it starts with ANONSIP-NET): paste the last"
            " line that `anonsip testnet share` printed"
        )
    version, dash, data = data.partition("-")
    if not dash or not version.isdigit() or not version.isascii():
        raise InvalidJoinCode(
            f"the join code's version is unreadable ({JOIN_CODE_PREFIX}{VERSION}- expected):"
            " the start of the code was mistyped"
        )
    if int(version) != VERSION:
        raise InvalidJoinCode(
            f"this join code has version {int(version)}; this anonsip reads version {VERSION}:"
            " use the same anonsip release as the machine that shared it"
        )
    for position, char in enumerate(data):
        if char not in _BASE32:
            at = len(text) - len(data) + position + 1
            raise InvalidJoinCode(
                f"character {at} of the join code ({text[at - 1]!r}) cannot be in a join code"
                " (it uses letters and the digits 2-7): check for a mistyped character"
            )
    if len(data) < _LENGTH_CHARS:
        raise InvalidJoinCode("the join code is cut short: copy the whole line")
    (length,) = _LENGTH.unpack_from(_b32decode(data[:_LENGTH_CHARS]))
    expected = _LENGTH.size + length + _CRC_BYTES
    if len(data) != _chars_for(expected):
        have = len(text)
        want = len(text) - len(data) + _chars_for(expected)
        what = "cut short" if have < want else "longer than it says"
        raise InvalidJoinCode(
            f"the join code is {what} ({have} characters where it says {want}):"
            " copy the whole line, exactly"
        )
    payload = _b32decode(data)
    body, crc = payload[:-_CRC_BYTES], payload[-_CRC_BYTES:]
    if zlib.crc32(body) != int.from_bytes(crc, "little") or _b32encode(payload) != data:
        raise InvalidJoinCode(
            "the join code's checksum does not match: a character was mistyped; copy it again"
        )
    try:
        return _read_fields(body[_LENGTH.size :])
    except (struct.error, TestnetError, UnicodeDecodeError, IndexError) as exc:
        raise InvalidJoinCode(
            f"the join code's checksum holds but its contents are not valid ({exc}):"
            " it was made by an incompatible program"
        ) from None


def _b32decode(data: str) -> bytes:
    """Decode unpadded base32 whose alphabet and length were checked by the caller."""
    return base64.b32decode(data + "=" * (-len(data) % 8))


def _b32encode(payload: bytes) -> str:
    return base64.b32encode(payload).decode("ascii").rstrip("=")


def _read_fields(fields: bytes) -> JoinCode:
    at = 0

    def take(n: int) -> bytes:
        nonlocal at
        if at + n > len(fields):
            raise TestnetError("a field runs past the end")
        chunk = fields[at : at + n]
        at += n
        return chunk

    authorities = []
    (n_auth,) = take(1)
    if not 1 <= n_auth <= MAX_AUTHORITIES:
        raise TestnetError(f"{n_auth} authorities")
    for _ in range(n_auth):
        (nick_len,) = take(1)
        nickname = take(nick_len).decode("ascii")
        packed, or_port, dir_port, v3ident, fingerprint = _AUTH_FIXED.unpack(take(_AUTH_FIXED.size))
        authorities.append(
            DirAuthority(
                nickname=nickname,
                address=str(ipaddress.IPv4Address(packed)),
                or_port=or_port,
                dir_port=dir_port,
                v3ident=v3ident.hex().upper(),
                fingerprint=fingerprint.hex().upper(),
            )
        )
    (n_contacts,) = take(1)
    if n_contacts > MAX_CONTACTS:
        raise TestnetError(f"{n_contacts} contacts")
    contacts = []
    for _ in range(n_contacts):
        public_key, port = _CONTACT.unpack(take(_CONTACT.size))
        contacts.append(ServiceContact(public_key=public_key, port=port))
    if at != len(fields):
        raise TestnetError(f"{len(fields) - at} bytes left over")
    return JoinCode(authorities=tuple(authorities), contacts=tuple(contacts))
