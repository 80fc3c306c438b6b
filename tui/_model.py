"""The terminal UI's view model: what the screens show, as plain frozen data.

The node speaks the control API of ``docs/control-api.md``, whose one
vocabulary is ``anonsip.control``: typed views (``MessageView``,
``ContactView``, ``CallView``, …) decoded tolerantly from replies and pushed
events. This module folds them into one immutable ``ViewState`` through pure
functions (``apply_result``, ``apply_event`` and a few local actions), like a
reducer: ``new = apply_event(old, name, data, now=...)``. Nothing here reads
a clock, touches a socket or imports prompt_toolkit; the caller hands in
``now`` (wall-clock seconds, the time base of the node's ``time`` and
``started`` fields).

The node is local and trusted, but a malformed map must never crash the UI:
the views' decoding gives every field a typed default, and a map that lacks
a required field (``SchemaError``) is ignored.

A message reaches the conversation by one path: the node's ``message``
event (the ``send`` reply is the same view, for the client that asked; the
UI lets the event say it). Presence comes from ``presence`` events and is
never reset by a ``contact`` update.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any

from anonsip.control import (
    EVENTS,
    OPERATIONS,
    AcceptArgs,
    AddressArgs,
    Args,
    AudioDevicesView,
    CallDirection,
    CallState,
    CallStatsView,
    CallView,
    ContactAddArgs,
    ContactState,
    ContactView,
    HistoryArgs,
    IdentityView,
    MessageDirection,
    MessageView,
    PeerArgs,
    PresenceStatus,
    PresenceView,
    RequestView,
    SafetyNumberView,
    SchemaError,
    StatusView,
    View,
)

__all__ = [
    "MAX_CALLS",
    "MAX_CALL_NOTES",
    "MAX_CONTACTS",
    "MAX_MESSAGES",
    "MAX_REQUESTS",
    "CallNote",
    "Conversation",
    "Notice",
    "ViewState",
    "address_form",
    "apply_error",
    "apply_event",
    "apply_result",
    "call_duration",
    "call_note_text",
    "clear_notice",
    "close_conversation",
    "contact_presence",
    "display_name",
    "find_contact",
    "history_call_note",
    "incoming_call",
    "move_selection",
    "open_conversation",
    "peer_label",
    "restart_hint",
    "select_contact",
    "set_connected",
    "set_notice",
    "shown_call",
    "transfer_request",
]

MAX_MESSAGES = 500  # per open conversation; the oldest are dropped from view
MAX_CONTACTS = 1000
MAX_REQUESTS = 100
MAX_CALLS = 8
MAX_CALL_NOTES = 200  # lines about ended calls, all conversations together

LIVE_CALL = (CallState.ACTIVE, CallState.HELD)


# -- the pieces of state ---------------------------------------------------------


@dataclasses.dataclass(frozen=True, kw_only=True)
class Notice:
    """The line (or few lines) at the bottom: the last thing worth telling."""

    text: str
    error: bool = False
    serial: int = 0  # each new notice has a new serial, so a timer clears only its own


@dataclasses.dataclass(frozen=True, kw_only=True)
class CallNote:
    """A line in a conversation for a call that ended ("call, 2:31", "missed call")."""

    peer: str  # the contact's address
    time: float  # wall-clock seconds it ended
    text: str
    missed: bool = False
    call_id: str = ""


def _merged(old: MessageView, new: MessageView) -> MessageView:
    """``old`` updated by ``new`` news about it; an outgoing state never moves back."""
    state = new.state if new.state.rank >= old.state.rank else old.state
    return dataclasses.replace(
        old, text=new.text or old.text, time=old.time or new.time, state=state
    )


@dataclasses.dataclass(frozen=True, kw_only=True)
class Conversation:
    """The conversation on screen: a peer's address and its messages, oldest first."""

    peer: str
    messages: tuple[MessageView, ...] = ()
    loaded: bool = False  # history arrived

    def with_message(self, message: MessageView) -> Conversation:
        messages = list(self.messages)
        for index, old in enumerate(messages):
            if old.message_id == message.message_id:
                messages[index] = _merged(old, message)
                break
        else:
            messages.append(message)
        return dataclasses.replace(self, messages=tuple(messages[-MAX_MESSAGES:]))


