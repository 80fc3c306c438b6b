"""The keyboard help screen (``?`` or F1): every key and slash command."""

from __future__ import annotations

from prompt_toolkit.formatted_text import StyleAndTextTuples

from tui._commands import COMMANDS

__all__ = ["KEYS", "render_help"]

KEYS: tuple[tuple[str, str], ...] = (
    ("Tab / shift-Tab", "move between contacts and the input line"),
    ("up / down", "contacts: choose one; input line: message history"),
    ("Enter", "contacts: open the conversation; input line: send"),
    ("ctrl-n / ctrl-p", "open the next / previous contact"),
    ("mouse click", "open a contact's conversation"),
    ("ctrl-a / ctrl-d", "answer / decline an incoming call"),
    ("F1 or ?", "this help"),
    ("F2", "add a contact by address"),
    ("F3", "contact requests (a accept, d decline, b block)"),
    ("F4", "my identity: address and fingerprint"),
    ("F5", "verify the open contact's safety number"),
    ("F6 / F7 / F8", "call the open contact / mute / hang up"),
    ("Esc or q", "close a screen"),
    ("ctrl-q or F10", "quit (the node keeps running)"),
)


def render_help() -> StyleAndTextTuples:
    width = max(len(key) for key, _ in KEYS)
    fragments: StyleAndTextTuples = [("class:screen.heading", "Keys\n")]
    for key, what in KEYS:
        fragments += [("class:screen.key", f" {key:<{width}} "), ("", f"{what}\n")]
    fragments.append(("class:screen.heading", "\nCommands\n"))
    width = max(len(spec.usage) for spec in COMMANDS.values())
    for spec in COMMANDS.values():
        fragments += [("class:screen.key", f" {spec.usage:<{width}} "), ("", f"{spec.summary}\n")]
    fragments.append(("class:hint", "\nEsc closes this screen."))
    return fragments
