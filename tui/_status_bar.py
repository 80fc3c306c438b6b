"""The top status bar and the notice at the bottom of the screen.

The bar reads left to right as the node comes up: the control connection,
Tor's bootstrap (progress bar and phase, as Tor reports it in
``status/bootstrap-phase``), the node's phase while it is not running, then
our registration, the DHT and the outbox. The notice is the last thing
worth telling, wrapped whole over as many rows as it needs.
"""

from __future__ import annotations

from prompt_toolkit.formatted_text import StyleAndTextTuples

from anonsip.control import NodePhase
from tui._model import Notice, ViewState, restart_hint
from tui._scroll import Rows, printable, wrap

__all__ = ["BAR_CELLS", "HINT", "notice_rows", "progress_bar", "render_status_bar"]

BAR_CELLS = 10
HINT = " F1: help   Tab: contacts/input   PageUp: scroll back   /quit: leave"


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
    if status is None:
        return [("class:status.busy", " asking the node… ")]
    progress = max(0, min(100, status.tor.progress))
    done = progress >= 100
    style = "class:status.good" if done else "class:status.busy"
    phase = printable(status.tor.phase) or ("ready" if done else "starting")
    room = max(8, width // 3)
    if len(phase) > room:
        phase = phase[: room - 1] + "…"
    parts: StyleAndTextTuples = [
        ("class:status", " Tor "),
        (style, progress_bar(progress)),
        ("class:status", f" {progress:3d}% {phase}"),
    ]
    # In order of importance; each is dropped whole if it does not fit.
    optional: list[StyleAndTextTuples] = []
    if status.phase is not NodePhase.RUNNING:
        optional.append([sep, ("class:status.busy", f"node {status.phase.value}")])
    registration = printable(status.registration.state) or "unknown"
    good = registration == "registered"
    optional.append([sep, ("class:status.good" if good else "class:status.busy", registration)])
    if state.requests:
        optional.append([sep, ("class:status.alert", f"{len(state.requests)} request(s) F3")])
    peers = status.dht.routing_table
    optional.append([sep, ("class:status", f"DHT {peers} peer{'' if peers == 1 else 's'}")])
    if status.outbox:
        optional.append([sep, ("class:status", f"outbox {status.outbox}")])
    optional.append([sep, ("class:status", f"me: {status.presence.status.value}")])
    for segment in optional:
        if _width(parts) + _width(segment) <= width:
            parts += segment
    return parts


def notice_rows(state: ViewState, width: int) -> Rows:
    notice = state.notice
    if notice is None and not state.connected and state.status is not None:
        # The node went away: how to start it again stays in view.
        notice = Notice(text=f"Node stopped. Start it again with: {restart_hint(state)}")
    if notice is None:
        return [[("class:notice.hint", HINT[:width])]]
    style = "class:notice.error" if notice.error else "class:notice"
    return wrap([(style, " " + printable(notice.text))], width, indent=1)