@dataclasses.dataclass(frozen=True, kw_only=True)
class ViewState:
    connected: bool = False  # the control connection to the node
    status: StatusView | None = None
    identity: IdentityView | None = None
    contacts: tuple[ContactView, ...] = ()
    presence: Mapping[str, PresenceView] = dataclasses.field(default_factory=dict)
    selected: str | None = None  # address highlighted in the contacts pane
    conversation: Conversation | None = None
    requests: tuple[RequestView, ...] = ()
    calls: tuple[CallView, ...] = ()
    call_notes: tuple[CallNote, ...] = ()
    safety_numbers: Mapping[str, str] = dataclasses.field(default_factory=dict)
    devices: AudioDevicesView | None = None
    notice: Notice | None = None


# -- reading the state -------------------------------------------------------------


def address_form(peer: str) -> str:
    """``peer`` as the node writes addresses: a ``sip:`` URI's user part, lower case."""
    text = peer.strip()
    if text[:4].lower() == "sip:":
        text = text[4:].partition("@")[0]
    return text.lower() if text.lower().startswith("asip1") else text


def display_name(contact: ContactView) -> str:
    return contact.nick or _short(contact.address)


def _short(address: str) -> str:
    return address if len(address) <= 16 else f"{address[:10]}…{address[-4:]}"


def find_contact(state: ViewState, peer: str) -> ContactView | None:
    """The contact ``peer`` names: its address, its ``sip:`` URI or its nick in any case."""
    address = address_form(peer)
    for contact in state.contacts:
        if contact.address == address:
            return contact
    for contact in state.contacts:
        if contact.nick and contact.nick == peer:
            return contact
    folded = peer.strip().casefold()
    matches = [c for c in state.contacts if c.nick and c.nick.casefold() == folded]
    return matches[0] if len(matches) == 1 else None


def _peer_address(state: ViewState, peer: str) -> str:
    contact = find_contact(state, peer)
    return contact.address if contact else address_form(peer)


def peer_label(state: ViewState, peer: str) -> str:
    contact = find_contact(state, peer)
    return display_name(contact) if contact else _short(peer)


def contact_presence(state: ViewState, contact: ContactView) -> PresenceView:
    """What the UI knows of a contact's presence: nothing once the node is gone."""
    if not state.connected:
        return PresenceView(address=contact.address)
    known = state.presence.get(contact.address)
    if known is not None:
        return known
    return PresenceView(address=contact.address, status=contact.presence, note=contact.note)


def incoming_call(state: ViewState) -> CallView | None:
    """The call waiting for the user to answer or decline, if any."""
    for call in state.calls:
        if call.direction is CallDirection.IN and call.state is CallState.RINGING:
            return call
    return None


def shown_call(state: ViewState) -> CallView | None:
    """The call the call bar shows: an answered one first, else an outgoing one."""
    for call in state.calls:
        if call.state in LIVE_CALL:
            return call
    for call in state.calls:
        if call.direction is CallDirection.OUT:
            return call
    return None


def transfer_request(state: ViewState) -> CallView | None:
    """A call whose peer asks us to call someone else; the user allows or refuses."""
    return next((c for c in state.calls if c.transfer_to), None)


def call_duration(call: CallView, now: float) -> float:
    return 0.0 if call.started is None else max(0.0, now - call.started)


def restart_hint(state: ViewState) -> str:
    """The command that starts this node again, as the node said it."""
    if state.status is not None and state.status.restart:
        return state.status.restart
    return "anonsip run (or anonsip tui)"


