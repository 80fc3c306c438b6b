"""The contacts pane: one line per contact with presence, unread count and a verified mark.

Each line carries a mouse handler, so a click opens that conversation.
"""

from __future__ import annotations

from collections.abc import Callable

from prompt_toolkit.formatted_text import StyleAndTextTuples
from prompt_toolkit.mouse_events import MouseEvent, MouseEventType

from tui._model import Contact, ViewState, display_name

__all__ = ["PRESENCE_GLYPHS", "VERIFIED_MARK", "presence_glyph", "render_contacts"]

PRESENCE_GLYPHS = {
    "available": "●",
    "online": "●",
    "away": "◐",
    "busy": "⊘",
    "offline": "○",
}
VERIFIED_MARK = "✓"


def presence_glyph(contact: Contact) -> str:
    if contact.state == "blocked":
        return "✗"
    if contact.state == "requested":
        return "?"
    return PRESENCE_GLYPHS.get(contact.presence, "○")


def render_contacts(
    state: ViewState, width: int, on_click: Callable[[str], None]
) -> StyleAndTextTuples:
    if not state.contacts:
        return [("class:contacts.empty", " no contacts yet\n F2 or /add ADDRESS")]
    fragments: StyleAndTextTuples = []
    open_peer = state.conversation.peer if state.conversation else None
    for contact in state.contacts:
        handler = _clicker(contact.address, on_click)
        glyph = presence_glyph(contact)
        unread = f" ({contact.unread})" if contact.unread else ""
        mark = f" {VERIFIED_MARK}" if contact.verified else ""
        room = max(1, width - 3 - len(unread) - len(mark))
        name = display_name(contact)
        if len(name) > room:
            name = name[: room - 1] + "…"
        style = "class:contact"
        if contact.address == state.selected:
            style += " class:contact.selected"
        if contact.address == open_peer:
            style += " class:contact.open"
        fragments += [
            (f"{style} class:presence.{contact.presence}", f" {glyph} ", handler),
            (style, name, handler),
            (f"{style} class:verified", mark, handler),
            (f"{style} class:unread", unread, handler),
            (style, " " * max(0, room - len(name)), handler),
            ("", "\n"),
        ]
    fragments.pop()  # no newline after the last line
    return fragments


def _clicker(address: str, on_click: Callable[[str], None]) -> Callable[[MouseEvent], None]:
    def handler(event: MouseEvent) -> None:
        if event.event_type is MouseEventType.MOUSE_UP:
            on_click(address)

    return handler
