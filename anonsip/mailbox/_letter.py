"""A letter: what one deposit in a mailbox carries, sealed so only the recipient reads it.

Inside (after opening) a letter says who wrote it and proves it::

    sender's Ed25519 key (32) | signature (64) | body

    body = version (u8, 1) | kind (u8) | time, Unix ms (u64) | id length (u8)
           | message id (UTF-8, 1..64) | text length (u32) | text (UTF-8)
           | reply box length (u8, 0 or 32) | reply box
           | zero padding up to the size bucket

and the signature is the sender's over ``LABEL | recipient's key | body``,
so a letter cannot be passed off as written to someone else. The whole is
sealed to the recipient's X25519 key (libsodium's sealed box: an ephemeral
key, XSalsa20-Poly1305), so a storing node, a depositor or anyone who
copies it learns nothing of it but its size, and sizes come in a few fixed
buckets. Kinds: a message, a delivery receipt (the text is empty; the id
is the delivered message's), a contact request (a first message to
someone who has not accepted us). The reply box is the sender's contacts'
mailbox secret (``anonsip.mailbox.mailbox_key``), given only to people the
sender counts as contacts, so that their mail to the sender lands where
strangers cannot reach.

Opening treats the bytes as hostile: any failure is ``LetterError`` (a
``RemoteProtocolError``), nothing else escapes.
"""

from __future__ import annotations

import enum
import struct
from dataclasses import dataclass

import nacl.bindings
import nacl.exceptions

from anonsip._errors import LocalError, RemoteProtocolError
from anonsip.identity import Identity, verify_signature
from anonsip.identity._identity import ed25519_to_x25519_public

__all__ = [
    "BOX_SECRET",
    "BUCKETS",
    "MAX_TEXT",
    "Letter",
    "LetterError",
    "LetterKind",
    "open_letter",
    "seal_letter",
    "sealed_sizes",
]

LABEL = b"anonsip-mailbox-letter-v1\x00"
VERSION = 1
BUCKETS = (512, 2048, 8448)  # letter sizes after padding: all a storing node can see of one
MAX_TEXT = 8192  # as a stored message (anonsip.store MAX_TEXT_BYTES); fits the largest bucket
BOX_SECRET = 32  # a contacts' mailbox secret
_HEAD = struct.Struct(">BBQB")
_TEXT_LEN = struct.Struct(">I")
_SEALED_OVERHEAD = nacl.bindings.crypto_box_SEALBYTES
_SIGNED = 32 + 64


class LetterError(RemoteProtocolError):
    """A deposit that is not a letter to us: tampered, truncated, for someone else."""


class LetterKind(enum.IntEnum):
    MESSAGE = 1
    RECEIPT = 2
    REQUEST = 3


@dataclass(frozen=True, kw_only=True)
class Letter:
    kind: LetterKind
    message_id: str
    time_ms: int
    text: str = ""
    reply_box: bytes = b""  # the sender's contacts' mailbox secret, for contacts only
    sender: bytes = b""  # filled in when opened: the verified author's Ed25519 key

    def body(self) -> bytes:
        mid = self.message_id.encode()
        text = self.text.encode()
        if not 0 < len(mid) <= 64:
            raise LocalError("a message id is 1 to 64 bytes")
        if len(text) > MAX_TEXT:
            raise LocalError(f"a letter's text is at most {MAX_TEXT} bytes")
        if len(self.reply_box) not in (0, BOX_SECRET):
            raise LocalError(f"a reply box is {BOX_SECRET} bytes")
        raw = _HEAD.pack(VERSION, int(self.kind), self.time_ms, len(mid)) + mid
        raw += _TEXT_LEN.pack(len(text)) + text
        raw += bytes([len(self.reply_box)]) + self.reply_box
        bucket = next(size for size in BUCKETS if size >= len(raw) + _SIGNED)
        return raw.ljust(bucket - _SIGNED, b"\0")


def sealed_sizes() -> tuple[int, ...]:
    """The only sizes a sealed letter comes in."""
    return tuple(size + _SEALED_OVERHEAD for size in BUCKETS)


def seal_letter(sender: Identity, recipient: bytes, letter: Letter) -> bytes:
    """``letter`` from ``sender``, sealed to the pseudonym with Ed25519 key ``recipient``."""
    body = letter.body()
    signature = sender.sign(LABEL + recipient + body)
    inner = sender.public_key + signature + body
    return nacl.bindings.crypto_box_seal(inner, ed25519_to_x25519_public(recipient))


def open_letter(recipient: Identity, sealed: bytes) -> Letter:
    """The letter inside ``sealed``, with its verified sender; ``LetterError`` otherwise."""
    if len(sealed) not in sealed_sizes():
        raise LetterError("a deposit of a size no letter has")
    x_public = ed25519_to_x25519_public(recipient.public_key)
    try:
        inner = nacl.bindings.crypto_box_seal_open(sealed, x_public, recipient.x25519_private_key)
    except (nacl.exceptions.CryptoError, ValueError) as exc:
        raise LetterError("a deposit not sealed to us, or tampered with") from exc
    sender, signature, body = inner[:32], inner[32:96], inner[96:]
    try:
        good = verify_signature(sender, LABEL + recipient.public_key + body, signature)
    except (LocalError, ValueError) as exc:
        raise LetterError("a letter whose sender key is not a valid key") from exc
    if not good:
        raise LetterError("a letter whose signature does not match its sender")
    return _parse_body(body, sender)


def _parse_body(body: bytes, sender: bytes) -> Letter:
    if len(body) < _HEAD.size:
        raise LetterError("a letter cut short")
    version, kind, time_ms, id_len = _HEAD.unpack_from(body)
    if version != VERSION:
        raise LetterError(f"a letter of version {version}")
    try:
        letter_kind = LetterKind(kind)
    except ValueError:
        raise LetterError(f"a letter of unknown kind {kind}") from None
    at = _HEAD.size
    if not 0 < id_len <= 64 or len(body) < at + id_len + _TEXT_LEN.size:
        raise LetterError("a letter with a bad message id")
    mid = body[at : at + id_len]
    at += id_len
    (text_len,) = _TEXT_LEN.unpack_from(body, at)
    at += _TEXT_LEN.size
    if text_len > MAX_TEXT or len(body) < at + text_len + 1:
        raise LetterError("a letter whose text runs past its end")
    text = body[at : at + text_len]
    at += text_len
    box_len = body[at]
    at += 1
    if box_len not in (0, BOX_SECRET) or len(body) < at + box_len:
        raise LetterError("a letter with a bad reply box")
    reply_box = body[at : at + box_len]
    if any(body[at + box_len :]):
        raise LetterError("a letter whose padding is not zeros")
    try:
        return Letter(
            kind=letter_kind,
            message_id=mid.decode(),
            time_ms=time_ms,
            text=text.decode(),
            reply_box=reply_box,
            sender=sender,
        )
    except UnicodeDecodeError as exc:
        raise LetterError("a letter that is not UTF-8") from exc