# -- small helpers ------------------------------------------------------------------


def _by_order(contact: ContactView) -> tuple[int, str, str]:
    group = {ContactState.ACCEPTED: 0, ContactState.REQUESTED: 1}.get(contact.state, 2)
    return (group, display_name(contact).casefold(), contact.address)


def _with_contacts(state: ViewState, contacts: list[ContactView]) -> ViewState:
    ordered = tuple(sorted(contacts, key=_by_order)[:MAX_CONTACTS])
    addresses = {c.address for c in ordered}
    selected = state.selected
    if selected not in addresses:
        selected = ordered[0].address if ordered else None
    presence = {a: p for a, p in state.presence.items() if a in addresses}
    return dataclasses.replace(state, contacts=ordered, selected=selected, presence=presence)


def _with_unread(contact: ContactView, unread: int) -> ContactView:
    return dataclasses.replace(contact, unread=unread)


def _read_if_open(state: ViewState, contact: ContactView) -> ContactView:
    if state.conversation and state.conversation.peer == contact.address and contact.unread:
        return dataclasses.replace(contact, unread=0)  # it is on screen: read
    return contact


def _upsert_contact(state: ViewState, contact: ContactView) -> ViewState:
    others = [c for c in state.contacts if c.address != contact.address]
    if contact.state is ContactState.REMOVED:
        state = _with_contacts(state, others)
        if state.conversation and state.conversation.peer == contact.address:
            state = close_conversation(state)
        return state
    if contact.address not in state.presence:
        presence = PresenceView(address=contact.address, status=contact.presence, note=contact.note)
        state = dataclasses.replace(state, presence={**state.presence, contact.address: presence})
    return _with_contacts(state, [*others, _read_if_open(state, contact)])


def _with_call(state: ViewState, call: CallView) -> ViewState:
    others = [c for c in state.calls if c.call_id != call.call_id]
    if call.state is CallState.ENDED:
        return dataclasses.replace(state, calls=tuple(others))
    return dataclasses.replace(state, calls=(*others, call)[-MAX_CALLS:])


def _fresh_call(old: CallView | None, new: CallView, now: float) -> CallView:
    """``new`` news of a call, keeping what only ``old`` knew (its start, its figures)."""
    started = new.started
    if started is None and old is not None:
        started = old.started
    if started is None and new.state in LIVE_CALL:
        started = now
    stats = new.stats if new.stats is not None else (old.stats if old else None)
    return dataclasses.replace(new, started=started, stats=stats)


_OUTGOING_ENDS = {
    "declined": "call declined",
    "busy": "call: busy",
    "no-answer": "call not answered",
    "cancelled": "call cancelled",
    "hung-up": "call cancelled",
    "unreachable": "call failed: not reachable",
}


def call_note_text(call: CallView, duration: float | None) -> tuple[str, bool]:
    """The conversation's line for an ended call, and whether it was missed."""
    if duration is not None:
        whole = int(duration)
        return f"call, {whole // 60}:{whole % 60:02d}", False
    if call.direction is CallDirection.IN:
        if call.reason in ("declined", "busy"):
            return "declined call", False
        return "missed call", True
    failed = f"call failed ({call.reason or 'no reason given'})"
    return _OUTGOING_ENDS.get(call.reason, failed), False


def history_call_note(message: MessageView) -> CallNote:
    """The line for a call kept in the node's history (``kind`` ``call``)."""
    answered = message.duration_s > 0
    incoming = message.direction is MessageDirection.IN
    if answered:
        whole = int(message.duration_s)
        text, missed = f"call, {whole // 60}:{whole % 60:02d}", False
    elif incoming:
        declined = message.text in ("declined", "busy")
        text, missed = ("declined call", False) if declined else ("missed call", True)
    else:
        text = _OUTGOING_ENDS.get(message.text, f"call failed ({message.text or 'no reason'})")
        missed = False
    return CallNote(
        peer=message.peer, time=message.time, text=text, missed=missed, call_id=message.message_id
    )


