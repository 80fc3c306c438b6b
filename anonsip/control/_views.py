"""The control API's one vocabulary: typed views of what a node reports.

Every result and every event the node sends is one of these frozen,
keyword-only views (or a list of them). The node builds them, the CLI, the
terminal UI and the UI's test double read them; none of them writes the
map by hand. One encoding (``View.encode``: a plain msgpack-ready map) and
one decoding (``View.decode``), tolerant as a client must be: unknown keys
are ignored, a field that is missing or of the wrong type takes its
default, an enum value this version does not know takes the field's
default. Only a field with no default is required; its absence raises
``SchemaError`` (a ``RemoteProtocolError``: the bytes came from the node).
"""

from __future__ import annotations

import dataclasses
import enum
import math
import types
import typing
from collections.abc import Mapping
from typing import Any, ClassVar, Self

from anonsip._errors import RemoteProtocolError

__all__ = [
    "AudioDevicesView",
    "CallDirection",
    "CallState",
    "CallStatsView",
    "CallView",
    "ContactState",
    "ContactView",
    "DhtView",
    "IdentityView",
    "InviteView",
    "LookupView",
    "MailboxView",
    "MessageDirection",
    "MessageKind",
    "MessageState",
    "MessageView",
    "NodePhase",
    "OnionContactView",
    "PresenceStatus",
    "PresenceView",
    "RegistrationView",
    "RequestView",
    "SafetyNumberView",
    "SchemaError",
    "SeedView",
    "StatusView",
    "TorView",
    "View",
]


class SchemaError(RemoteProtocolError):
    """A map from the node lacks a field the schema requires."""


class MessageDirection(enum.StrEnum):
    IN = "in"
    OUT = "out"


class MessageKind(enum.StrEnum):
    TEXT = "text"
    CALL = "call"  # a finished call: ``text`` says how it ended, ``duration_s`` how long


class MessageState(enum.StrEnum):
    """Where a message is. Outgoing states only move forward.

    queued: nothing left this machine yet. sent: the peer's node (or a
    mailbox) has it. delivered: the peer's node stored it and said so.
    request: a first message to someone who has not accepted us yet.
    failed: the peer refused it for good. received: an incoming message.
    """

    QUEUED = "queued"
    REQUEST = "request"
    SENT = "sent"
    IN_MAILBOX = "in_mailbox"
    DELIVERED = "delivered"
    FAILED = "failed"
    RECEIVED = "received"

    @property
    def rank(self) -> int:
        return _MESSAGE_RANK[self]


_MESSAGE_RANK = {
    MessageState.QUEUED: 0,
    MessageState.REQUEST: 1,
    MessageState.SENT: 2,
    MessageState.IN_MAILBOX: 2,
    MessageState.FAILED: 3,
    MessageState.DELIVERED: 4,
    MessageState.RECEIVED: 4,
}


class ContactState(enum.StrEnum):
    ACCEPTED = "accepted"
    REQUESTED = "requested"  # we wrote first; they have not answered yet
    BLOCKED = "blocked"
    REMOVED = "removed"  # only in a ``contact`` event: the contact is gone


class PresenceStatus(enum.StrEnum):
    AVAILABLE = "available"
    AWAY = "away"
    BUSY = "busy"
    OFFLINE = "offline"
    UNKNOWN = "unknown"


class CallDirection(enum.StrEnum):
    IN = "in"
    OUT = "out"


class CallState(enum.StrEnum):
    CALLING = "calling"  # dialling and inviting: nothing rings yet
    RINGING = "ringing"  # offered, not answered (either direction)
    ACTIVE = "active"
    HELD = "held"
    ENDING = "ending"
    ENDED = "ended"


class NodePhase(enum.StrEnum):
    STARTING = "starting"
    BOOTSTRAPPING = "bootstrapping tor"
    JOINING = "joining the DHT"
    PUBLISHING = "publishing"
    RUNNING = "running"
    RECONNECTING = "restarting tor"
    STOPPING = "stopping"


# -- the codec ----------------------------------------------------------------------


def _finite(value: object) -> bool:
    return not isinstance(value, float) or math.isfinite(value)


