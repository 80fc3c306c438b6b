"""The call bar (peer, timer, mute, live quality) and the incoming-call prompt.

Quality is what the media loop measures: the jitter buffer's playout delay,
frames concealed by Opus PLC, and an estimated MOS.
"""

from __future__ import annotations

from prompt_toolkit.formatted_text import StyleAndTextTuples

from tui._model import Call, CallPhase, ViewState, incoming_call, peer_label, shown_call

__all__ = ["format_duration", "render_call_bar", "render_incoming_call"]


def format_duration(seconds: float) -> str:
    whole = int(seconds)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes:02d}:{secs:02d}"


def _quality(call: Call) -> str:
    parts = []
    if call.quality.playout_delay_ms is not None:
        parts.append(f"delay {call.quality.playout_delay_ms:.0f} ms")
    if call.quality.concealed_frames is not None:
        parts.append(f"concealed {call.quality.concealed_frames}")
    if call.quality.mos is not None:
        parts.append(f"MOS {call.quality.mos:.1f}")
    return " · ".join(parts)


def render_call_bar(state: ViewState, now: float, width: int = 80) -> StyleAndTextTuples:
    """The call bar; the quality figures, then the key hints, give way in a narrow terminal."""
    call = shown_call(state)
    if call is None:
        return []
    who = peer_label(state, call.peer)
    hint = ("class:call.hint", " F8 hang up")
    if call.phase is CallPhase.RINGING:
        return [("class:call", f" Calling {who}… "), hint]
    fragments: StyleAndTextTuples = [
        ("class:call", f" In call: {who} "),
        ("class:call.timer", f" {format_duration(call.duration(now))} "),
    ]
    if call.held:
        fragments.append(("class:call.held", " on hold "))
    fragments.append(("class:call.muted", " muted ") if call.muted else ("class:call", " mic on "))
    quality = _quality(call)
    for extra in (("class:call.quality", f" {quality} ") if quality else None, hint):
        if extra is not None and sum(len(f[1]) for f in fragments) + len(extra[1]) <= width:
            fragments.append(extra)
    return fragments


def render_incoming_call(state: ViewState) -> StyleAndTextTuples:
    call = incoming_call(state)
    if call is None:
        return []
    return [
        ("class:incoming", f" Incoming call from {peer_label(state, call.peer)} \n"),
        ("class:incoming.keys", " ctrl-a answer    ctrl-d decline "),
    ]
