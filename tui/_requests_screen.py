"""The contact-requests screen: who asked to be added, with their message."""

from __future__ import annotations

import time

from prompt_toolkit.formatted_text import StyleAndTextTuples

from tui._model import ViewState
from tui._scroll import printable

__all__ = ["render_requests"]


def render_requests(state: ViewState, selected: int) -> StyleAndTextTuples:
    fragments: StyleAndTextTuples = [("class:screen.heading", "Contact requests\n\n")]
    if not state.requests:
        fragments.append(("class:hint", "No pending requests.\n\nEsc closes this screen."))
        return fragments
    for index, request in enumerate(state.requests):
        style = "class:request.selected" if index == selected else "class:request"
        when = time.strftime("%d %b %H:%M", time.localtime(request.time)) if request.time else ""
        fragments += [
            (style, f"{request.address}\n"),
            ("class:request.text", f"   {when}  “{printable(request.text)}”\n"),
        ]
    fragments.append(
        (
            "class:hint",
            "\nup/down choose   a accept and name   d decline   b block   Esc close",
        )
    )
    return fragments
