"""The call bar (peer, timer, mute, live quality) and the prompts a call raises.

Quality is what the media loop measures (``CallStatsView``): the jitter
buffer's playout delay, frames concealed by Opus PLC, and an estimated MOS.
The prompts: an incoming call to answer or decline, and a peer asking us
to call someone else (a transfer needs our consent).
"""

from __future__ import annotations

from prompt_toolkit.formatted_text import StyleAndTextTuples

from anonsip.control import CallState, CallView
from tui._model import (
    ViewState,
    call_duration,
    incoming_call,
    peer_label,
    shown_call,
    transfer_request,
)
from tui._scroll import printable

__all__ = ["format_duration", "render_call_bar", "render_call_prompt"]


def format_duration(seconds: float) -> str:
    whole = int(seconds)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes:02d}:{secs:02d}"


def _quality(call: CallView) -> str:
    stats = call.stats
    if stats is None:
        return ""
    parts = []
    if stats.playout_delay_ms is not None:
        parts.append(f"delay {stats.playout_delay_ms:.0f} ms")
    if stats.played_frames or stats.concealed_frames:
        parts.append(f"concealed {stats.concealed_frames}")
    if stats.mos is not None:
        parts.append(f"MOS {stats.mos:.1f}")
    return " · ".join(parts)


def render_call_bar(state: ViewState, now: float, width: int = 80) -> StyleAndTextTuples:
    """The call bar; the quality figures, then the key hints, give way in a narrow terminal."""
    call = shown_call(state)
    if call is None:
        return []
    who = printable(peer_label(state, call.peer))
    hint = ("class:call.hint", " F8 hang up")
    if call.state is CallState.CALLING:
        return [("class:call", f" Calling {who}… "), hint]
    if call.state is CallState.RINGING:
        return [("class:call", f" Ringing {who}… "), hint]
    if call.state is CallState.ENDING:
        return [("class:call", f" Ending the call with {who}… ")]
    fragments: StyleAndTextTuples = [
        ("class:call", f" In call: {who} "),
        ("class:call.timer", f" {format_duration(call_duration(call, now))} "),
    ]
    if call.held:
        fragments.append(("class:call.held", " on hold "))
    fragments.append(("class:call.muted", " muted ") if call.muted else ("class:call", " mic on "))
    quality = _quality(call)
    for extra in (("class:call.quality", f" {quality} ") if quality else None, hint):
        if extra is not None and sum(len(f[1]) for f in fragments) + len(extra[1]) <= width:
            fragments.append(extra)
    return fragments


def render_call_prompt(state: ViewState) -> StyleAndTextTuples:
    """The prompt over every screen: an incoming call first, else a transfer to allow."""
    call = incoming_call(state)
    if call is not None:
        return [
            ("class:incoming", f" Incoming call from {printable(peer_label(state, call.peer))} \n"),
            ("class:incoming.keys", " ctrl-a answer    ctrl-d decline "),
        ]
    call = transfer_request(state)
    if call is not None:
        who = printable(peer_label(state, call.peer))
        target = printable(peer_label(state, call.transfer_to))
        return [
            ("class:incoming", f" {who} asks you to call {target} \n"),
            ("class:incoming.keys", " ctrl-a allow    ctrl-d refuse "),
        ]
    return []
