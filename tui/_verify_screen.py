"""The verify-contact screen: the safety number both sides compute from their two keys.

If the numbers read out over another channel (in person, a call you
recognise the voice on) match, no one sits between the two identities;
the user then marks the contact verified.
"""

from __future__ import annotations

from prompt_toolkit.formatted_text import StyleAndTextTuples

from tui._model import ViewState, display_name, find_contact
from tui._scroll import printable

__all__ = ["group_digits", "render_verify"]


def group_digits(number: str, per_line: int = 4) -> str:
    """A safety number laid out in rows of ``per_line`` groups, for reading aloud."""
    groups = number.split()
    if len(groups) == 1 and number.isdigit():  # 60 digits in one run: read in fives
        groups = [number[i : i + 5] for i in range(0, len(number), 5)]
    rows = [" ".join(groups[i : i + per_line]) for i in range(0, len(groups), per_line)]
    return "\n".join(f"   {row}" for row in rows)


def render_verify(state: ViewState, peer: str | None) -> StyleAndTextTuples:
    contact = find_contact(state, peer) if peer else None
    if contact is None:
        return [("class:hint", "Open a contact's conversation first, then F5 or /verify.")]
    name = printable(display_name(contact))
    number = state.safety_numbers.get(contact.address)
    return [
        ("class:screen.heading", f"Verify {name}\n\n"),
        ("class:screen.key", "Their address:\n"),
        ("", f"{contact.address}\n\n"),
        ("class:screen.key", f"Safety number of you and {name}:\n"),
        (
            "class:screen.value",
            f"{group_digits(number)}\n\n" if number else "   asking the node…\n\n",
        ),
        ("class:screen.key", "Status: "),
        ("class:verified", "verified ✓\n\n")
        if contact.verified
        else ("class:unverified", "not verified\n\n"),
        ("class:hint", f"Compare the number with {name} over another channel;\n"),
        ("class:hint", "they see the same number on their side.\n"),
        ("class:hint", "v: they match, mark verified   u: unmark   Esc: close"),
    ]
