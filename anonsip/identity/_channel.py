"""The secure channel: a Noise session over a byte stream, sans-IO.

Between two anonsip nodes every stream (an onion-service connection) starts
with a Noise handshake that proves each side holds an Ed25519 identity:

* ``Noise_IK_25519_ChaChaPoly_BLAKE2b`` when the caller knows the callee's
  address (the callee's static key is its Ed25519 key converted to X25519);
* ``Noise_XX_25519_ChaChaPoly_BLAKE2b`` when it does not.

Wire format: every frame is a 2-byte big-endian length ``L`` then ``L``
bytes, ``1 <= L <= max_frame``.  The first handshake frame starts with one
byte naming the pattern.  Handshake payloads carry the sender's 32-byte
Ed25519 public key, checked against the Noise static key it converts to.
Transport frames are ``ChaChaPoly(type || payload)`` with implicit nonces, so
a tampered, replayed, reordered or dropped frame fails authentication; any
failure breaks the channel for good.  Type ``DATA`` carries a message,
``REKEY`` asks both sides to rekey that direction (which also happens every
``rekey_interval`` frames), and ``CLOSE`` ends the stream cleanly; a stream
that ends without ``CLOSE`` is reported as truncated.

States (one table, ``_TRANSITIONS``): HANDSHAKING -> OPEN -> LOCAL_CLOSED /
REMOTE_CLOSED -> CLOSED, and any state -> BROKEN on error.
"""

import enum
import hashlib
from dataclasses import dataclass
from typing import Final

from anonsip._errors import LocalError, RemoteProtocolError
from anonsip.identity._address import Address
from anonsip.identity._errors import ChannelBroken, HandshakeError, InvalidAddress
from anonsip.identity._identity import Identity, RandomSource, ed25519_to_x25519_public
from anonsip.identity._noise import TAGLEN, CipherState, HandshakeState

MAX_FRAME: Final = 65535
MIN_FRAME: Final = 256  # room for the largest handshake message (129 bytes)
DEFAULT_REKEY_INTERVAL: Final = 10_000
MAX_RECEIVE_BUFFER: Final = 1 << 20
_PROLOGUE_LABEL: Final = b"anonsip-secure-channel/1"
_KIND_IK: Final = 0x01
_KIND_XX: Final = 0x02
_KIND_TO_PATTERN: Final = {_KIND_IK: "IK", _KIND_XX: "XX"}
_TYPE_DATA: Final = 0x00
_TYPE_REKEY: Final = 0x01
_TYPE_CLOSE: Final = 0x02


class ChannelState(enum.Enum):
    HANDSHAKING = "handshaking"
    OPEN = "open"
    LOCAL_CLOSED = "we closed"
    REMOTE_CLOSED = "peer closed"
    CLOSED = "closed"
    BROKEN = "broken"


class _Input(enum.Enum):
    HANDSHAKE_DONE = enum.auto()
    CLOSE_SENT = enum.auto()
    CLOSE_RECEIVED = enum.auto()


_TRANSITIONS: Final = {
    (ChannelState.HANDSHAKING, _Input.HANDSHAKE_DONE): ChannelState.OPEN,
    (ChannelState.OPEN, _Input.CLOSE_SENT): ChannelState.LOCAL_CLOSED,
    (ChannelState.OPEN, _Input.CLOSE_RECEIVED): ChannelState.REMOTE_CLOSED,
    (ChannelState.LOCAL_CLOSED, _Input.CLOSE_RECEIVED): ChannelState.CLOSED,
    (ChannelState.REMOTE_CLOSED, _Input.CLOSE_SENT): ChannelState.CLOSED,
}
_CAN_SEND: Final = {ChannelState.OPEN, ChannelState.REMOTE_CLOSED}
_CAN_RECEIVE: Final = {ChannelState.HANDSHAKING, ChannelState.OPEN, ChannelState.LOCAL_CLOSED}


@dataclass(frozen=True, kw_only=True)
class ChannelEvent:
    """Base class of everything ``next_event`` returns."""


@dataclass(frozen=True, kw_only=True)
class HandshakeComplete(ChannelEvent):
    remote_public_key: bytes
    handshake_hash: bytes
    pattern: str

    @property
    def remote_address(self) -> Address:
        return Address(self.remote_public_key)


@dataclass(frozen=True, kw_only=True)
class Message(ChannelEvent):
    data: bytes


