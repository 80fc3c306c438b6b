"""The terminal UI's view model: what the screens show, as plain frozen data.

The node speaks the control API of ``docs/control-api.md``: replies to
operations and pushed events. This module turns both into one immutable
``ViewState`` through pure functions (``apply_result``, ``apply_event`` and
a few local actions), like a reducer: ``new = apply_event(old, name, data,
now=...)``. Nothing here reads a clock, touches a socket or imports
prompt_toolkit; the caller hands in ``now`` (wall-clock seconds, the time
base of the node's ``time``/``started`` fields).

The node is local and trusted, but a malformed field must never crash the
UI: every field is read with a typed default, and a reply or event that is
not a map is ignored.
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Callable, Mapping
from typing import Any

__all__ = [
    "MAX_CALLS",
    "MAX_CONTACTS",
    "MAX_MESSAGES",
    "MAX_REQUESTS",
    "Call",
    "CallPhase",
    "CallQuality",
    "Contact",
    "ContactRequest",
    "Conversation",
    "Identity",
    "Message",
    "MessageState",
    "NodeStatus",
    "ViewState",
    "apply_error",
    "apply_event",
    "apply_result",
    "close_conversation",
    "display_name",
    "find_contact",
    "incoming_call",
    "move_selection",
    "open_conversation",
    "peer_label",
    "select_contact",
    "set_connected",
    "set_notice",
    "shown_call",
]

MAX_MESSAGES = 500  # per open conversation; the oldest are dropped from view
MAX_CONTACTS = 1000
MAX_REQUESTS = 100
MAX_CALLS = 8


# -- parsing helpers: typed reads with defaults ---------------------------------


def _map(value: object) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _str(data: Mapping[str, Any], key: str, default: str = "") -> str:
    value = data.get(key, default)
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return value if isinstance(value, str) else default


def _int(data: Mapping[str, Any], key: str, default: int = 0) -> int:
    value = data.get(key, default)
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value == value:  # not NaN
        return int(value)
    return default


def _float(data: Mapping[str, Any], key: str) -> float | None:
    value = data.get(key)
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if value == value else None


def _bool(data: Mapping[str, Any], key: str, default: bool = False) -> bool:
    value = data.get(key, default)
    return value if isinstance(value, bool) else default


# -- the pieces of state ---------------------------------------------------------


@dataclasses.dataclass(frozen=True, kw_only=True)
class NodeStatus:
    """The node's ``status``: Tor bootstrap, DHT, registration, outbox."""

    tor_progress: int | None  # None: the node has no Tor connection at all
    tor_phase: str
    onion_address: str
    dht_routing_table: int
    dht_records: int
    registration_state: str
    registration_seq: int
    registration_expires: float | None
    outbox: int
    presence: str  # our own presence status

    @property
    def tor_connected(self) -> bool:
        return self.tor_progress is not None

    @classmethod
    def parse(cls, value: object) -> NodeStatus:
        data = _map(value)
        tor = data.get("tor")
        tor_progress: int | None = None
        tor_phase = ""
        if isinstance(tor, Mapping):
            tor_progress = max(0, min(100, _int(tor, "progress")))
            tor_phase = _str(tor, "phase")
        dht = _map(data.get("dht"))
        registration = _map(data.get("registration"))
        presence = data.get("presence")
        own = _str(presence, "status") if isinstance(presence, Mapping) else ""
        return cls(
            tor_progress=tor_progress,
            tor_phase=tor_phase,
            onion_address=_str(data, "onion_address"),
            dht_routing_table=_int(dht, "routing_table"),
            dht_records=_int(dht, "records"),
            registration_state=_str(registration, "state", "unknown"),
            registration_seq=_int(registration, "seq"),
            registration_expires=_float(registration, "expires"),
            outbox=_int(data, "outbox"),
            presence=own,
        )


@dataclasses.dataclass(frozen=True, kw_only=True)
class Identity:
    """Who we are: ``identity`` op."""

    nick: str
    address: str
    sip_uri: str
    fingerprint: str

    @classmethod
    def parse(cls, value: object) -> Identity:
        data = _map(value)
        return cls(
            nick=_str(data, "nick"),
            address=_str(data, "address"),
            sip_uri=_str(data, "sip_uri"),
            fingerprint=_str(data, "fingerprint"),
        )


