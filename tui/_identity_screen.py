"""The "my address" screen (F4, /me): what to give others so they can add us.

It shows the address on a line of its own (so a mouse selects it whole at
80 columns) and the same text as a QR code, drawn with half blocks, black
on white whatever the terminal's colours. When the node's identity view
carries an invite, the QR code holds the invite instead. Safety numbers
are per contact and live on the verify screen (F5): a number of our key
with itself would prove nothing.
"""

from __future__ import annotations

import segno
from prompt_toolkit.formatted_text import StyleAndTextTuples

from anonsip.control import IdentityView
from tui._model import ViewState
from tui._scroll import printable

__all__ = ["QR_BORDER", "qr_rows", "render_identity"]

QR_BORDER = 2  # modules of quiet zone around the code
_HALF_BLOCKS = {(True, True): "█", (True, False): "▀", (False, True): "▄", (False, False): " "}


def qr_rows(text: str) -> list[str]:
    """``text`` as a QR code: each row of characters is two rows of modules.

    An address is encoded in upper case: bech32 allows it, and QR codes
    hold upper-case letters and digits in the compact alphanumeric mode.
    """
    data = text.upper() if text.lower().startswith("asip1") else text
    code = segno.make(data, error="l", micro=False)  # raised as far as the size allows
    matrix = [[bool(module) for module in row] for row in code.matrix_iter(border=QR_BORDER)]
    if len(matrix) % 2:
        matrix.append([False] * len(matrix[0]))
    return [
        "".join(_HALF_BLOCKS[(top, bottom)] for top, bottom in zip(upper, lower, strict=True))
        for upper, lower in zip(matrix[::2], matrix[1::2], strict=True)
    ]


def _invite(identity: IdentityView) -> str:
    # The node's identity view will carry an invite (address plus how to reach
    # it); until it does, the QR code holds the address.
    invite = getattr(identity, "invite", "")
    return invite if isinstance(invite, str) else ""


def render_identity(state: ViewState, width: int) -> StyleAndTextTuples:
    identity = state.identity or (state.status.identity if state.status else None)
    if identity is None or not identity.address:
        return [("class:hint", "asking the node who we are…")]
    invite = _invite(identity)
    rows = qr_rows(invite or identity.address)
    side = [
        ("class:screen.key", f"Name: {printable(identity.nick) or '(none)'}"),
        ("", ""),
        ("", "Give this address to the people"),
        ("", "who should reach you. The QR code"),
        ("", "holds this invite." if invite else "holds the same address."),
        ("", ""),
        ("class:hint", "To rule out a man in the middle,"),
        ("class:hint", "open a contact's conversation and"),
        ("class:hint", "compare safety numbers (F5)."),
        ("", ""),
        ("class:hint", "Esc closes this screen."),
    ]
    fragments: StyleAndTextTuples = [("class:screen.value", f"{identity.address}\n\n")]
    if len(rows[0]) + 2 + max(len(text) for _, text in side) <= width:
        for index, row in enumerate(rows):
            fragments.append(("class:qr", row))
            if index < len(side):
                fragments += [("", "  "), side[index]]
            fragments.append(("", "\n"))
        return fragments
    for style, text in side:  # too narrow for the code beside the words
        fragments.append((style, f"{text}\n"))
    if len(rows[0]) <= width:
        fragments += [("class:qr", f"{row}\n") for row in rows]
    else:
        fragments.append(("class:hint", "(widen the terminal to see the QR code)"))
    return fragments
