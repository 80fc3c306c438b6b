"""Sealed media frames: one call direction's Opus packets on an in-order stream.

Keys: each call direction on each path (an onion stream; a call may use
several) has its own XChaCha20-Poly1305 key and nonce salt, derived with
keyed BLAKE2b (RFC 7693) from the 32-byte export secret of the secure
session, the call id, a direction label and the path number, so the two
directions, two paths and two calls never share a key. The nonce is
``salt || counter`` with a 64-bit frame counter that is never sent: each
path is in order, so a dropped, reordered, replayed or forged frame fails
authentication, and a frame copied from one path to another too. Path 0
keeps the derivation of a single-path call.

Wire format of one frame (all integers big-endian)::

    u16 length of what follows (header + ciphertext), at most MAX_FRAME
    header, authenticated as associated data:
        u8  version (1)
        u8  flags: bits 0-1 = packets - 1, bit 7 = END (sender hung up)
        u32 sequence number of the first 20 ms packet
        u32 sender timestamp of the first packet, ms since the call started
    ciphertext of:
        u8  inner flags: bit 0 = speech (sender's voice activity), bit 1 =
            held (said before the call's first path opened and sent from
            the start backlog: its delay says nothing about the network)
        u32 echo: the newest peer timestamp this side had received (ms)
        u16 echo hold: ms between receiving that frame and sealing this one
        per packet: u16 length, Opus packet

With a constant-bitrate codec every frame of a call has the same size, so
frame sizes and timing reveal neither speech, silence nor mute; voice
activity and round-trip echoes travel inside the ciphertext.
"""

from __future__ import annotations

import hashlib
import struct
from dataclasses import dataclass
from typing import NoReturn

from nacl.bindings import (
    crypto_aead_xchacha20poly1305_ietf_decrypt,
    crypto_aead_xchacha20poly1305_ietf_encrypt,
)
from nacl.exceptions import CryptoError

from anonsip._errors import LocalError, RemoteProtocolError

__all__ = [
    "MAX_FRAME",
    "MAX_PACKETS_PER_FRAME",
    "MAX_PATHS",
    "DirectionKey",
    "MediaFrame",
    "MediaKeys",
    "MediaReceiver",
    "MediaSealer",
    "derive_media_keys",
]

VERSION = 1
MAX_FRAME = 4096
MAX_PACKETS_PER_FRAME = 4
MAX_BUFFERED = 256 * 1024
_U32 = 0xFFFFFFFF
_HEADER = struct.Struct(">BBII")
_INNER = struct.Struct(">BIH")
_LEN = struct.Struct(">H")
_TAG = 16
_FLAG_END = 0x80
_INNER_SPEECH = 0x01
_INNER_HELD = 0x02
_KDF_PERSON = b"anonsip-media-v1"
CALLER_TO_CALLEE = b"caller->callee"
CALLEE_TO_CALLER = b"callee->caller"
MAX_PATHS = 16  # path numbers a call may use, over its whole life


@dataclass(frozen=True, kw_only=True, repr=False)
class DirectionKey:
    """The AEAD key and nonce salt for one direction of one call."""

    key: bytes
    salt: bytes

    def __repr__(self) -> str:  # secrets are never logged
        return "DirectionKey(<secret>)"


@dataclass(frozen=True, kw_only=True)
class MediaKeys:
    send: DirectionKey
    receive: DirectionKey


def _direction_key(secret: bytes, call_id: bytes, label: bytes) -> DirectionKey:
    material = hashlib.blake2b(
        _LEN.pack(len(call_id)) + call_id + label,
        key=secret,
        person=_KDF_PERSON,
        digest_size=48,
    ).digest()
    return DirectionKey(key=material[:32], salt=material[32:])


def derive_media_keys(
    secret: bytes, call_id: str | bytes, *, caller: bool, path: int = 0
) -> MediaKeys:
    """Both directions' keys for this side of a call, on media path ``path``.

    ``secret`` is the 32-byte export key of the secure session the call runs
    over; ``caller`` says whether this side sent the INVITE.
    """
    if len(secret) != 32:
        raise LocalError("the media key needs a 32-byte session export secret")
    cid = call_id.encode() if isinstance(call_id, str) else call_id
    if not 0 < len(cid) <= 1024:
        raise LocalError("a call id must be 1..1024 bytes")
    if not 0 <= path < MAX_PATHS:
        raise LocalError(f"a call has media paths 0..{MAX_PATHS - 1}")
    suffix = b"" if path == 0 else b"/path" + bytes([path])
    out = _direction_key(secret, cid, CALLER_TO_CALLEE + suffix)
    back = _direction_key(secret, cid, CALLEE_TO_CALLER + suffix)
    return MediaKeys(send=out, receive=back) if caller else MediaKeys(send=back, receive=out)


def _nonce(key: DirectionKey, counter: int) -> bytes:
    return key.salt + counter.to_bytes(8, "big")


@dataclass(frozen=True, kw_only=True)
class MediaFrame:
    """One opened frame: ``packets`` are consecutive 20 ms Opus packets."""

    seq: int
    timestamp_ms: int
    packets: tuple[bytes, ...]
    speech: bool = False
    held: bool = False
    echo_ms: int = 0
    echo_hold_ms: int = 0
    end: bool = False