@dataclasses.dataclass(frozen=True, kw_only=True)
class Contact:
    """One entry of ``contacts.list``."""

    address: str
    nick: str
    state: str  # accepted / requested / blocked
    verified: bool
    presence: str  # available / away / busy / offline / ...
    note: str
    unread: int

    @classmethod
    def parse(cls, value: object, base: Contact | None = None) -> Contact | None:
        """A contact from a map; fields missing from it keep ``base``'s values."""
        data = _map(value)
        address = _str(data, "address", base.address if base else "")
        if not address:
            return None
        if base is None:
            base = cls(
                address=address,
                nick="",
                state="accepted",
                verified=False,
                presence="offline",
                note="",
                unread=0,
            )
        return cls(
            address=address,
            nick=_str(data, "nick", base.nick),
            state=_str(data, "state", base.state),
            verified=_bool(data, "verified", base.verified),
            presence=_str(data, "presence", base.presence) or "offline",
            note=_str(data, "note", base.note),
            unread=max(0, _int(data, "unread", base.unread)),
        )


class MessageState(enum.Enum):
    """Delivery state of one message; out-going states only move forward."""

    QUEUED = "queued"
    SENT = "sent"
    DELIVERED = "delivered"
    FAILED = "failed"
    RECEIVED = "received"

    @property
    def rank(self) -> int:
        return _MESSAGE_RANK[self]

    @classmethod
    def parse(cls, value: object) -> MessageState | None:
        try:
            return cls(value)
        except ValueError:
            return None


# A reply and an event about the same message can arrive in either order
# (the node may send before it answers ``send``): never move backwards.
_MESSAGE_RANK = {
    MessageState.QUEUED: 0,
    MessageState.SENT: 1,
    MessageState.FAILED: 2,
    MessageState.DELIVERED: 3,
    MessageState.RECEIVED: 3,
}


@dataclasses.dataclass(frozen=True, kw_only=True)
class Message:
    message_id: str
    direction: str  # "in" / "out"
    text: str
    time: float | None
    state: MessageState

    @property
    def outgoing(self) -> bool:
        return self.direction == "out"

    @classmethod
    def parse(cls, value: object) -> Message | None:
        data = _map(value)
        message_id = _str(data, "message_id")
        if not message_id:
            return None
        direction = "out" if _str(data, "direction") == "out" else "in"
        default = MessageState.QUEUED if direction == "out" else MessageState.RECEIVED
        return cls(
            message_id=message_id,
            direction=direction,
            text=_str(data, "text"),
            time=_float(data, "time"),
            state=MessageState.parse(data.get("state")) or default,
        )

    def merged(self, newer: Message) -> Message:
        """This message updated by ``newer`` news about it (state never regresses)."""
        state = newer.state if newer.state.rank >= self.state.rank else self.state
        return dataclasses.replace(
            self,
            text=newer.text or self.text,
            time=self.time if self.time is not None else newer.time,
            state=state,
        )


@dataclasses.dataclass(frozen=True, kw_only=True)
class Conversation:
    """The conversation on screen: a contact's address and its messages, oldest first."""

    peer: str
    messages: tuple[Message, ...] = ()
    loaded: bool = False  # history arrived

    def with_message(self, message: Message) -> Conversation:
        messages = list(self.messages)
        for index, old in enumerate(messages):
            if old.message_id == message.message_id:
                messages[index] = old.merged(message)
                break
        else:
            messages.append(message)
        return dataclasses.replace(self, messages=tuple(messages[-MAX_MESSAGES:]))


@dataclasses.dataclass(frozen=True, kw_only=True)
class ContactRequest:
    address: str
    text: str
    time: float | None

    @classmethod
    def parse(cls, value: object) -> ContactRequest | None:
        data = _map(value)
        address = _str(data, "address")
        if not address:
            return None
        return cls(address=address, text=_str(data, "text"), time=_float(data, "time"))


