"""The contacts pane: one line per contact with presence, unread count and a verified mark.

Each line carries a mouse handler, so a click opens that conversation.
Presence is what the node's ``presence`` events said; with no node it is
unknown, never a stale "available".
"""

from __future__ import annotations

from collections.abc import Callable

from prompt_toolkit.formatted_text import StyleAndTextTuples
from prompt_toolkit.mouse_events import MouseEvent, MouseEventType
from prompt_toolkit.utils import get_cwidth

from anonsip.control import ContactState, ContactView, PresenceStatus
from tui._model import ViewState, contact_presence, display_name
from tui._scroll import printable

__all__ = ["PRESENCE_GLYPHS", "VERIFIED_MARK", "presence_glyph", "render_contacts"]

PRESENCE_GLYPHS = {
    PresenceStatus.AVAILABLE: "●",
    PresenceStatus.AWAY: "◐",
    PresenceStatus.BUSY: "⊘",
    PresenceStatus.OFFLINE: "○",
    PresenceStatus.UNKNOWN: "·",
}
VERIFIED_MARK = "✓"


def presence_glyph(state: ViewState, contact: ContactView) -> str:
    if contact.state is ContactState.BLOCKED:
        return "✗"
    if contact.state is ContactState.REQUESTED:
        return "?"
    return PRESENCE_GLYPHS[contact_presence(state, contact).status]


def _fit(name: str, room: int) -> str:
    if get_cwidth(name) <= room:
        return name
    while name and get_cwidth(name) > room - 1:
        name = name[:-1]
    return name + "…"


def render_contacts(
    state: ViewState, width: int, on_click: Callable[[str], None]
) -> StyleAndTextTuples:
    if not state.contacts:
        return [("class:contacts.empty", " no contacts yet\n F2 or /add ADDRESS")]
    fragments: StyleAndTextTuples = []
    open_peer = state.conversation.peer if state.conversation else None
    for contact in state.contacts:
        handler = _clicker(contact.address, on_click)
        glyph = presence_glyph(state, contact)
        unread = f" ({contact.unread})" if contact.unread else ""
        mark = f" {VERIFIED_MARK}" if contact.verified else ""
        room = max(1, width - 3 - len(unread) - len(mark))
        name = _fit(printable(display_name(contact)), room)
        style = "class:contact"
        if contact.address == state.selected:
            style += " class:contact.selected"
        if contact.address == open_peer:
            style += " class:contact.open"
        status = contact_presence(state, contact).status.value
        fragments += [
            (f"{style} class:presence.{status}", f" {glyph} ", handler),
            (style, name, handler),
            (f"{style} class:verified", mark, handler),
            (f"{style} class:unread", unread, handler),
            (style, " " * max(0, room - get_cwidth(name)), handler),
            ("", "\n"),
        ]
    fragments.pop()  # no newline after the last line
    return fragments


def _clicker(address: str, on_click: Callable[[str], None]) -> Callable[[MouseEvent], None]:
    def handler(event: MouseEvent) -> None:
        if event.event_type is MouseEventType.MOUSE_UP:
            on_click(address)

    return handler
