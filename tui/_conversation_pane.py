"""The conversation pane: the open contact's messages, each out-going one with its
delivery state (queued → sent → delivered, as the node reports them)."""

from __future__ import annotations

import time

from prompt_toolkit.formatted_text import StyleAndTextTuples

from tui._model import MessageState, ViewState, display_name, find_contact, peer_label

__all__ = ["DELIVERY_MARKS", "render_conversation", "render_conversation_title"]

DELIVERY_MARKS = {
    MessageState.QUEUED: "… queued",
    MessageState.SENT: "✓ sent",
    MessageState.DELIVERED: "✓✓ delivered",
    MessageState.FAILED: "✗ failed",
    MessageState.RECEIVED: "",
}


def _clock(seconds: float | None) -> str:
    if seconds is None:
        return "--:--"
    return time.strftime("%H:%M", time.localtime(seconds))


def render_conversation_title(state: ViewState) -> StyleAndTextTuples:
    if state.conversation is None:
        return [("class:title", " no conversation open")]
    contact = find_contact(state, state.conversation.peer)
    if contact is None:
        return [("class:title", f" {peer_label(state, state.conversation.peer)}")]
    verified = (
        [("class:verified", " ✓ verified")]
        if contact.verified
        else [("class:unverified", " not verified (F5)")]
    )
    note = f" — {contact.note}" if contact.note else ""
    return [
        ("class:title", f" {display_name(contact)}"),
        ("class:title.presence", f"  {contact.presence}{note}"),
        *verified,
    ]


def render_conversation(state: ViewState) -> StyleAndTextTuples:
    conversation = state.conversation
    if conversation is None:
        return [
            (
                "class:hint",
                "Pick a contact: click it, ctrl-n/ctrl-p,\n"
                "or Tab, up/down and Enter.\n"
                "Add one: F2 or /add ADDRESS NICK.   Help: F1",
            )
        ]
    if not conversation.messages:
        text = "no messages yet" if conversation.loaded else "loading…"
        return [("class:hint", text)]
    them = peer_label(state, conversation.peer)
    fragments: StyleAndTextTuples = []
    for message in conversation.messages:
        who, style = ("me", "class:message.out") if message.outgoing else (them, "class:message.in")
        fragments += [
            ("class:message.time", f"{_clock(message.time)} "),
            (f"{style} class:message.who", f"{who}: "),
            (style, message.text),
        ]
        mark = DELIVERY_MARKS[message.state]
        if mark:
            fragments.append((f"class:delivery.{message.state.value}", f"  {mark}"))
        fragments.append(("", "\n"))
    fragments.pop()
    return fragments