class CallPhase(enum.Enum):
    """What the UI shows of a call; the node's finer states map onto these."""

    RINGING = "ringing"  # offered, not answered yet (either direction)
    ACTIVE = "active"
    HELD = "held"
    ENDED = "ended"


_CALL_PHASES: Mapping[str, CallPhase] = {
    **dict.fromkeys(
        ("ringing", "incoming", "calling", "trying", "early", "proceeding", "inviting"),
        CallPhase.RINGING,
    ),
    **dict.fromkeys(
        ("active", "established", "connected", "confirmed", "answered", "in_call"),
        CallPhase.ACTIVE,
    ),
    **dict.fromkeys(("held", "on_hold", "hold"), CallPhase.HELD),
    **dict.fromkeys(
        (
            "ended",
            "terminated",
            "declined",
            "rejected",
            "failed",
            "cancelled",
            "canceled",
            "busy",
            "hungup",
            "closed",
            "timeout",
            "missed",
        ),
        CallPhase.ENDED,
    ),
}


@dataclasses.dataclass(frozen=True, kw_only=True)
class CallQuality:
    """Live figures of a running call (``call.stats`` event)."""

    playout_delay_ms: float | None = None
    concealed_frames: int | None = None
    mos: float | None = None

    @classmethod
    def parse(cls, value: object, base: CallQuality) -> CallQuality:
        data = _map(value)
        delay = _first_float(data, ("playout_delay_ms", "delay_ms", "jitter_buffer_ms"))
        if delay is None:
            seconds = _first_float(data, ("playout_delay", "playout_delay_s"))
            delay = None if seconds is None else seconds * 1000.0
        concealed = _first_float(data, ("concealed_frames", "concealed", "plc_frames"))
        mos = _first_float(data, ("mos", "mos_estimate"))
        return cls(
            playout_delay_ms=base.playout_delay_ms if delay is None else delay,
            concealed_frames=base.concealed_frames if concealed is None else int(concealed),
            mos=base.mos if mos is None else mos,
        )


def _first_float(data: Mapping[str, Any], keys: tuple[str, ...]) -> float | None:
    for key in keys:
        value = _float(data, key)
        if value is not None:
            return value
    return None


@dataclasses.dataclass(frozen=True, kw_only=True)
class Call:
    call_id: str
    peer: str
    incoming: bool
    phase: CallPhase
    state: str  # the node's own word for it, shown verbatim
    started: float | None  # wall-clock seconds the call was answered
    muted: bool = False
    held: bool = False
    quality: CallQuality = dataclasses.field(default_factory=CallQuality)

    def duration(self, now: float) -> float:
        return 0.0 if self.started is None else max(0.0, now - self.started)


# -- the whole state ---------------------------------------------------------------


@dataclasses.dataclass(frozen=True, kw_only=True)
class ViewState:
    connected: bool = False  # the control connection to the node
    status: NodeStatus | None = None
    identity: Identity | None = None
    contacts: tuple[Contact, ...] = ()
    selected: str | None = None  # address highlighted in the contacts pane
    conversation: Conversation | None = None
    requests: tuple[ContactRequest, ...] = ()
    calls: tuple[Call, ...] = ()
    safety_numbers: Mapping[str, str] = dataclasses.field(default_factory=dict)
    notice: str = ""
    notice_is_error: bool = False


def display_name(contact: Contact) -> str:
    return contact.nick or _short(contact.address)


def _short(address: str) -> str:
    return address if len(address) <= 16 else f"{address[:10]}…{address[-4:]}"


def find_contact(state: ViewState, peer: str) -> Contact | None:
    """The contact a ``PEER`` names: its address, its nick or its ``sip:`` URI."""
    for contact in state.contacts:
        if peer in (contact.address, f"sip:{contact.address}"):
            return contact
    for contact in state.contacts:
        if contact.nick and contact.nick == peer:
            return contact
    return None


def _peer_address(state: ViewState, peer: str) -> str:
    contact = find_contact(state, peer)
    return contact.address if contact else peer