@dataclass(frozen=True, kw_only=True)
class CloseReceived(ChannelEvent):
    """The peer closed its direction cleanly; nothing more will arrive."""


class NeedData:
    """Sentinel: feed more bytes with ``receive_data`` before asking again."""

    def __repr__(self) -> str:
        return "NEED_DATA"


NEED_DATA: Final = NeedData()


def _prologue(kind: int, prologue: bytes) -> bytes:
    return _PROLOGUE_LABEL + bytes([kind]) + len(prologue).to_bytes(4, "big") + prologue


class SecureChannel:
    """One end of a secure channel.  After every call, write ``data_to_send()``."""

    def __init__(
        self,
        identity: Identity,
        *,
        initiator: bool,
        prologue: bytes,
        rng: RandomSource,
        remote_public_key: bytes | None,
        max_frame: int,
        rekey_interval: int,
    ) -> None:
        # Use SecureChannel.initiate or SecureChannel.respond.
        if not MIN_FRAME <= max_frame <= MAX_FRAME:
            raise LocalError(f"max_frame must be between {MIN_FRAME} and {MAX_FRAME}")
        if rekey_interval < 1:
            raise LocalError("rekey_interval must be positive")
        self.identity = identity
        self.initiator = initiator
        self.max_frame = max_frame
        self.rekey_interval = rekey_interval
        self.state = ChannelState.HANDSHAKING
        self.remote_public_key: bytes | None = remote_public_key
        self._prologue = prologue
        self._rng = rng
        self._outgoing = bytearray()
        self._incoming = bytearray()
        self._eof = False
        self._events: list[ChannelEvent] = []
        self._handshake: HandshakeState | None = None
        self._send: CipherState | None = None
        self._recv: CipherState | None = None
        self._sent_since_rekey = 0
        self._received_since_rekey = 0
        self._exporter: bytes | None = None
        self._handshake_hash: bytes | None = None
        self._broken_reason = ""
        self._ik_only = False

    # -- construction --------------------------------------------------------

    @classmethod
    def initiate(
        cls,
        identity: Identity,
        *,
        rng: RandomSource,
        remote_public_key: bytes | None = None,
        prologue: bytes = b"",
        max_frame: int = MAX_FRAME,
        rekey_interval: int = DEFAULT_REKEY_INTERVAL,
    ) -> "SecureChannel":
        """Start a handshake: IK if the peer's Ed25519 key is known, else XX."""
        channel = cls(
            identity,
            initiator=True,
            prologue=prologue,
            rng=rng,
            remote_public_key=remote_public_key,
            max_frame=max_frame,
            rekey_interval=rekey_interval,
        )
        if remote_public_key is not None:
            try:
                rs = ed25519_to_x25519_public(Address(remote_public_key).public_key)
            except InvalidAddress as exc:
                raise LocalError("the peer's public key is not a valid identity key") from exc
            kind, payload = _KIND_IK, identity.public_key
        else:
            rs, kind, payload = None, _KIND_XX, b""
        channel._handshake = HandshakeState(
            _KIND_TO_PATTERN[kind],
            initiator=True,
            rng=rng,
            prologue=_prologue(kind, prologue),
            s=identity.x25519_private_key,
            rs=rs,
        )
        channel._queue_frame(bytes([kind]) + channel._handshake.write_message(payload))
        return channel

    @classmethod
    def respond(
        cls,
        identity: Identity,
        *,
        rng: RandomSource,
        prologue: bytes = b"",
        max_frame: int = MAX_FRAME,
        rekey_interval: int = DEFAULT_REKEY_INTERVAL,
        ik_only: bool = False,
    ) -> "SecureChannel":
        """Wait for a peer's handshake (IK or XX, whichever it starts).

        ``ik_only``: refuse XX, whose second message would tell anyone who
        connects which identity answers here; only a caller that already
        knows our key (IK) gets a session.
        """
        channel = cls(
            identity,
            initiator=False,
            prologue=prologue,
            rng=rng,
            remote_public_key=None,
            max_frame=max_frame,
            rekey_interval=rekey_interval,
        )
        channel._ik_only = ik_only
        return channel

    # -- state ---------------------------------------------------------------

    def _transition(self, event: _Input) -> None:
        try:
            self.state = _TRANSITIONS[(self.state, event)]
        except KeyError:
            raise LocalError(f"cannot {event.name.lower()} while {self.state.value}") from None

    def _break(self, reason: str) -> RemoteProtocolError:
        self.state = ChannelState.BROKEN
        self._broken_reason = reason
        self._incoming.clear()
        return RemoteProtocolError(f"secure channel broken: {reason}")

    def _check_not_broken(self) -> None:
        if self.state is ChannelState.BROKEN:
            raise ChannelBroken(
                f"the secure channel is broken ({self._broken_reason}); open a new one"
            )

    @property
    def handshake_hash(self) -> bytes:
        if self._handshake_hash is None:
            raise LocalError("the handshake is not complete yet")
        return self._handshake_hash

    def export_key(self, label: bytes, length: int = 32) -> bytes:
        """A key for another purpose (e.g. per-call media keys), the same on both
        ends, independent of the channel keys and of other labels."""
        if self._exporter is None:
            raise LocalError("the handshake is not complete yet")
        if not 16 <= length <= 64:
            raise LocalError("exported keys are 16 to 64 bytes")
        data = len(label).to_bytes(4, "big") + label
        return hashlib.blake2b(
            data, key=self._exporter, digest_size=length, person=b"asip-export"
        ).digest()

    # -- sending -------------------------------------------------------------

    def data_to_send(self) -> bytes:
        """Everything queued for the peer; the caller must write all of it."""
        data = bytes(self._outgoing)
        self._outgoing.clear()
        return data

    @property
    def max_message(self) -> int:
        return self.max_frame - TAGLEN - 1

    def send_message(self, data: bytes) -> None:
        self._check_not_broken()
        if self.state not in _CAN_SEND:
            raise LocalError(f"cannot send while the channel is {self.state.value}")
        if len(data) > self.max_message:
            raise LocalError(f"a message is at most {self.max_message} bytes; split it")
        self._send_frame(_TYPE_DATA, data)

    def request_rekey(self) -> None:
        """Rekey our sending direction now (the peer follows on the REKEY frame)."""
        self._check_not_broken()
        if self.state not in _CAN_SEND:
            raise LocalError(f"cannot rekey while the channel is {self.state.value}")
        self._send_frame(_TYPE_REKEY, b"")

    def close(self) -> None:
        """Send CLOSE: we will send nothing more (the peer may still send)."""
        self._check_not_broken()
        if self.state not in _CAN_SEND:
            raise LocalError(f"cannot close while the channel is {self.state.value}")
        self._send_frame(_TYPE_CLOSE, b"")
        self._transition(_Input.CLOSE_SENT)

    def _send_frame(self, frame_type: int, payload: bytes) -> None:
        assert self._send is not None
        self._queue_frame(self._send.encrypt_with_ad(b"", bytes([frame_type]) + payload))
        self._sent_since_rekey += 1
        if frame_type == _TYPE_REKEY or self._sent_since_rekey >= self.rekey_interval:
            self._send.rekey()
            self._sent_since_rekey = 0

    def _queue_frame(self, body: bytes) -> None:
        if not 1 <= len(body) <= self.max_frame:
            raise LocalError(f"a frame body is 1 to {self.max_frame} bytes")
        self._outgoing += len(body).to_bytes(2, "big") + body

    # -- receiving -----------------------------------------------------------

    def receive_data(self, data: bytes | bytearray | memoryview) -> None:
        """Feed bytes read from the stream; ``b""`` means the stream ended."""
        self._check_not_broken()
        if self._eof:
            raise LocalError("receive_data called after end of stream")
        if not data:
            self._eof = True
            return
        if len(self._incoming) + len(data) > MAX_RECEIVE_BUFFER:
            raise LocalError("too much unread data: call next_event before feeding more")
        self._incoming += data

    def next_event(self) -> ChannelEvent | NeedData:
        """The next event, or ``NEED_DATA``.  Raises ``RemoteProtocolError`` (and
        the channel is broken) on anything forged, damaged or out of order."""
        self._check_not_broken()
        while not self._events:
            body = self._take_frame()
            if body is None:
                return NEED_DATA
            try:
                self._handle_frame(body)
            except RemoteProtocolError as exc:
                raise self._break(str(exc).removeprefix("secure channel broken: ")) from exc
        return self._events.pop(0)

    def _take_frame(self) -> bytes | None:
        if len(self._incoming) >= 2:
            length = int.from_bytes(self._incoming[:2], "big")
            if length == 0 or length > self.max_frame:
                raise self._break(f"the peer sent a frame of {length} bytes")
            if self.state not in _CAN_RECEIVE:
                raise self._break("the peer sent data after closing its side")
            if len(self._incoming) >= 2 + length:
                body = bytes(self._incoming[2 : 2 + length])
                del self._incoming[: 2 + length]
                return body
        if self._eof:
            if self._incoming:
                raise self._break("the stream ended in the middle of a frame (truncated)")
            if self.state in _CAN_RECEIVE:
                raise self._break("the stream ended without a CLOSE (truncated)")
        return None

    def _handle_frame(self, body: bytes) -> None:
        if self.state is ChannelState.HANDSHAKING:
            self._handle_handshake(body)
            return
        assert self._recv is not None
        try:
            plaintext = self._recv.decrypt_with_ad(b"", body)
        except HandshakeError:
            raise RemoteProtocolError(
                "a frame failed authentication (tampered, replayed, reordered or lost)"
            ) from None
        if not plaintext:
            raise RemoteProtocolError("a frame has no type byte")
        frame_type, payload = plaintext[0], plaintext[1:]
        self._received_since_rekey += 1
        if frame_type == _TYPE_REKEY or self._received_since_rekey >= self.rekey_interval:
            self._recv.rekey()
            self._received_since_rekey = 0
        if frame_type == _TYPE_DATA:
            self._events.append(Message(data=payload))
        elif frame_type == _TYPE_REKEY:
            if payload:
                raise RemoteProtocolError("a REKEY frame carries data")
        elif frame_type == _TYPE_CLOSE:
            if payload:
                raise RemoteProtocolError("a CLOSE frame carries data")
            self._transition(_Input.CLOSE_RECEIVED)
            self._events.append(CloseReceived())
        else:
            raise RemoteProtocolError(f"unknown frame type {frame_type}")

    def _handle_handshake(self, body: bytes) -> None:
        if self._handshake is None:  # responder, first frame: which pattern?
            kind = body[0]
            pattern = _KIND_TO_PATTERN.get(kind)
            if pattern is None:
                raise HandshakeError(f"unknown handshake kind {kind}")
            if pattern == "XX" and self._ik_only:
                raise HandshakeError("this side answers only callers that know its key (IK)")
            self._handshake = HandshakeState(
                pattern,
                initiator=False,
                rng=self._rng,
                prologue=_prologue(kind, self._prologue),
                s=self.identity.x25519_private_key,
            )
            body = body[1:]
        handshake = self._handshake
        payload = handshake.read_message(body)
        pattern = handshake.pattern
        if self.initiator:
            if pattern == "IK":
                self._expect_empty(payload)
            else:  # XX message 2 carries the responder's identity; we answer with ours
                self.remote_public_key = self._verify_identity(payload)
                self._queue_frame(handshake.write_message(self.identity.public_key))
        elif pattern == "IK":
            self.remote_public_key = self._verify_identity(payload)
            self._queue_frame(handshake.write_message(b""))
        elif handshake.is_complete:  # XX message 3
            self.remote_public_key = self._verify_identity(payload)
        else:  # XX message 1
            self._expect_empty(payload)
            self._queue_frame(handshake.write_message(self.identity.public_key))
        if handshake.is_complete:
            self._finish_handshake(handshake)

    @staticmethod
    def _expect_empty(payload: bytes) -> None:
        if payload:
            raise HandshakeError("an unexpected handshake payload")

    def _verify_identity(self, payload: bytes) -> bytes:
        assert self._handshake is not None
        if len(payload) != 32:
            raise HandshakeError("the peer's identity key is missing or malformed")
        try:
            claimed = Address(payload).public_key
        except InvalidAddress:
            raise HandshakeError("the peer's identity key is not a valid Ed25519 key") from None
        if ed25519_to_x25519_public(claimed) != self._handshake.remote_static:
            raise HandshakeError("the peer's identity key does not match its Noise static key")
        return claimed

    def _finish_handshake(self, handshake: HandshakeState) -> None:
        self._send, self._recv = handshake.split()
        self._exporter = handshake.exporter_secret()
        self._handshake_hash = handshake.handshake_hash
        self._handshake = None  # drop ephemeral secrets
        self._transition(_Input.HANDSHAKE_DONE)
        assert self.remote_public_key is not None
        self._events.append(
            HandshakeComplete(
                remote_public_key=self.remote_public_key,
                handshake_hash=self._handshake_hash,
                pattern=handshake.pattern,
            )
        )
