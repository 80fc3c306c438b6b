"""The conversation pane: the open peer's messages and calls, wrapped at word boundaries.

Each out-going message carries its delivery state as the node reports it,
and only what it reports: queued (nothing left this machine), sent (the
peer's node has it), in mailbox, delivered (the peer's node stored it),
failed. A first message to someone who has not accepted us yet is a
request, and looks like one, not like a delivered chat message. Ended
calls leave a line ("call, 2:31", "missed call").
"""

from __future__ import annotations

import time

from prompt_toolkit.formatted_text import StyleAndTextTuples

from anonsip.control import ContactState, MessageDirection, MessageKind, MessageState, MessageView
from tui._model import (
    CallNote,
    ViewState,
    contact_presence,
    display_name,
    find_contact,
    history_call_note,
    peer_label,
)
from tui._scroll import NO_BREAK, Rows, printable, wrap

__all__ = [
    "DELIVERY_MARKS",
    "TIME_WIDTH",
    "conversation_rows",
    "render_conversation_title",
]

DELIVERY_MARKS = {
    MessageState.QUEUED: "… queued",
    MessageState.REQUEST: "? request, not accepted yet",
    MessageState.SENT: "✓ sent",
    MessageState.IN_MAILBOX: "✓ in mailbox",
    MessageState.DELIVERED: "✓✓ delivered",
    MessageState.FAILED: "✗ failed",
    MessageState.RECEIVED: "",
}

TIME_WIDTH = 6  # "12:01 ": continuation rows are indented under the text


def _clock(seconds: float) -> str:
    if not seconds:
        return "--:--"
    return time.strftime("%H:%M", time.localtime(seconds))


def render_conversation_title(state: ViewState) -> StyleAndTextTuples:
    if state.conversation is None:
        return [("class:title", " no conversation open")]
    contact = find_contact(state, state.conversation.peer)
    if contact is None:
        label = peer_label(state, state.conversation.peer)
        return [("class:title", f" {label}"), ("class:hint", "  not a contact")]
    if contact.state is ContactState.REQUESTED:
        trust = [("class:unverified", " · has not accepted you yet")]
    elif contact.verified:
        trust = [("class:verified", " · ✓ verified")]
    else:
        trust = [("class:unverified", " · not verified (F5)")]
    presence = contact_presence(state, contact)
    note = f" — {printable(presence.note)}" if presence.note else ""
    return [
        ("class:title", f" {printable(display_name(contact))}"),
        ("class:title.presence", f"  {presence.status.value}{note}"),
        *trust,
    ]


def _message(state: ViewState, message: MessageView, them: str) -> StyleAndTextTuples:
    outgoing = message.direction is MessageDirection.OUT
    if outgoing and message.state is MessageState.REQUEST:
        who, style = "me", "class:message.request"
    elif outgoing:
        who, style = "me", "class:message.out"
    else:
        who, style = them, "class:message.in"
    fragments: StyleAndTextTuples = [
        ("class:message.time", f"{_clock(message.time)} "),
        (f"{style} class:message.who", f"{who}: "),
        (style, printable(message.text)),
    ]
    mark = DELIVERY_MARKS[message.state] if outgoing else ""
    if mark:
        style = f"class:delivery.{message.state.value} {NO_BREAK}"
        fragments.append((style, f"  {mark}"))
    return fragments


def _call(note: CallNote) -> StyleAndTextTuples:
    style = "class:call.note.missed" if note.missed else "class:call.note"
    return [("class:message.time", f"{_clock(note.time)} "), (style, f"· {note.text}")]


def conversation_rows(state: ViewState, width: int) -> Rows:
    """The open conversation as screen rows of at most ``width`` cells, oldest first."""
    conversation = state.conversation
    if conversation is None:
        hint = (
            "Pick a contact: click it, ctrl-n/ctrl-p, or Tab, up/down and Enter. "
            "Add one: F2 or /add ADDRESS NAME.   Help: F1"
        )
        return wrap([("class:hint", hint)], width)
    kept = {m.message_id for m in conversation.messages if m.kind is MessageKind.CALL}
    notes = [n for n in state.call_notes if n.peer == conversation.peer and n.call_id not in kept]
    if not conversation.messages and not notes:
        text = "no messages yet" if conversation.loaded else "loading…"
        return wrap([("class:hint", text)], width)
    them = printable(peer_label(state, conversation.peer))
    rows: Rows = []
    for message in conversation.messages:
        while notes and notes[0].time <= message.time:
            rows += wrap(_call(notes.pop(0)), width, indent=TIME_WIDTH)
        if message.kind is MessageKind.CALL:
            rows += wrap(_call(history_call_note(message)), width, indent=TIME_WIDTH)
            continue
        rows += wrap(_message(state, message, them), width, indent=TIME_WIDTH)
    for note in notes:
        rows += wrap(_call(note), width, indent=TIME_WIDTH)
    return rows
