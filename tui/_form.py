"""A small form over the main screen: a line saying what it is for, one or two labelled
fields, and the error of the last attempt.

Tab and shift-Tab move between the fields (the application binds them),
Enter in a field moves to the next one and submits from the last. A failed
submission keeps the form open with what was typed and shows why, whole.
Labels sit outside the fields, so a long address scrolls inside its field
and the label stays.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

from prompt_toolkit.application import get_app
from prompt_toolkit.buffer import Buffer
from prompt_toolkit.filters import Condition
from prompt_toolkit.layout import (
    ConditionalContainer,
    Dimension,
    FormattedTextControl,
    HSplit,
    VSplit,
    Window,
)
from prompt_toolkit.widgets import Frame, TextArea

from tui._scroll import ScrollView, wrap

__all__ = ["FIELDS", "Form"]

FIELDS = 2


class Form:
    def __init__(self, on_submit: Callable[[Form], None]) -> None:
        self.title = ""
        self.intro = ""
        self.error = ""
        self.labels = [""] * FIELDS
        self.count = 0
        self._on_submit = on_submit
        self.fields = [TextArea(multiline=False) for _ in range(FIELDS)]
        for index, field in enumerate(self.fields):
            field.buffer.accept_handler = partial(self._entered, index)
        rows = [
            ConditionalContainer(
                VSplit(
                    [
                        Window(
                            FormattedTextControl(partial(self._label, index)),
                            width=self._label_width,
                            style="class:screen.key",
                        ),
                        field,
                    ]
                ),
                filter=Condition(partial(lambda i: i < self.count, index)),
            )
            for index, field in enumerate(self.fields)
        ]
        self.container = Frame(
            HSplit(
                [
                    Window(
                        ScrollView(
                            lambda width: wrap([("", self.intro)], width),
                            anchor_bottom=False,
                            fit=True,
                        ),
                        height=Dimension(min=1, max=4),
                    ),
                    *rows,
                    ConditionalContainer(
                        Window(
                            ScrollView(
                                lambda width: wrap([("class:notice.error", self.error)], width),
                                anchor_bottom=False,
                                fit=True,
                            ),
                            height=Dimension(min=1, max=5),
                        ),
                        filter=Condition(lambda: bool(self.error)),
                    ),
                    Window(
                        FormattedTextControl(
                            "Enter: next field / done   Tab: next field   Esc: cancel"
                        ),
                        height=1,
                        style="class:hint",
                    ),
                ]
            ),
            title=lambda: self.title,
        )

    def _label(self, index: int) -> str:
        return self.labels[index]

    def _label_width(self) -> Dimension:
        return Dimension.exact(max(len(label) for label in self.labels[: max(1, self.count)]) + 1)

    def open(self, title: str, intro: str, labels: list[str], values: list[str]) -> None:
        self.title, self.intro, self.error = title, intro, ""
        self.count = len(labels)
        self.labels = [*labels, *[""] * (FIELDS - len(labels))]
        for field, value in zip(self.fields, [*values, *[""] * FIELDS], strict=False):
            field.text = value
            field.buffer.cursor_position = len(value)
        get_app().layout.focus(self.fields[0])

    def values(self) -> list[str]:
        return [field.text.strip() for field in self.fields[: self.count]]

    def focus_step(self, delta: int) -> None:
        layout = get_app().layout
        shown = self.fields[: self.count]
        current = next((i for i, f in enumerate(shown) if layout.has_focus(f)), 0)
        layout.focus(shown[(current + delta) % len(shown)])

    def _entered(self, index: int, buffer: Buffer) -> bool:
        if index + 1 < self.count:
            get_app().layout.focus(self.fields[index + 1])
        else:
            self._on_submit(self)
        return True  # keep the text: the form closes only when the node agreed