def peer_label(state: ViewState, peer: str) -> str:
    contact = find_contact(state, peer)
    return display_name(contact) if contact else _short(peer)


def incoming_call(state: ViewState) -> Call | None:
    """The call waiting for the user to answer or decline, if any."""
    for call in state.calls:
        if call.incoming and call.phase is CallPhase.RINGING:
            return call
    return None


def shown_call(state: ViewState) -> Call | None:
    """The call the call bar shows: an answered one first, else an outgoing ringing one."""
    for call in state.calls:
        if call.phase in (CallPhase.ACTIVE, CallPhase.HELD):
            return call
    for call in state.calls:
        if not call.incoming:
            return call
    return None


def _contact_order(contact: Contact) -> tuple[int, str, str]:
    group = {"accepted": 0, "requested": 1}.get(contact.state, 2)
    return (group, display_name(contact).casefold(), contact.address)


def _with_contacts(state: ViewState, contacts: list[Contact]) -> ViewState:
    ordered = tuple(sorted(contacts, key=_contact_order)[:MAX_CONTACTS])
    selected = state.selected
    if selected not in {c.address for c in ordered}:
        selected = ordered[0].address if ordered else None
    return dataclasses.replace(state, contacts=ordered, selected=selected)


def _upsert_contact(state: ViewState, data: object) -> ViewState:
    address = _str(_map(data), "address")
    base = next((c for c in state.contacts if c.address == address), None)
    contact = Contact.parse(data, base)
    if contact is None:
        return state
    if state.conversation and state.conversation.peer == contact.address:
        contact = dataclasses.replace(contact, unread=0)  # it is on screen: read
    others = [c for c in state.contacts if c.address != contact.address]
    return _with_contacts(state, [*others, contact])


def _with_call(state: ViewState, call: Call) -> ViewState:
    others = [c for c in state.calls if c.call_id != call.call_id]
    if call.phase is CallPhase.ENDED:
        return dataclasses.replace(state, calls=tuple(others))
    return dataclasses.replace(state, calls=(*others, call)[-MAX_CALLS:])


def _update_call(
    state: ViewState, call_id: str | None, change: Callable[[Call], Call]
) -> ViewState:
    target = _call_by_id(state, call_id)
    return state if target is None else _with_call(state, change(target))


def _call_by_id(state: ViewState, call_id: str | None) -> Call | None:
    if call_id:
        return next((c for c in state.calls if c.call_id == call_id), None)
    # No id: the op acted on "the" call, as the node does.
    return incoming_call(state) or shown_call(state)


def _parse_call(state: ViewState, data: Mapping[str, Any], now: float) -> Call | None:
    call_id = _str(data, "call_id")
    if not call_id:
        return None
    old = next((c for c in state.calls if c.call_id == call_id), None)
    raw_state = _str(data, "state", old.state if old else "ringing")
    phase = _CALL_PHASES.get(raw_state.lower(), old.phase if old else CallPhase.RINGING)
    direction = _str(data, "direction")
    incoming = direction.startswith("in") if direction else bool(old and old.incoming)
    started = old.started if old else None
    if started is None:
        started = _float(data, "started")
    if started is None and phase in (CallPhase.ACTIVE, CallPhase.HELD):
        started = now
    base = old or Call(
        call_id=call_id,
        peer="",
        incoming=incoming,
        phase=phase,
        state=raw_state,
        started=None,
    )
    quality = base.quality
    if "stats" in data:
        quality = CallQuality.parse(data["stats"], quality)
    return dataclasses.replace(
        base,
        peer=_str(data, "peer", base.peer),
        incoming=incoming,
        phase=phase,
        state=raw_state,
        started=started,
        muted=_bool(data, "muted", base.muted),
        held=_bool(data, "held", phase is CallPhase.HELD),
        quality=quality,
    )


# -- local actions --------------------------------------------------------------


def set_connected(state: ViewState, connected: bool) -> ViewState:
    if connected:
        return dataclasses.replace(state, connected=True)
    return dataclasses.replace(
        state,
        connected=False,
        calls=(),
        notice="Lost the connection to the node; restart it with `anonsip run`.",
        notice_is_error=True,
    )


