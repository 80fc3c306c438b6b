"""Registration records: what a user publishes in the DHT so callers can find
them, with the meaning of a SIP REGISTER (RFC 3261 section 10): the
contacts (onion address + port) where the user can be reached, presence, an
expiry and a sequence number.

For each time period (rend-spec-v3 [TIME-PERIODS]) the record is

* encrypted with XChaCha20-Poly1305 under ``record_key(A, period)``, which
  only people who know the user's address can compute, padded to a fixed
  size so its length does not reveal the number of contacts;
* wrapped in an outer value ``[version, A', period, sequence, expires,
  ciphertext, signature]`` signed by the period's blinded key ``A'``;
* stored in the DHT under ``anonsip.dht.record_key(A')`` (SHA3-256 of the blinded key).

DHT storage nodes check the outer signature with ``verify_outer`` without
being able to decrypt or to link ``A'`` to the address.  Everything here is
fed network bytes, so every refusal is a ``RemoteProtocolError``.
"""

import enum
from dataclasses import dataclass
from typing import Any, NamedTuple

import msgpack
import nacl.bindings
import nacl.exceptions

from anonsip._errors import LocalError, RemoteProtocolError
from anonsip.identity import (
    TOR_TIME_PERIODS,
    BlindedKey,
    Identity,
    RandomSource,
    TimePeriods,
    blind_public_key,
    record_key,
    verify_signature,
)
from onion import (
    InvalidOnionAddress,
    onion_address_from_public_key,
    public_key_from_onion_address,
)

VERSION = 1
MAX_CONTACTS = 8
MAX_NOTE_BYTES = 128
# The contact-request proof-of-work effort (leading zero bits) a record may advertise; 0
# (and records from before the field) means "not said": senders use their own default.
MAX_EFFORT = 32
PADDED_SIZE = 512
_NONCE_BYTES = 24
_TAG_BYTES = 16
# The longest canonical value: array header, version, bin8 key, three u64 at
# 9 bytes each, bin16 ciphertext, bin8 signature. DHT nodes cap this kind here.
MAX_VALUE_BYTES = (
    1 + 1 + (2 + 32) + 3 * 9 + (3 + _NONCE_BYTES + PADDED_SIZE + _TAG_BYTES) + (2 + 64)
)
_SIGN_CONTEXT = b"anonsip-registration/1"
_U64 = 2**64


class RecordError(RemoteProtocolError):
    """A registration value from the DHT was refused."""


class MalformedRecord(RecordError):
    """The value is not a well-formed registration record."""


class BadSignature(RecordError):
    """The value's signature does not verify: it was forged or damaged."""


class WrongKey(RecordError):
    """The value is a valid record, but of a different identity."""


class WrongPeriod(RecordError):
    """The value is for another time period than the one asked for."""


class RecordExpired(RecordError):
    """The registration has expired."""


class RolledBack(RecordError):
    """The value is older than one already seen (lower sequence number)."""


class Presence(enum.Enum):
    AVAILABLE = "available"
    AWAY = "away"
    BUSY = "busy"
    OFFLINE = "offline"


def onion_public_key(onion: str) -> bytes:
    """The service key inside a v3 onion address (rend-spec-v3 [ONIONADDRESS]).

    Raises ``ValueError`` if the address is not a valid v3 onion address.
    """
    if not onion.lower().endswith(".onion"):
        raise ValueError("not a v3 onion address")
    try:
        return public_key_from_onion_address(onion)
    except InvalidOnionAddress as exc:
        raise ValueError(str(exc)) from None


def onion_address(public_key: bytes) -> str:
    return onion_address_from_public_key(public_key) + ".onion"


@dataclass(frozen=True, kw_only=True, slots=True)
class Contact:
    """Where the user's node listens: a v3 onion address and a virtual port."""

    onion: str
    port: int

    def __post_init__(self) -> None:
        try:
            key = onion_public_key(self.onion)
        except ValueError as exc:
            raise LocalError(f"{self.onion!r} is not a valid v3 onion address") from exc
        object.__setattr__(self, "onion", onion_address(key))
        if not isinstance(self.port, int) or not 1 <= self.port <= 65535:
            raise LocalError("a contact port is between 1 and 65535")


@dataclass(frozen=True, kw_only=True, slots=True)
class Registration:
    """The record's content.  ``expires`` is a Unix time in seconds."""

    contacts: tuple[Contact, ...]
    presence: Presence
    expires: int
    sequence: int
    note: str = ""
    effort: int = 0  # the proof-of-work bits a contact request needs now (proposal 327)

    def __post_init__(self) -> None:
        bad = not isinstance(self.effort, int) or isinstance(self.effort, bool)
        if bad or not 0 <= self.effort <= MAX_EFFORT:
            raise LocalError(f"an advertised effort is between 0 and {MAX_EFFORT} bits")
        if len(self.contacts) > MAX_CONTACTS:
            raise LocalError(f"a registration holds at most {MAX_CONTACTS} contacts")
        if not 0 <= self.sequence < _U64 or not 0 <= self.expires < _U64:
            raise LocalError("sequence and expiry are unsigned 64-bit numbers")
        if len(self.note.encode("utf-8")) > MAX_NOTE_BYTES:
            raise LocalError(f"a presence note is at most {MAX_NOTE_BYTES} bytes of UTF-8")