class MediaSealer:
    """Seals this side's frames in order; sequence numbers must increase."""

    def __init__(self, key: DirectionKey) -> None:
        self._key = key
        self._counter = 0
        self._next_seq = 0
        self._ended = False

    def seal(
        self,
        *,
        seq: int,
        timestamp_ms: int,
        packets: tuple[bytes, ...] | list[bytes],
        speech: bool = False,
        held: bool = False,
        echo_ms: int = 0,
        echo_hold_ms: int = 0,
    ) -> bytes:
        if not 1 <= len(packets) <= MAX_PACKETS_PER_FRAME:
            raise LocalError(f"a frame holds 1..{MAX_PACKETS_PER_FRAME} packets")
        inner = (_INNER_SPEECH if speech else 0) | (_INNER_HELD if held else 0)
        body = _INNER.pack(inner, echo_ms & _U32, min(echo_hold_ms, 0xFFFF))
        body += b"".join(_LEN.pack(len(p)) + p for p in packets)
        return self._seal(seq, timestamp_ms, len(packets) - 1, body)

    def seal_end(self, *, seq: int, timestamp_ms: int) -> bytes:
        """The last frame: tells the peer this side hung up on purpose."""
        frame = self._seal(seq, timestamp_ms, _FLAG_END, _INNER.pack(0, 0, 0))
        self._ended = True
        return frame

    def _seal(self, seq: int, timestamp_ms: int, flags: int, body: bytes) -> bytes:
        if self._ended:
            raise LocalError("this media direction has already ended")
        if not self._next_seq <= seq <= _U32:
            raise LocalError(f"sequence numbers must increase; {seq} < {self._next_seq}")
        header = _HEADER.pack(VERSION, flags, seq, timestamp_ms & _U32)
        sealed = crypto_aead_xchacha20poly1305_ietf_encrypt(
            body, header, _nonce(self._key, self._counter), self._key.key
        )
        frame = header + sealed
        if len(frame) > MAX_FRAME:
            raise LocalError(f"a media frame may be at most {MAX_FRAME} bytes")
        self._counter += 1
        self._next_seq = seq + (flags & 0x03) + 1
        return _LEN.pack(len(frame)) + frame


class MediaReceiver:
    """Sans-IO parser of the peer's frames: ``receive_data`` then ``next_frame``.

    Raises only ``RemoteProtocolError``; after one, the receiver stays broken.
    """

    def __init__(self, key: DirectionKey, *, max_frame: int = MAX_FRAME) -> None:
        self._key = key
        self._max_frame = max_frame
        self._buffer = bytearray()
        self._counter = 0
        self._next_seq = 0
        self._eof = False
        self._ended = False
        self._error: RemoteProtocolError | None = None

    @property
    def ended(self) -> bool:
        """True once the peer's END frame was opened."""
        return self._ended

    def receive_data(self, data: bytes | bytearray) -> None:
        self._raise_if_broken()
        if self._eof:
            raise LocalError("receive_data after receive_eof")
        if len(self._buffer) + len(data) > MAX_BUFFERED:
            self._fail("the peer sent media faster than it can be read")
        self._buffer += data

    def receive_eof(self) -> None:
        """The stream closed; a half frame left over means it was cut."""
        self._eof = True
        self._raise_if_broken()
        if self._buffer:
            self._fail("the media stream ended in the middle of a frame")

    def next_frame(self) -> MediaFrame | None:
        """The next opened frame, or None until more bytes arrive."""
        self._raise_if_broken()
        if len(self._buffer) < _LEN.size:
            return None
        (length,) = _LEN.unpack_from(self._buffer)
        if not _HEADER.size + _TAG + _INNER.size <= length <= self._max_frame:
            self._fail(f"the peer sent a media frame of impossible length {length}")
        if len(self._buffer) < _LEN.size + length:
            return None
        frame = bytes(self._buffer[_LEN.size : _LEN.size + length])
        del self._buffer[: _LEN.size + length]
        return self._open(frame)

    def _open(self, frame: bytes) -> MediaFrame:
        if self._ended:
            self._fail("the peer sent media after ending")
        header, sealed = frame[: _HEADER.size], frame[_HEADER.size :]
        version, flags, seq, timestamp = _HEADER.unpack(header)
        try:
            body = crypto_aead_xchacha20poly1305_ietf_decrypt(
                sealed, header, _nonce(self._key, self._counter), self._key.key
            )
        except CryptoError:
            self._fail("a media frame failed authentication (forged, replayed or reordered)")
        if version != VERSION:
            self._fail(f"the peer uses media frame version {version}; this side speaks {VERSION}")
        if seq < self._next_seq:
            self._fail(f"the peer's sequence number went back ({seq} < {self._next_seq})")
        if flags & ~(_FLAG_END | 0x03):
            self._fail(f"unknown media frame flags {flags:#x}")
        self._counter += 1
        inner_flags, echo, hold = _INNER.unpack_from(body)
        if flags & _FLAG_END:
            self._ended = True
            return MediaFrame(seq=seq, timestamp_ms=timestamp, packets=(), end=True)
        count = (flags & 0x03) + 1
        packets: list[bytes] = []
        pos = _INNER.size
        for _ in range(count):
            if pos + _LEN.size > len(body):
                self._fail("a media frame holds fewer packets than its header says")
            (n,) = _LEN.unpack_from(body, pos)
            pos += _LEN.size
            if n == 0 or pos + n > len(body):
                self._fail("a media frame holds a packet of impossible length")
            packets.append(body[pos : pos + n])
            pos += n
        if pos != len(body):
            self._fail("a media frame has bytes after its last packet")
        self._next_seq = seq + count
        return MediaFrame(
            seq=seq,
            timestamp_ms=timestamp,
            packets=tuple(packets),
            speech=bool(inner_flags & _INNER_SPEECH),
            held=bool(inner_flags & _INNER_HELD),
            echo_ms=echo,
            echo_hold_ms=hold,
        )

    def _fail(self, message: str) -> NoReturn:
        self._error = RemoteProtocolError(message)
        raise self._error

    def _raise_if_broken(self) -> None:
        if self._error is not None:
            raise RemoteProtocolError(str(self._error))
