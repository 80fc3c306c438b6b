"""The help screen (F1 or /help): every key and slash command; it scrolls."""

from __future__ import annotations

from prompt_toolkit.formatted_text import StyleAndTextTuples

from tui._commands import COMMANDS

__all__ = ["KEYS", "render_help"]

KEYS: tuple[tuple[str, str], ...] = (
    ("Tab / shift-Tab", "move between contacts and the input line"),
    ("up / down", "contacts: choose one; input line: earlier lines"),
    ("Enter", "contacts: open the conversation; input line: send"),
    ("ctrl-n / ctrl-p", "open the next / previous contact"),
    ("PageUp / PageDown", "scroll the conversation (or this screen)"),
    ("mouse", "click a contact to open it; the wheel scrolls"),
    ("ctrl-a / ctrl-d", "answer / decline an incoming call"),
    ("F1", "this help"),
    ("F2", "add a contact by address"),
    ("F3", "contact requests: a accept, d decline, b block"),
    ("F4", "my address, to give to others (and its QR code)"),
    ("F5", "compare safety numbers with the open contact"),
    ("F6 / F7 / F8", "call the open contact / mute / hang up"),
    ("F9", "sound devices for calls"),
    ("Esc or q", "close a screen"),
    ("ctrl-q or F10", "quit (the node keeps running)"),
)


def render_help() -> StyleAndTextTuples:
    fragments: StyleAndTextTuples = [("class:screen.heading", "Keys\n")]
    width = max(len(key) for key, _ in KEYS)
    for key, what in KEYS:
        fragments += [("class:screen.key", f" {key:<{width}} "), ("", f"{what}\n")]
    fragments.append(("class:screen.heading", "\nCommands\n"))
    for spec in COMMANDS.values():
        fragments += [("class:screen.key", f" {spec.usage}\n"), ("", f"     {spec.summary}\n")]
    fragments += [
        ("", "\nPEER is a contact's name (any case) or an address; a line starting\n"),
        ("", "with // sends a message that starts with /.\n"),
        ("class:hint", "\nup/down, PageUp/PageDown or the wheel scroll; Esc closes."),
    ]
    return fragments
