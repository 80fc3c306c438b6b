"""The top status bar and the one-line notice at the bottom of the screen.

The bar reads left to right as the node comes up: the control connection,
Tor's bootstrap (progress bar and phase, as Tor reports it in
``status/bootstrap-phase``), then the DHT and our registration record.
"""

from __future__ import annotations

from prompt_toolkit.formatted_text import StyleAndTextTuples

from tui._model import ViewState

__all__ = ["BAR_CELLS", "progress_bar", "render_notice", "render_status_bar"]

BAR_CELLS = 10


def progress_bar(percent: int, cells: int = BAR_CELLS) -> str:
    filled = max(0, min(cells, round(percent * cells / 100)))
    return "█" * filled + "░" * (cells - filled)


def _width(fragments: StyleAndTextTuples) -> int:
    return sum(len(text) for _, text, *_ in fragments)


def render_status_bar(state: ViewState, width: int) -> StyleAndTextTuples:
    """The bar, most important first; what does not fit in ``width`` is left out."""
    if not state.connected:
        return [("class:status.bad", " Node: not connected ")]
    status = state.status
    sep = ("class:status", " │ ")
    if status is None or not status.tor_connected:
        tor: StyleAndTextTuples = [("class:status.bad", " Tor: not connected ")]
    else:
        assert status.tor_progress is not None
        done = status.tor_progress >= 100
        style = "class:status.good" if done else "class:status.busy"
        phase = status.tor_phase or ("ready" if done else "starting")
        room = max(8, width // 3)
        if len(phase) > room:
            phase = phase[: room - 1] + "…"
        tor = [
            ("class:status", " Tor "),
            (style, progress_bar(status.tor_progress)),
            ("class:status", f" {status.tor_progress:3d}% {phase}"),
        ]
    # In order of importance; each is dropped whole if it does not fit.
    optional: list[StyleAndTextTuples] = []
    if status is not None:
        registration = status.registration_state or "unknown"
        good = registration == "registered"
        optional.append([sep, ("class:status.good" if good else "class:status.busy", registration)])
    if state.requests:
        optional.append([sep, ("class:status.alert", f"{len(state.requests)} request(s) F3")])
    if status is not None:
        optional.append([sep, ("class:status", f"DHT {status.dht_routing_table} peers")])
        if status.outbox:
            optional.append([sep, ("class:status", f"outbox {status.outbox}")])
        if status.presence:
            optional.append([sep, ("class:status", f"me: {status.presence}")])
    parts = list(tor)
    for segment in optional:
        if _width(parts) + _width(segment) <= width:
            parts += segment
    return parts


def render_notice(state: ViewState) -> StyleAndTextTuples:
    if not state.notice:
        return [("class:notice.hint", " ? or F1: help   Tab: contacts/input   /quit: leave")]
    style = "class:notice.error" if state.notice_is_error else "class:notice"
    return [(style, f" {state.notice}")]