def set_notice(state: ViewState, text: str, *, error: bool = False) -> ViewState:
    line = " ".join(text.split())  # one line, whatever the node said
    return dataclasses.replace(state, notice=line, notice_is_error=error)


def apply_error(state: ViewState, op: str, message: str) -> ViewState:
    """An operation failed: show the node's one-line message."""
    return set_notice(state, f"{op}: {message}" if message else f"{op} failed", error=True)


def select_contact(state: ViewState, address: str) -> ViewState:
    if all(c.address != address for c in state.contacts):
        return state
    return dataclasses.replace(state, selected=address)


def move_selection(state: ViewState, delta: int) -> ViewState:
    if not state.contacts:
        return state
    addresses = [c.address for c in state.contacts]
    index = addresses.index(state.selected) if state.selected in addresses else 0
    index = max(0, min(len(addresses) - 1, index + delta))
    return dataclasses.replace(state, selected=addresses[index])


def open_conversation(state: ViewState, peer: str) -> ViewState:
    """Show ``peer``'s conversation (empty until its history arrives)."""
    address = _peer_address(state, peer)
    if state.conversation and state.conversation.peer == address:
        return state
    contacts = [
        dataclasses.replace(c, unread=0) if c.address == address else c for c in state.contacts
    ]
    state = _with_contacts(state, contacts)
    state = select_contact(state, address)
    return dataclasses.replace(state, conversation=Conversation(peer=address))


def close_conversation(state: ViewState) -> ViewState:
    return dataclasses.replace(state, conversation=None)


# -- replies to operations ----------------------------------------------------------

_ResultReducer = Callable[[ViewState, Mapping[str, Any], Any, float], ViewState]


def _on_status(state: ViewState, args: Mapping[str, Any], result: Any, now: float) -> ViewState:
    if not isinstance(result, Mapping):
        return state
    return dataclasses.replace(state, status=NodeStatus.parse(result))


def _on_identity(state: ViewState, args: Mapping[str, Any], result: Any, now: float) -> ViewState:
    if not isinstance(result, Mapping):
        return state
    return dataclasses.replace(state, identity=Identity.parse(result))


def _on_contacts(state: ViewState, args: Mapping[str, Any], result: Any, now: float) -> ViewState:
    if not isinstance(result, list):
        return state
    parsed = (Contact.parse(item) for item in result[:MAX_CONTACTS])
    contacts = [c for c in parsed if c is not None]
    if state.conversation:
        peer = state.conversation.peer
        contacts = [dataclasses.replace(c, unread=0) if c.address == peer else c for c in contacts]
    return _with_contacts(state, contacts)


def _on_contact(state: ViewState, args: Mapping[str, Any], result: Any, now: float) -> ViewState:
    return _upsert_contact(state, result)


def _on_remove(state: ViewState, args: Mapping[str, Any], result: Any, now: float) -> ViewState:
    address = _peer_address(state, _str(args, "peer"))
    state = _with_contacts(state, [c for c in state.contacts if c.address != address])
    if state.conversation and state.conversation.peer == address:
        state = close_conversation(state)
    return state


def _on_safety(state: ViewState, args: Mapping[str, Any], result: Any, now: float) -> ViewState:
    number = _str(_map(result), "safety_number")
    if not number:
        return state
    address = _peer_address(state, _str(args, "peer"))
    return dataclasses.replace(state, safety_numbers={**state.safety_numbers, address: number})


def _on_send(state: ViewState, args: Mapping[str, Any], result: Any, now: float) -> ViewState:
    data = _map(result)
    message = Message.parse(
        {
            "message_id": data.get("message_id"),
            "direction": "out",
            "text": args.get("text", ""),
            "time": data.get("time", now),
            "state": data.get("state", "queued"),
        }
    )
    address = _peer_address(state, _str(args, "peer"))
    if message is None or not state.conversation or state.conversation.peer != address:
        return state
    return dataclasses.replace(state, conversation=state.conversation.with_message(message))