def _decode_value(kind: Any, value: object) -> tuple[bool, Any]:
    """(ok, decoded) for one field value of type ``kind``; ok is False if it does not fit."""
    origin = typing.get_origin(kind)
    if origin is types.UnionType or origin is typing.Union:
        if value is None and type(None) in typing.get_args(kind):
            return True, None
        for option in typing.get_args(kind):
            if option is type(None):
                continue
            ok, decoded = _decode_value(option, value)
            if ok:
                return True, decoded
        return False, None
    if origin is tuple:
        (item_kind, _ellipsis) = typing.get_args(kind)
        if not isinstance(value, list | tuple):
            return False, None
        items = []
        for item in value:
            ok, decoded = _decode_value(item_kind, item)
            if ok:  # a list keeps the items it can read
                items.append(decoded)
        return True, tuple(items)
    if isinstance(kind, type) and issubclass(kind, View):
        if not isinstance(value, Mapping):
            return False, None
        try:
            return True, kind.decode(value)
        except SchemaError:
            return False, None
    if isinstance(kind, type) and issubclass(kind, enum.Enum):
        try:
            return True, kind(value)
        except ValueError:
            return False, None
    if kind is bool:
        return isinstance(value, bool), value
    if kind is int:
        return isinstance(value, int) and not isinstance(value, bool), value
    if kind is float:
        if isinstance(value, int | float) and not isinstance(value, bool) and _finite(value):
            return True, float(value)
        return False, None
    if kind is str:
        return isinstance(value, str), value
    raise TypeError(f"the control schema has no decoding for {kind!r}")  # a bug in a view


def _encode_value(value: object) -> object:
    if isinstance(value, View):
        return value.encode()
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, tuple):
        return [_encode_value(item) for item in value]
    return value


@dataclasses.dataclass(frozen=True, kw_only=True)
class View:
    """Base of every view: ``encode`` to a map, ``decode`` from one."""

    _hints: ClassVar[dict[type, dict[str, Any]]] = {}

    @classmethod
    def _field_types(cls) -> dict[str, Any]:
        hints = View._hints.get(cls)
        if hints is None:
            hints = typing.get_type_hints(cls)
            View._hints[cls] = hints
        return hints

    def encode(self) -> dict[str, Any]:
        return {f.name: _encode_value(getattr(self, f.name)) for f in dataclasses.fields(self)}

    @classmethod
    def decode(cls, data: Mapping[str, Any]) -> Self:
        if not isinstance(data, Mapping):
            raise SchemaError(f"a {cls.__name__} must be a map")
        hints = cls._field_types()
        values: dict[str, Any] = {}
        for f in dataclasses.fields(cls):
            required = f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
            if f.name in data:
                ok, decoded = _decode_value(hints[f.name], data[f.name])
                if ok:
                    values[f.name] = decoded
                    continue
            if required:
                raise SchemaError(f"a {cls.__name__} needs a valid {f.name!r}")
        return cls(**values)

    @classmethod
    def decode_list(cls, data: object) -> tuple[Self, ...]:
        """The items of a list result that decode; others are skipped."""
        if not isinstance(data, list | tuple):
            raise SchemaError(f"expected a list of {cls.__name__}")
        items = []
        for item in data:
            try:
                items.append(cls.decode(item))
            except SchemaError:
                continue
        return tuple(items)


# -- views --------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True, kw_only=True)
class MessageView(View):
    """One message of a conversation (``send``, ``history``, the ``message`` event)."""

    peer: str
    message_id: str
    direction: MessageDirection = MessageDirection.IN
    text: str = ""
    time: float = 0.0
    state: MessageState = MessageState.QUEUED
    kind: MessageKind = MessageKind.TEXT
    duration_s: float = 0.0


@dataclasses.dataclass(frozen=True, kw_only=True)
class ContactView(View):
    """One contact (``contacts.list``, ``contacts.add``, the ``contact`` event)."""

    address: str
    nick: str = ""
    state: ContactState = ContactState.ACCEPTED
    verified: bool = False
    presence: PresenceStatus = PresenceStatus.UNKNOWN
    note: str = ""
    unread: int = 0
    queued: int = 0  # our messages waiting to leave for this contact


@dataclasses.dataclass(frozen=True, kw_only=True)
class PresenceView(View):
    """A contact's presence changed (the ``presence`` event), or ours (in ``status``)."""

    address: str = ""  # empty in ``status``: our own
    status: PresenceStatus = PresenceStatus.UNKNOWN
    note: str = ""


@dataclasses.dataclass(frozen=True, kw_only=True)
class RequestView(View):
    """A contact request from a stranger (``requests``, the ``request`` event)."""

    address: str
    text: str = ""
    time: float = 0.0
    count: int = 1


@dataclasses.dataclass(frozen=True, kw_only=True)
class TorView(View):
    progress: int = 0
    phase: str = ""


@dataclasses.dataclass(frozen=True, kw_only=True)
class IdentityView(View):
    """Who this node is (``identity``; the short form inside ``status``)."""

    nick: str = ""
    address: str = ""
    sip_uri: str = ""
    onion_address: str = ""
    invite: str = ""  # share this: it brings a new contact into the DHT too


