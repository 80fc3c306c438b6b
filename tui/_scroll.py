"""Text that fits its pane: word-wrapped rows, and a control that scrolls through them.

``wrap`` breaks formatted text into screen rows at spaces (a word longer
than a row is cut), measuring cells as the terminal does (wide CJK
characters take two). ``printable`` shows control characters from a peer
in caret notation, so they are counted, drawn and never obeyed.

``ScrollView`` is a prompt_toolkit control that draws the rows fitting its
window: anchored at the bottom (a conversation: the newest row last) or at
the top (a help screen). PageUp/PageDown and the mouse wheel move it; a
marker row says when more lies beyond the edge.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from prompt_toolkit.formatted_text import OneStyleAndTextTuple, StyleAndTextTuples
from prompt_toolkit.layout.controls import GetLinePrefixCallable, UIContent, UIControl
from prompt_toolkit.mouse_events import MouseEvent, MouseEventType
from prompt_toolkit.utils import get_cwidth

__all__ = ["NO_BREAK", "WHEEL_ROWS", "Rows", "ScrollView", "printable", "rows_text", "wrap"]

WHEEL_ROWS = 3  # rows one turn of the mouse wheel moves
NO_BREAK = "class:nobreak"  # a fragment with this style is wrapped as one piece

Rows = list[StyleAndTextTuples]

_CONTROL = re.compile(r"[\x00-\x09\x0b-\x1f\x7f-\x9f]")
_TOKENS = re.compile(r"\n| +|[^ \n]+")


def _caret(match: re.Match[str]) -> str:
    code = ord(match.group())
    if code < 0x20:
        return "^" + chr(code + 0x40)
    if code == 0x7F:
        return "^?"
    return f"<{code:x}>"


def printable(text: str) -> str:
    """``text`` with control characters (except newlines) in caret notation: ESC is ``^[``."""
    return _CONTROL.sub(_caret, text)


def _piece(fragment: OneStyleAndTextTuple, text: str) -> OneStyleAndTextTuple:
    if len(fragment) == 3:
        return (fragment[0], text, fragment[2])
    return (fragment[0], text)


def wrap(fragments: StyleAndTextTuples, width: int, *, indent: int = 0) -> Rows:
    """``fragments`` as rows of at most ``width`` cells, broken at spaces where possible.

    A newline in the text starts a new row; a row continuing a broken line
    starts with ``indent`` spaces (a hanging indent under a message's text).
    A fragment styled ``NO_BREAK`` (a delivery mark) is kept on one row.
    """
    width = max(1, width)
    indent = max(0, min(indent, width // 2))
    rows: Rows = []
    row: StyleAndTextTuples = []
    used = 0
    start = 0  # cells at the start of this row that are indent, not text

    def new_row(continued: bool) -> None:
        nonlocal row, used, start
        while continued and row and len(row) > (1 if start else 0) and not row[-1][1].strip(" "):
            row.pop()  # the spaces where a line breaks are not shown
        rows.append(row)
        row, used, start = [], 0, 0
        if continued and indent:
            row.append(("", " " * indent))
            used = start = indent

    for fragment in fragments:
        whole = NO_BREAK in fragment[0].split()
        for token in [fragment[1]] if whole else _TOKENS.findall(fragment[1]):
            if whole and used + get_cwidth(token) > width and used > start:
                new_row(True)  # a mark that reads as one piece moves down whole
                token = token.lstrip(" ")
            if token == "\n":  # noqa: S105 - a line break, not a password
                new_row(False)
                continue
            cells = get_cwidth(token)
            if used + cells <= width:
                row.append(_piece(fragment, token))
                used += cells
                continue
            if token.startswith(" "):
                new_row(True)  # spaces at a break are dropped
                continue
            if used > start and cells <= width - indent:
                new_row(True)
                row.append(_piece(fragment, token))
                used += cells
                continue
            for char in token:  # longer than a row: cut it
                char_cells = get_cwidth(char)
                if used + char_cells > width and used > start:
                    new_row(True)
                    if used + char_cells > width:  # no room beside the indent
                        row, used, start = [], 0, 0
                row.append(_piece(fragment, char))
                used += char_cells
    rows.append(row)
    return rows


def rows_text(rows: Rows) -> str:
    """The rows as plain text, one line each (for tests and for measuring)."""
    return "\n".join("".join(f[1] for f in row) for row in rows)


class ScrollView(UIControl):
    """Rows that scroll: ``offset`` counts rows away from the anchored edge."""

    def __init__(
        self,
        rows: Callable[[int], Rows],
        *,
        anchor_bottom: bool,
        focusable: bool = False,
        fit: bool = False,
    ) -> None:
        self._rows = rows
        self._anchor_bottom = anchor_bottom
        self._focusable = focusable
        self._fit = fit  # ask for as many rows as the text needs
        self.offset = 0
        self._page = 1
        self._most = 0

    def is_focusable(self) -> bool:
        return self._focusable

    def preferred_height(
        self,
        width: int,
        max_available_height: int,
        wrap_lines: bool,
        get_line_prefix: GetLinePrefixCallable | None,
    ) -> int | None:
        if not self._fit:
            return None
        return len(self._rows(width))

    def reset(self) -> None:
        self.offset = 0

    @property
    def at_edge(self) -> bool:
        return self.offset == 0

    def _move(self, rows: int) -> None:
        self.offset = max(0, min(self._most, self.offset + rows))

    def up(self, rows: int = 1) -> None:
        self._move(rows if self._anchor_bottom else -rows)

    def down(self, rows: int = 1) -> None:
        self._move(-rows if self._anchor_bottom else rows)

    def page_up(self) -> None:
        self.up(self._page)

    def page_down(self) -> None:
        self.down(self._page)

    def home(self) -> None:
        self.offset = self._most if self._anchor_bottom else 0

    def end(self) -> None:
        self.offset = 0 if self._anchor_bottom else self._most

    def create_content(self, width: int, height: int) -> UIContent:
        rows = self._rows(width)
        height = max(1, height)
        self._most = max(0, len(rows) - height)
        self._page = max(1, height - 1)
        self.offset = min(self.offset, self._most)
        start = self._most - self.offset if self._anchor_bottom else self.offset
        visible = rows[start : start + height]
        hidden_below = len(rows) - (start + len(visible))
        if hidden_below > 0 and len(visible) > 1:
            more = f" ↓ {hidden_below + 1} more lines: PageDown "
            visible[-1] = [("class:scroll.more", more[: max(1, width)])]
        return UIContent(get_line=lambda i: visible[i], line_count=len(visible), show_cursor=False)

    def mouse_handler(self, mouse_event: MouseEvent) -> object:
        if mouse_event.event_type is MouseEventType.SCROLL_UP:
            self.up(WHEEL_ROWS)
            return None
        if mouse_event.event_type is MouseEventType.SCROLL_DOWN:
            self.down(WHEEL_ROWS)
            return None
        return NotImplemented
