"""The "my identity" screen: what to give others so they can add us, and our fingerprint."""

from __future__ import annotations

from prompt_toolkit.formatted_text import StyleAndTextTuples

from tui._model import ViewState

__all__ = ["render_identity"]


def render_identity(state: ViewState) -> StyleAndTextTuples:
    identity = state.identity
    if identity is None:
        return [("class:hint", "asking the node who we are…")]
    onion = state.status.onion_address if state.status else ""
    return [
        ("class:screen.heading", "My identity\n\n"),
        ("class:screen.key", " Nick        "),
        ("", f"{identity.nick or '(none)'}\n"),
        ("class:screen.key", " Address     "),
        ("class:screen.value", f"{identity.address}\n"),
        ("class:screen.key", " SIP URI     "),
        ("", f"{identity.sip_uri}\n"),
        ("class:screen.key", " Fingerprint "),
        ("class:screen.value", f"{identity.fingerprint}\n"),
        ("class:screen.key", " Onion       "),
        ("", f"{onion or '(not published yet)'}\n\n"),
        ("class:hint", "Give the address to people who should reach you; compare the\n"),
        ("class:hint", "safety number (F5) with each of them to rule out a man in the middle.\n"),
        ("class:hint", "Esc closes this screen."),
    ]