def _on_history(state: ViewState, args: Mapping[str, Any], result: Any, now: float) -> ViewState:
    address = _peer_address(state, _str(args, "peer"))
    if not isinstance(result, list) or not state.conversation:
        return state
    if state.conversation.peer != address:
        return state  # the user moved on before the reply came
    history = Conversation(peer=address, loaded=True)
    for item in result[-MAX_MESSAGES:]:
        message = Message.parse(item)
        if message is not None:
            history = history.with_message(message)
    for message in state.conversation.messages:  # what events brought meanwhile
        history = history.with_message(message)
    return dataclasses.replace(state, conversation=history)


def _on_read(state: ViewState, args: Mapping[str, Any], result: Any, now: float) -> ViewState:
    address = _peer_address(state, _str(args, "peer"))
    contacts = [
        dataclasses.replace(c, unread=0) if c.address == address else c for c in state.contacts
    ]
    return _with_contacts(state, contacts)


def _on_requests(state: ViewState, args: Mapping[str, Any], result: Any, now: float) -> ViewState:
    if not isinstance(result, list):
        return state
    parsed = (ContactRequest.parse(item) for item in result[:MAX_REQUESTS])
    return dataclasses.replace(state, requests=tuple(r for r in parsed if r is not None))


def _on_request_answered(
    state: ViewState, args: Mapping[str, Any], result: Any, now: float
) -> ViewState:
    address = _str(args, "address")
    return dataclasses.replace(
        state, requests=tuple(r for r in state.requests if r.address != address)
    )


def _on_block(state: ViewState, args: Mapping[str, Any], result: Any, now: float) -> ViewState:
    state = _on_request_answered(state, args, result, now)
    address = _str(args, "address")
    contacts = [
        dataclasses.replace(c, state="blocked") if c.address == address else c
        for c in state.contacts
    ]
    return _with_contacts(state, contacts)


def _on_presence(state: ViewState, args: Mapping[str, Any], result: Any, now: float) -> ViewState:
    if state.status is None:
        return state
    status = dataclasses.replace(state.status, presence=_str(args, "status"))
    return dataclasses.replace(state, status=status)


def _on_call(state: ViewState, args: Mapping[str, Any], result: Any, now: float) -> ViewState:
    call_id = _str(_map(result), "call_id")
    if not call_id or any(c.call_id == call_id for c in state.calls):
        return state  # an event already told us about it
    call = Call(
        call_id=call_id,
        peer=_str(args, "peer"),
        incoming=False,
        phase=CallPhase.RINGING,
        state="calling",
        started=None,
    )
    return _with_call(state, call)


def _on_answer(state: ViewState, args: Mapping[str, Any], result: Any, now: float) -> ViewState:
    def answered(call: Call) -> Call:
        if call.phase is not CallPhase.RINGING:
            return call
        return dataclasses.replace(call, phase=CallPhase.ACTIVE, state="active", started=now)

    return _update_call(state, _str(args, "call_id") or None, answered)


def _on_call_gone(state: ViewState, args: Mapping[str, Any], result: Any, now: float) -> ViewState:
    return _update_call(
        state,
        _str(args, "call_id") or None,
        lambda call: dataclasses.replace(call, phase=CallPhase.ENDED),
    )


def _on_mute(state: ViewState, args: Mapping[str, Any], result: Any, now: float) -> ViewState:
    muted = _bool(args, "muted")
    return _update_call(
        state, _str(args, "call_id") or None, lambda c: dataclasses.replace(c, muted=muted)
    )


def _on_hold(state: ViewState, args: Mapping[str, Any], result: Any, now: float) -> ViewState:
    held = _bool(args, "held")
    return _update_call(
        state,
        _str(args, "call_id") or None,
        lambda c: dataclasses.replace(
            c, held=held, phase=CallPhase.HELD if held else CallPhase.ACTIVE
        ),
    )