def _note_call(state: ViewState, call: CallView, old: CallView | None, now: float) -> ViewState:
    started = call.started if call.started is not None else (old.started if old else None)
    duration: float | None = None
    if started is not None:
        stats = call.stats or (old.stats if old else None)
        measured = stats.duration_s if stats is not None else None
        duration = measured if measured is not None else max(0.0, now - started)
    text, missed = call_note_text(call, duration)
    note = CallNote(
        peer=address_form(call.peer), time=now, text=text, missed=missed, call_id=call.call_id
    )
    return dataclasses.replace(state, call_notes=(*state.call_notes, note)[-MAX_CALL_NOTES:])


# -- local actions --------------------------------------------------------------


def set_connected(state: ViewState, connected: bool) -> ViewState:
    if connected:
        return dataclasses.replace(state, connected=True)
    state = dataclasses.replace(state, connected=False, calls=())
    return set_notice(
        state, f"The node stopped. Start it again with: {restart_hint(state)}", error=True
    )


def set_notice(state: ViewState, text: str, *, error: bool = False) -> ViewState:
    line = " ".join(text.split())  # whitespace from the node never shapes the screen
    serial = state.notice.serial + 1 if state.notice else 1
    return dataclasses.replace(state, notice=Notice(text=line, error=error, serial=serial))


def clear_notice(state: ViewState, serial: int | None = None) -> ViewState:
    """Drop the notice (only notice ``serial``, if given: a newer one stays)."""
    if state.notice is None or (serial is not None and state.notice.serial != serial):
        return state
    return dataclasses.replace(state, notice=None)


def apply_error(state: ViewState, op: str, message: str) -> ViewState:
    """An operation failed: show the node's message, whole, with no internal names."""
    if not message:
        operation = OPERATIONS.get(op)
        what = operation.summary if operation else "that"
        message = f"Could not {what}."
    return set_notice(state, message, error=True)


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
    """Show ``peer``'s conversation (a contact, or an address); empty until history arrives."""
    address = _peer_address(state, peer)
    if state.conversation and state.conversation.peer == address:
        return state
    contacts = [_with_unread(c, 0) if c.address == address else c for c in state.contacts]
    state = _with_contacts(state, contacts)
    state = select_contact(state, address)
    return dataclasses.replace(state, conversation=Conversation(peer=address))


def close_conversation(state: ViewState) -> ViewState:
    return dataclasses.replace(state, conversation=None)


# -- replies to operations ----------------------------------------------------------

_ResultReducer = Callable[[ViewState, Any, Any, float], ViewState]


def _on_status(state: ViewState, args: Args, result: StatusView, now: float) -> ViewState:
    return dataclasses.replace(state, status=result)


def _on_identity(state: ViewState, args: Args, result: IdentityView, now: float) -> ViewState:
    return dataclasses.replace(state, identity=result)


def _on_contacts(
    state: ViewState, args: Args, result: tuple[ContactView, ...], now: float
) -> ViewState:
    contacts = [_read_if_open(state, c) for c in result[:MAX_CONTACTS]]
    # A list is a snapshot of the node's contacts: presence it reports fills what
    # no ``presence`` event told us yet, and never overrides one.
    presence = dict(state.presence)
    for contact in contacts:
        presence.setdefault(
            contact.address,
            PresenceView(address=contact.address, status=contact.presence, note=contact.note),
        )
    return _with_contacts(dataclasses.replace(state, presence=presence), contacts)


def _on_contact(state: ViewState, args: Args, result: ContactView, now: float) -> ViewState:
    return _upsert_contact(state, result)


def _on_remove(state: ViewState, args: PeerArgs, result: None, now: float) -> ViewState:
    address = _peer_address(state, args.peer)
    return _upsert_contact(state, ContactView(address=address, state=ContactState.REMOVED))