@dataclasses.dataclass(frozen=True, kw_only=True)
class DhtView(View):
    routing_table: int = 0
    records: int = 0
    deposits: int = 0  # others' mailbox deposits this node holds for the DHT
    deposit_bytes: int = 0  # what they take
    alone: bool = False  # joined nobody: the user should add a contact's invite
    hint: str = ""


@dataclasses.dataclass(frozen=True, kw_only=True)
class RegistrationView(View):
    state: str = "unregistered"  # unregistered / registering / registered / failed
    period: int = 0
    seq: int = 0
    expires: float = 0.0
    stored_at: int = 0


@dataclasses.dataclass(frozen=True, kw_only=True)
class MailboxView(View):
    last_collected: float = 0.0  # wall-clock seconds; 0 before the first collection
    waiting: int = 0  # our messages deposited in others' mailboxes, not yet delivered


@dataclasses.dataclass(frozen=True, kw_only=True)
class StatusView(View):
    """The node's state (``status`` and the ``status`` event)."""

    phase: NodePhase = NodePhase.STARTING
    tor: TorView = dataclasses.field(default_factory=TorView)
    onion_address: str = ""
    identity: IdentityView = dataclasses.field(default_factory=IdentityView)
    dht: DhtView = dataclasses.field(default_factory=DhtView)
    registration: RegistrationView = dataclasses.field(default_factory=RegistrationView)
    mailbox: MailboxView = dataclasses.field(default_factory=MailboxView)
    outbox: int = 0
    presence: PresenceView = dataclasses.field(default_factory=PresenceView)
    links: int = 0
    restart: str = ""  # the command that starts this node again, for a UI's hint


@dataclasses.dataclass(frozen=True, kw_only=True)
class InviteView(View):
    """An invite to share (``invite``): the address, a few DHT contacts, an expiry."""

    invite: str
    address: str = ""
    contacts: int = 0  # how many DHT contacts it carries
    expires: float = 0.0


@dataclasses.dataclass(frozen=True, kw_only=True)
class SeedView(View):
    """A DHT node this node joins through at start (``bootstrap.list``)."""

    contact: str  # ONION:PORT
    source: str = ""  # saved / invite / configured / network


@dataclasses.dataclass(frozen=True, kw_only=True)
class SafetyNumberView(View):
    safety_number: str
    compact: str = ""


@dataclasses.dataclass(frozen=True, kw_only=True)
class OnionContactView(View):
    onion: str
    port: int


@dataclasses.dataclass(frozen=True, kw_only=True)
class LookupView(View):
    """A pseudonym's registration as the DHT holds it (``lookup``)."""

    found: bool = False
    reason: str = ""  # why not found
    period: int = 0
    seq: int = 0
    expires: float = 0.0
    contacts: tuple[OnionContactView, ...] = ()


@dataclasses.dataclass(frozen=True, kw_only=True)
class AudioDevicesView(View):
    """The sound devices calls can use, by the names ``input_device``/``output_device`` take."""

    inputs: tuple[str, ...] = ()
    outputs: tuple[str, ...] = ()
    problem: str = ""  # why there are none (no PortAudio, no sound card)


@dataclasses.dataclass(frozen=True, kw_only=True)
class CallStatsView(View):
    """A call's live figures (``calls`` and the ``call.stats`` event)."""

    call_id: str = ""
    peer: str = ""
    duration_s: float | None = None
    round_trip_ms: float | None = None
    jitter_ms: float | None = None
    playout_delay_ms: float | None = None
    target_delay_ms: float | None = None
    concealed_frames: int = 0
    played_frames: int = 0
    received_frames: int = 0
    sent_frames: int = 0
    late_frames: int = 0
    dropped_frames: int = 0
    bitrate: int = 0
    wire_bitrate: int = 0
    mos: float | None = None


@dataclasses.dataclass(frozen=True, kw_only=True)
class CallView(View):
    """One call (``call``, ``calls`` and the ``call`` event)."""

    call_id: str
    peer: str = ""
    direction: CallDirection = CallDirection.OUT
    state: CallState = CallState.CALLING
    started: float | None = None  # wall-clock seconds it was answered
    muted: bool = False
    held: bool = False
    reason: str = ""  # why it ended
    detail: str = ""
    transfer: int | None = None  # the status of a transfer we asked for
    transfer_to: str = ""  # the peer asks us to call this address: allow or refuse it
    stats: CallStatsView | None = None
