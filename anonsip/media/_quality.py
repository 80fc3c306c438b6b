"""Call quality: RFC 3550 interarrival jitter, round trip, and an E-model MOS.

The MOS estimate follows the simplified E-model of ITU-T G.107 (Cole and
Rosenbluth's form of the delay impairment): R = 93.2 - Id - Ie_eff, with
Id = 0.024 d + 0.11 (d - 177.3) H(d - 177.3) for one-way mouth-to-ear delay
d in ms, and Ie_eff = Ie + (95 - Ie) Ppl / (Ppl + Bpl) for concealed-frame
percentage Ppl. G.107 lists no Opus values; the Ie-by-bitrate table and
Bpl below are estimates scaled from the PESQ-WB of Opus measured on this
project's machines with espeak-ng speech at 16 kHz (3.02, 3.58, 4.11 and
4.37 at 12, 16, 24 and 32 kbit/s), good for comparing conditions, not as an
absolute rating.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

__all__ = [
    "CallStatistics",
    "InterarrivalJitter",
    "RoundTrip",
    "e_model_mos",
    "e_model_r",
    "opus_ie",
]

# (bitrate bit/s, equipment impairment Ie) for Opus, 20 ms frames: estimates.
_OPUS_IE = (
    (6000, 30.0),
    (8000, 20.0),
    (12000, 11.0),
    (16000, 7.0),
    (24000, 4.0),
    (32000, 2.0),
    (64000, 0.0),
)
OPUS_BPL = 20.0


def opus_ie(bitrate: int) -> float:
    """Estimated equipment impairment of Opus at ``bitrate``, interpolated."""
    if bitrate <= _OPUS_IE[0][0]:
        return _OPUS_IE[0][1]
    for (b0, i0), (b1, i1) in itertools.pairwise(_OPUS_IE):
        if bitrate <= b1:
            return i0 + (i1 - i0) * (bitrate - b0) / (b1 - b0)
    return _OPUS_IE[-1][1]


def e_model_r(*, one_way_delay_ms: float, bitrate: int, concealed_percent: float = 0.0) -> float:
    d = max(0.0, one_way_delay_ms)
    delay_impairment = 0.024 * d + (0.11 * (d - 177.3) if d > 177.3 else 0.0)
    ie = opus_ie(bitrate)
    ppl = max(0.0, concealed_percent)
    ie_eff = ie + (95.0 - ie) * ppl / (ppl + OPUS_BPL)
    return 93.2 - delay_impairment - ie_eff


def e_model_mos(*, one_way_delay_ms: float, bitrate: int, concealed_percent: float = 0.0) -> float:
    """MOS-CQE from the R factor (G.107 Annex B)."""
    r = e_model_r(
        one_way_delay_ms=one_way_delay_ms, bitrate=bitrate, concealed_percent=concealed_percent
    )
    if r <= 0:
        return 1.0
    if r >= 100:
        return 4.5
    return 1 + 0.035 * r + r * (r - 60) * (100 - r) * 7e-6


class InterarrivalJitter:
    """RFC 3550 section 6.4.1: J += (|D| - J) / 16, in milliseconds."""

    def __init__(self) -> None:
        self._last: tuple[float, float] | None = None
        self.jitter_ms = 0.0

    def update(self, *, send_ms: float, arrival_ms: float) -> float:
        if self._last is not None:
            d = (arrival_ms - self._last[1]) - (send_ms - self._last[0])
            self.jitter_ms += (abs(d) - self.jitter_ms) / 16
        self._last = (send_ms, arrival_ms)
        return self.jitter_ms


class RoundTrip:
    """Round trip from echoed timestamps, as RTCP's LSR/DLSR (RFC 3550 6.4.1).

    The peer echoes the newest of our send timestamps it has received and how
    long it held it; all times are on our media clock.
    """

    def __init__(self) -> None:
        self.last_ms: float | None = None
        self.smoothed_ms: float | None = None

    def update(self, *, now_ms: float, echo_ms: float, hold_ms: float) -> float:
        rtt = max(0.0, now_ms - echo_ms - hold_ms)
        self.last_ms = rtt
        self.smoothed_ms = rtt if self.smoothed_ms is None else self.smoothed_ms * 0.875 + rtt / 8
        return rtt


@dataclass(frozen=True, kw_only=True)
class CallStatistics:
    """Live figures of one call's media, both directions as seen from this side."""

    duration_s: float
    round_trip_ms: float | None
    jitter_ms: float
    playout_delay_ms: float
    target_delay_ms: float
    base_transit_ms: float
    sent_frames: int
    send_dropped_frames: int
    received_frames: int
    played_frames: int
    concealed_frames: int
    late_frames: int
    dropped_frames: int
    send_bitrate_bps: float
    wire_bitrate_bps: float
    mos_estimate: float | None
    missing_frames: int = 0  # slots concealed because no path had brought the frame
    discarded_frames: int = 0  # frames that came after their slot
    duplicate_frames: int = 0  # copies from slower paths, dropped
    open_paths: int = 1
    used_paths: int = 1