class OuterRecord(NamedTuple):
    """What a storage node learns from a value: enough to store and replace it."""

    blinded_public_key: bytes
    sequence: int
    expires: int


@dataclass(frozen=True, kw_only=True, slots=True)
class _Outer:
    blinded_public_key: bytes
    period: int
    sequence: int
    expires: int
    ciphertext: bytes
    signature: bytes

    def header(self) -> bytes:
        packed: bytes = msgpack.packb(
            [VERSION, self.blinded_public_key, self.period, self.sequence, self.expires]
        )
        return packed

    def signed_message(self) -> bytes:
        return _SIGN_CONTEXT + self.header() + self.ciphertext

    def encode(self) -> bytes:
        packed: bytes = msgpack.packb(
            [
                VERSION,
                self.blinded_public_key,
                self.period,
                self.sequence,
                self.expires,
                self.ciphertext,
                self.signature,
            ]
        )
        return packed


def _is_u64(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value < _U64


def _decode_outer(value: bytes) -> _Outer:
    if not isinstance(value, bytes) or len(value) > MAX_VALUE_BYTES:
        raise MalformedRecord("the registration value is too large")
    try:
        obj = msgpack.unpackb(
            value, raw=False, strict_map_key=True, max_bin_len=MAX_VALUE_BYTES, max_array_len=8
        )
    except (ValueError, msgpack.UnpackException) as exc:
        raise MalformedRecord("the registration value is not readable") from exc
    if not isinstance(obj, list) or len(obj) != 7:
        raise MalformedRecord("the registration value has the wrong shape")
    version, blinded, period, sequence, expires, ciphertext, signature = obj
    if version != VERSION or isinstance(version, bool):
        raise MalformedRecord(f"unsupported registration format version {version!r}")
    if not (isinstance(blinded, bytes) and len(blinded) == 32):
        raise MalformedRecord("the blinded key is malformed")
    if not (_is_u64(period) and _is_u64(sequence) and _is_u64(expires)):
        raise MalformedRecord("period, sequence or expiry is malformed")
    expected_ct = _NONCE_BYTES + PADDED_SIZE + _TAG_BYTES
    if not (isinstance(ciphertext, bytes) and len(ciphertext) == expected_ct):
        raise MalformedRecord("the encrypted part has the wrong size")
    if not (isinstance(signature, bytes) and len(signature) == 64):
        raise MalformedRecord("the signature is malformed")
    outer = _Outer(
        blinded_public_key=blinded,
        period=period,
        sequence=sequence,
        expires=expires,
        ciphertext=ciphertext,
        signature=signature,
    )
    if outer.encode() != value:
        raise MalformedRecord("the registration value is not in canonical form")
    return outer


def verify_outer(value: bytes) -> OuterRecord:
    """For DHT storage nodes: check the signature under the blinded key, without
    decrypting.  Returns ``(blinded_public_key, sequence, expires)``."""
    outer = _decode_outer(value)
    if not verify_signature(outer.blinded_public_key, outer.signed_message(), outer.signature):
        raise BadSignature("the registration signature does not verify")
    return OuterRecord(outer.blinded_public_key, outer.sequence, outer.expires)


def record_period(value: bytes) -> int:
    """The time period a (well-formed) value claims to be for."""
    return _decode_outer(value).period


def _encode_inner(record: Registration) -> bytes:
    content: dict[str, Any] = {
        "c": [[onion_public_key(c.onion), c.port] for c in record.contacts],
        "p": record.presence.value,
        "n": record.note,
    }
    if record.effort:  # absent when not said: one encoding per record, old readers unchanged
        content["e"] = record.effort
    packed: bytes = msgpack.packb(content)
    if len(packed) + 2 > PADDED_SIZE:
        raise LocalError("the registration is too large to seal")
    return (len(packed).to_bytes(2, "big") + packed).ljust(PADDED_SIZE, b"\0")


def _decode_inner(padded: bytes, sequence: int, expires: int) -> Registration:
    length = int.from_bytes(padded[:2], "big")
    if length + 2 > len(padded) or any(padded[2 + length :]):
        raise MalformedRecord("the record's padding is malformed")
    try:
        obj: Any = msgpack.unpackb(padded[2 : 2 + length], raw=False, strict_map_key=True)
    except (ValueError, msgpack.UnpackException) as exc:
        raise MalformedRecord("the record's content is not readable") from exc
    if not isinstance(obj, dict) or set(obj) not in ({"c", "p", "n"}, {"c", "p", "n", "e"}):
        raise MalformedRecord("the record's content has the wrong fields")
    effort = obj.get("e", 0)
    if "e" in obj and (
        not isinstance(effort, int) or isinstance(effort, bool) or not 1 <= effort <= MAX_EFFORT
    ):
        raise MalformedRecord("the advertised effort is malformed")
    contacts = obj["c"]
    if not isinstance(contacts, list) or len(contacts) > MAX_CONTACTS:
        raise MalformedRecord("the record's contact list is malformed")
    try:
        parsed = []
        for item in contacts:
            if not (isinstance(item, list) and len(item) == 2 and isinstance(item[0], bytes)):
                raise MalformedRecord("a contact is malformed")
            if len(item[0]) != 32 or not isinstance(item[1], int) or isinstance(item[1], bool):
                raise MalformedRecord("a contact is malformed")
            parsed.append(Contact(onion=onion_address(item[0]), port=item[1]))
        if not isinstance(obj["n"], str):
            raise MalformedRecord("the presence note is malformed")
        return Registration(
            contacts=tuple(parsed),
            presence=Presence(obj["p"]),
            expires=expires,
            sequence=sequence,
            note=obj["n"],
            effort=effort,
        )
    except (LocalError, ValueError) as exc:
        raise MalformedRecord(f"the record's content is invalid: {exc}") from exc


def _aead_ad(outer_header: bytes) -> bytes:
    return _SIGN_CONTEXT + outer_header


def seal(
    identity: Identity,
    period: int,
    record: Registration,
    *,
    rng: RandomSource,
    periods: TimePeriods = TOR_TIME_PERIODS,
) -> bytes:
    """Encrypt and sign ``record`` for ``period``: the DHT value to store."""
    if not periods.start_of(period) < record.expires <= periods.end_of(period + 1):
        raise LocalError(
            "a registration must expire after its period starts and at most one "
            "period after it ends"
        )
    key = BlindedKey.for_identity(identity, period, periods)
    unsigned = _Outer(
        blinded_public_key=key.public_key,
        period=period,
        sequence=record.sequence,
        expires=record.expires,
        ciphertext=b"",
        signature=b"",
    )
    nonce = rng(_NONCE_BYTES)
    box = nacl.bindings.crypto_aead_xchacha20poly1305_ietf_encrypt(
        _encode_inner(record),
        _aead_ad(unsigned.header()),
        nonce,
        record_key(identity.public_key, period, periods),
    )
    with_ct = _Outer(
        blinded_public_key=key.public_key,
        period=period,
        sequence=record.sequence,
        expires=record.expires,
        ciphertext=nonce + box,
        signature=b"",
    )
    signed = _Outer(
        blinded_public_key=key.public_key,
        period=period,
        sequence=record.sequence,
        expires=record.expires,
        ciphertext=with_ct.ciphertext,
        signature=key.sign(with_ct.signed_message()),
    )
    return signed.encode()


def open_record(
    address_public_key: bytes,
    period: int,
    value: bytes,
    now: float,
    *,
    last_sequence: int | None = None,
    periods: TimePeriods = TOR_TIME_PERIODS,
) -> Registration:
    """Verify and decrypt a value fetched for ``address_public_key`` and ``period``.

    ``last_sequence`` is the highest sequence number already accepted for this
    address; an older value raises ``RolledBack``.
    """
    outer = _decode_outer(value)
    if not verify_signature(outer.blinded_public_key, outer.signed_message(), outer.signature):
        raise BadSignature("the registration signature does not verify")
    if outer.period != period:
        raise WrongPeriod(f"the registration is for time period {outer.period}, not {period}")
    if outer.blinded_public_key != blind_public_key(address_public_key, period, periods):
        raise WrongKey("the registration belongs to a different identity")
    if now >= outer.expires:
        raise RecordExpired("the registration has expired")
    if last_sequence is not None and outer.sequence < last_sequence:
        raise RolledBack(
            f"the registration has sequence {outer.sequence}, older than {last_sequence}"
        )
    try:
        padded = nacl.bindings.crypto_aead_xchacha20poly1305_ietf_decrypt(
            outer.ciphertext[_NONCE_BYTES:],
            _aead_ad(outer.header()),
            outer.ciphertext[:_NONCE_BYTES],
            record_key(address_public_key, period, periods),
        )
    except nacl.exceptions.CryptoError as exc:
        raise MalformedRecord("the registration cannot be decrypted") from exc
    return _decode_inner(padded, outer.sequence, outer.expires)