def _on_safety(state: ViewState, args: PeerArgs, result: SafetyNumberView, now: float) -> ViewState:
    address = _peer_address(state, args.peer)
    numbers = {**state.safety_numbers, address: result.safety_number}
    return dataclasses.replace(state, safety_numbers=numbers)


def _on_history(
    state: ViewState, args: HistoryArgs, result: tuple[MessageView, ...], now: float
) -> ViewState:
    address = _peer_address(state, args.peer)
    if not state.conversation or state.conversation.peer != address:
        return state  # the user moved on before the reply came
    history = Conversation(peer=address, loaded=True)
    for message in result[-MAX_MESSAGES:]:
        history = history.with_message(message)
    for message in state.conversation.messages:  # what events brought meanwhile
        history = history.with_message(message)
    return dataclasses.replace(state, conversation=history)


def _on_read(state: ViewState, args: PeerArgs, result: None, now: float) -> ViewState:
    address = _peer_address(state, args.peer)
    contacts = [_with_unread(c, 0) if c.address == address else c for c in state.contacts]
    return _with_contacts(state, contacts)


def _on_requests(
    state: ViewState, args: Args, result: tuple[RequestView, ...], now: float
) -> ViewState:
    return dataclasses.replace(state, requests=result[:MAX_REQUESTS])


def _without_request(state: ViewState, address: str) -> ViewState:
    address = address_form(address)
    return dataclasses.replace(
        state, requests=tuple(r for r in state.requests if r.address != address)
    )


def _on_accept(state: ViewState, args: AcceptArgs, result: ContactView, now: float) -> ViewState:
    return _upsert_contact(_without_request(state, args.address), result)


def _on_decline(state: ViewState, args: AddressArgs, result: None, now: float) -> ViewState:
    return _without_request(state, args.address)


def _on_presence_set(state: ViewState, args: Any, result: None, now: float) -> ViewState:
    if state.status is None:
        return state
    try:
        status = PresenceStatus(args.status)
    except ValueError:
        return state
    own = PresenceView(status=status, note=args.note or "")
    return dataclasses.replace(state, status=dataclasses.replace(state.status, presence=own))


def _on_call(state: ViewState, args: Args, result: CallView, now: float) -> ViewState:
    if any(c.call_id == result.call_id for c in state.calls):
        return state  # an event already told us about it, and may be newer
    return _with_call(state, _fresh_call(None, result, now))


def _on_calls(state: ViewState, args: Args, result: tuple[CallView, ...], now: float) -> ViewState:
    fresh = dataclasses.replace(state, calls=())
    for call in result[:MAX_CALLS]:
        old = next((c for c in state.calls if c.call_id == call.call_id), None)
        fresh = _with_call(fresh, _fresh_call(old, call, now))
    return fresh


def _on_devices(state: ViewState, args: Args, result: AudioDevicesView, now: float) -> ViewState:
    return dataclasses.replace(state, devices=result)


def _on_add(state: ViewState, args: ContactAddArgs, result: ContactView, now: float) -> ViewState:
    return _upsert_contact(state, result)


# ``send`` is absent on purpose: its message arrives as the ``message`` event.
_RESULT_REDUCERS: Mapping[str, _ResultReducer] = {
    "status": _on_status,
    "identity": _on_identity,
    "contacts.list": _on_contacts,
    "contacts.add": _on_add,
    "contacts.verify": _on_contact,
    "contacts.remove": _on_remove,
    "safety_number": _on_safety,
    "history": _on_history,
    "read": _on_read,
    "requests": _on_requests,
    "accept": _on_accept,
    "decline": _on_decline,
    "block": _on_decline,
    "presence.set": _on_presence_set,
    "call": _on_call,
    "calls": _on_calls,
    "audio.devices": _on_devices,
}