def _on_calls(state: ViewState, args: Mapping[str, Any], result: Any, now: float) -> ViewState:
    if not isinstance(result, list):
        return state
    fresh = dataclasses.replace(state, calls=())
    for item in result[:MAX_CALLS]:
        data = _map(item)
        old = next((c for c in state.calls if c.call_id == _str(data, "call_id")), None)
        call = _parse_call(dataclasses.replace(fresh, calls=(old,) if old else ()), data, now)
        if call is not None:
            fresh = _with_call(fresh, call)
    return fresh


_RESULT_REDUCERS: Mapping[str, _ResultReducer] = {
    "status": _on_status,
    "identity": _on_identity,
    "contacts.list": _on_contacts,
    "contacts.add": _on_contact,
    "contacts.verify": _on_contact,
    "contacts.remove": _on_remove,
    "safety_number": _on_safety,
    "send": _on_send,
    "history": _on_history,
    "read": _on_read,
    "requests": _on_requests,
    "accept": _on_request_answered,
    "decline": _on_request_answered,
    "block": _on_block,
    "presence.set": _on_presence,
    "call": _on_call,
    "answer": _on_answer,
    "call.decline": _on_call_gone,
    "hangup": _on_call_gone,
    "call.mute": _on_mute,
    "call.hold": _on_hold,
    "calls": _on_calls,
}


def apply_result(
    state: ViewState, op: str, args: Mapping[str, Any], result: Any, *, now: float
) -> ViewState:
    """The state after the node answered ``op`` (called with ``args``) with ``result``."""
    reducer = _RESULT_REDUCERS.get(op)
    return state if reducer is None else reducer(state, args, result, now)


# -- pushed events --------------------------------------------------------------------

_EventReducer = Callable[[ViewState, Mapping[str, Any], float], ViewState]


def _ev_status(state: ViewState, data: Mapping[str, Any], now: float) -> ViewState:
    return dataclasses.replace(state, status=NodeStatus.parse(data))


def _ev_message(state: ViewState, data: Mapping[str, Any], now: float) -> ViewState:
    message = Message.parse(data)
    if message is None:
        return state
    address = _peer_address(state, _str(data, "peer"))
    if state.conversation and state.conversation.peer == address:
        return dataclasses.replace(state, conversation=state.conversation.with_message(message))
    if message.outgoing:
        return state
    contacts = [
        dataclasses.replace(c, unread=c.unread + 1) if c.address == address else c
        for c in state.contacts
    ]
    return _with_contacts(state, contacts)


def _ev_request(state: ViewState, data: Mapping[str, Any], now: float) -> ViewState:
    request = ContactRequest.parse(data)
    if request is None:
        return state
    others = [r for r in state.requests if r.address != request.address]
    return dataclasses.replace(state, requests=(*others, request)[-MAX_REQUESTS:])


def _ev_contact(state: ViewState, data: Mapping[str, Any], now: float) -> ViewState:
    return _upsert_contact(state, data)


def _ev_call(state: ViewState, data: Mapping[str, Any], now: float) -> ViewState:
    call = _parse_call(state, data, now)
    if call is None:
        return state
    if call.phase is CallPhase.ENDED:
        reason = _str(data, "reason")
        ended = f"Call with {peer_label(state, call.peer)} ended"
        state = set_notice(state, f"{ended}: {reason}" if reason else ended)
    return _with_call(state, call)


def _ev_call_stats(state: ViewState, data: Mapping[str, Any], now: float) -> ViewState:
    stats = data.get("stats", data)
    return _update_call(
        state,
        _str(data, "call_id") or None,
        lambda c: dataclasses.replace(c, quality=CallQuality.parse(stats, c.quality)),
    )


_EVENT_REDUCERS: Mapping[str, _EventReducer] = {
    "status": _ev_status,
    "message": _ev_message,
    "request": _ev_request,
    "contact": _ev_contact,
    "call": _ev_call,
    "call.stats": _ev_call_stats,
}


def apply_event(state: ViewState, event: str, data: object, *, now: float) -> ViewState:
    """The state after the node pushed ``event`` with ``data``; unknown events change nothing."""
    reducer = _EVENT_REDUCERS.get(event)
    if reducer is None or not isinstance(data, Mapping):
        return state
    return reducer(state, data, now)