def _decode_result(op: str, result: object) -> object:
    """The reply to ``op`` in the schema's views; raises ``SchemaError`` if it is not one."""
    operation = OPERATIONS.get(op)
    if operation is None or operation.result.view is None:
        return None
    view = operation.result.view
    if operation.result.many:
        return view.decode_list(result)
    if not isinstance(result, Mapping):
        raise SchemaError(f"{op} answered with no map")
    return view.decode(result)


def apply_result(state: ViewState, op: str, args: Args, result: object, *, now: float) -> ViewState:
    """The state after the node answered ``op`` (called with ``args``) with ``result``."""
    reducer = _RESULT_REDUCERS.get(op)
    if reducer is None:
        return state
    try:
        decoded = _decode_result(op, result)
    except SchemaError:
        return state
    return reducer(state, args, decoded, now)


# -- pushed events --------------------------------------------------------------------

_EventReducer = Callable[[ViewState, Any, float], ViewState]


def _ev_status(state: ViewState, status: StatusView, now: float) -> ViewState:
    return dataclasses.replace(state, status=status)


def _ev_message(state: ViewState, message: MessageView, now: float) -> ViewState:
    address = _peer_address(state, message.peer)
    if state.conversation and state.conversation.peer == address:
        return dataclasses.replace(state, conversation=state.conversation.with_message(message))
    if message.direction is MessageDirection.OUT:
        return state
    contacts = [
        dataclasses.replace(c, unread=c.unread + 1) if c.address == address else c
        for c in state.contacts
    ]
    return _with_contacts(state, contacts)


def _ev_request(state: ViewState, request: RequestView, now: float) -> ViewState:
    others = [r for r in state.requests if r.address != request.address]
    return dataclasses.replace(state, requests=(*others, request)[-MAX_REQUESTS:])


def _ev_contact(state: ViewState, contact: ContactView, now: float) -> ViewState:
    return _upsert_contact(state, contact)


def _ev_presence(state: ViewState, presence: PresenceView, now: float) -> ViewState:
    address = address_form(presence.address)
    if all(c.address != address for c in state.contacts):
        return state  # only contacts' presence is kept
    known = dataclasses.replace(presence, address=address)
    return dataclasses.replace(state, presence={**state.presence, address: known})


def _ev_call(state: ViewState, call: CallView, now: float) -> ViewState:
    old = next((c for c in state.calls if c.call_id == call.call_id), None)
    if call.state is CallState.ENDED:
        if old is None and not call.peer:
            return state
        state = _note_call(state, call, old, now)
        who = peer_label(state, call.peer or (old.peer if old else ""))
        reason = call.reason.replace("-", " ")
        ended = f"Call with {who} ended"
        state = set_notice(state, f"{ended}: {reason}" if reason else ended)
        return _with_call(state, call)
    return _with_call(state, _fresh_call(old, call, now))


def _ev_call_stats(state: ViewState, stats: CallStatsView, now: float) -> ViewState:
    call = next((c for c in state.calls if c.call_id == stats.call_id), None)
    if call is None:
        return state
    return _with_call(state, dataclasses.replace(call, stats=stats))


_EVENT_REDUCERS: Mapping[str, _EventReducer] = {
    "status": _ev_status,
    "message": _ev_message,
    "request": _ev_request,
    "contact": _ev_contact,
    "presence": _ev_presence,
    "call": _ev_call,
    "call.stats": _ev_call_stats,
}


def decode_event(event: str, data: object) -> View | None:
    """The event's view, or None for an event this version does not know or cannot read."""
    view = EVENTS.get(event)
    if view is None or not isinstance(data, Mapping):
        return None
    try:
        return view.decode(data)
    except SchemaError:
        return None


def apply_event(state: ViewState, event: str, data: object, *, now: float) -> ViewState:
    """The state after the node pushed ``event`` with ``data``; unknown events change nothing."""
    reducer = _EVENT_REDUCERS.get(event)
    view = decode_event(event, data)
    if reducer is None or view is None:
        return state
    return reducer(state, view, now)
