"""A playout (jitter) buffer for voice over one in-order TCP-like stream.

On an onion stream nothing is lost or reordered, but frames arrive in
bursts and after stalls. The buffer is sans-IO: the caller hands it frames
with their sender timestamp and arrival time (``put``) and asks it, once per
20 ms playout tick, what to play (``pop(now)``): a frame, a concealment
(PLC) frame, or nothing yet. Like aiortc's ``jitterbuffer.py`` and WebRTC
NetEq, but for a path where waiting always pays off eventually:

* The target delay is a high percentile (p95) of transit times over a
  sliding window, relative to their minimum, plus one frame. It grows at
  once and shrinks slowly (``shrink_ms_per_s``).
* An underrun is concealed; the late frame is then played, not dropped, so
  the delay grows by a frame (that is how a stall is absorbed).
* The buffer catches up only in silence (the sender's voice-activity flag,
  carried sealed in each frame): a silent frame is skipped when the delay is
  more than a frame above target, and a concealment frame is inserted in
  silence when it is more than a frame below. Optionally it also compresses
  speech by dropping at most one frame in ``compress_every``.
* Past ``max_delay_ms`` it jumps to the newest audio.
"""

from __future__ import annotations

import bisect
import collections
from dataclasses import dataclass

from anonsip._errors import LocalError

__all__ = [
    "Conceal",
    "Idle",
    "JitterBuffer",
    "JitterPolicy",
    "JitterStatistics",
    "Play",
    "PlayoutEvent",
]


@dataclass(frozen=True, kw_only=True)
class PlayoutEvent:
    """What to do for one playout tick."""


@dataclass(frozen=True, kw_only=True)
class Play(PlayoutEvent):
    seq: int
    payload: bytes
    speech: bool
    send_ms: float = 0.0


@dataclass(frozen=True, kw_only=True)
class Conceal(PlayoutEvent):
    """Run the decoder's packet loss concealment for one frame."""

    reason: str  # "underrun" (nothing to play) or "stretch" (growing in silence)


@dataclass(frozen=True, kw_only=True)
class Idle(PlayoutEvent):
    """Nothing to play yet (buffering) or any more (``finished``)."""

    finished: bool = False


@dataclass(frozen=True, kw_only=True)
class JitterPolicy:
    """How the buffer adapts; the defaults suit a Tor circuit."""

    frame_ms: int = 20
    window_frames: int = 250  # 5 s of 20 ms frames
    percentile: float = 0.95
    min_target_ms: float = 100.0  # a prior for Tor: stalls come before the window has seen one
    max_target_ms: float = 800.0
    adaptive: bool = True  # False: the target stays at min_target_ms
    shrink_ms_per_s: float = 10.0
    catch_up_in_silence: bool = True
    compress_every: int = 0  # drop at most one speech frame in N; 0: never
    compress_above_ms: float = 200.0  # only when this far above target
    max_delay_ms: float = 1500.0  # beyond: jump to the newest audio
    capacity_frames: int = 200


@dataclass(frozen=True, kw_only=True)
class JitterStatistics:
    target_delay_ms: float
    current_delay_ms: float
    base_transit_ms: float
    buffered_frames: int
    played_frames: int
    concealed_frames: int
    stretched_frames: int
    late_frames: int
    dropped_frames: int
    compressed_frames: int
    missing_frames: int
    jumps: int


@dataclass(frozen=True, kw_only=True)
class _Entry:
    seq: int
    send_ms: float
    arrival_ms: float
    payload: bytes
    speech: bool


class JitterBuffer:
    """Sans-IO adaptive playout buffer; see the module docstring."""

    def __init__(self, policy: JitterPolicy | None = None) -> None:
        self.policy = p = policy or JitterPolicy()
        if not 0 < p.percentile <= 1 or p.window_frames < 1 or p.capacity_frames < 2:
            raise LocalError("impossible jitter buffer policy")
        self._frames: collections.deque[_Entry] = collections.deque()
        self._transits: collections.deque[float] = collections.deque()
        self._sorted: list[float] = []
        self._target = p.min_target_ms
        self._last_target_update: float | None = None
        self._last_seq = -1
        self._next_seq: int | None = None
        self._started = False
        self._ended = False
        self._underrun = False
        self._current_delay = 0.0
        self._since_compress = 0
        self._last_played_speech = False
        self._played = self._concealed = self._stretched = self._late = 0
        self._dropped = self._compressed = self._missing = self._jumps = 0

    # -- input -------------------------------------------------------------

    def put(
        self, *, seq: int, send_ms: float, arrival_ms: float, payload: bytes, speech: bool
    ) -> None:
        """A frame arrived; frames must come in sequence order (the stream is in order)."""
        if seq <= self._last_seq:
            raise LocalError(f"frames must be put in order ({seq} after {self._last_seq})")
        self._last_seq = seq
        if self._underrun:
            self._late += 1
            self._underrun = False
        self._observe(arrival_ms - send_ms, arrival_ms)
        self._frames.append(
            _Entry(seq=seq, send_ms=send_ms, arrival_ms=arrival_ms, payload=payload, speech=speech)
        )
        if len(self._frames) > self.policy.capacity_frames:
            self._take()
            self._dropped += 1

    def end_of_stream(self) -> None:
        """No more frames will come; play out what is buffered, then finish."""
        self._ended = True

    def _observe(self, transit: float, now: float) -> None:
        p = self.policy
        self._transits.append(transit)
        bisect.insort(self._sorted, transit)
        if len(self._transits) > p.window_frames:
            old = self._transits.popleft()
            del self._sorted[bisect.bisect_left(self._sorted, old)]
        if not p.adaptive:
            return
        base = self._sorted[0]
        high = self._sorted[min(len(self._sorted) - 1, int(p.percentile * len(self._sorted)))]
        wanted = min(max(high - base + p.frame_ms, p.min_target_ms), p.max_target_ms)
        last = self._last_target_update if self._last_target_update is not None else now
        elapsed_s = max(0.0, now - last) / 1000.0
        self._last_target_update = now
        if wanted >= self._target:
            self._target = wanted
        else:
            self._target = max(wanted, self._target - p.shrink_ms_per_s * elapsed_s)

    # -- output ------------------------------------------------------------

    def pop(self, now_ms: float) -> PlayoutEvent:
        """What to play for the tick starting at ``now_ms``."""
        p = self.policy
        if not self._frames:
            if self._ended:
                return Idle(finished=True)
            if not self._started:
                return Idle()
            self._underrun = True
            self._concealed += 1
            self._last_played_speech = False
            return Conceal(reason="underrun")
        base = self._sorted[0]
        head = self._frames[0]
        delay = now_ms - head.send_ms - base
        if not self._started:
            if delay < self._target and not self._ended:
                return Idle()
            self._started = True
        if delay > p.max_delay_ms:
            self._jump(now_ms, base)
            head = self._frames[0]
            delay = now_ms - head.send_ms - base
        elif len(self._frames) >= 2 and delay > self._target + p.frame_ms:
            if p.catch_up_in_silence and not head.speech:
                self._take()
                self._dropped += 1
                head = self._frames[0]
                delay = now_ms - head.send_ms - base
            elif (
                p.compress_every
                and delay > self._target + p.compress_above_ms
                and self._since_compress >= p.compress_every
            ):
                self._take()
                self._compressed += 1
                self._since_compress = 0
                head = self._frames[0]
                delay = now_ms - head.send_ms - base
        elif (
            p.catch_up_in_silence
            and delay < self._target - p.frame_ms
            and not head.speech
            and not self._last_played_speech
        ):
            self._stretched += 1
            self._current_delay = delay
            return Conceal(reason="stretch")
        self._take()
        self._played += 1
        self._since_compress += 1
        self._current_delay = delay
        self._last_played_speech = head.speech
        return Play(seq=head.seq, payload=head.payload, speech=head.speech, send_ms=head.send_ms)

    def _jump(self, now_ms: float, base: float) -> None:
        self._jumps += 1
        while len(self._frames) > 1:
            if now_ms - self._frames[0].send_ms - base <= self._target:
                break
            self._take()
            self._dropped += 1

    def _take(self) -> _Entry:
        # A gap in sequence numbers means the sender dropped frames when its
        # stream backed up; on an in-order stream they will never come.
        head = self._frames.popleft()
        if self._next_seq is not None and head.seq > self._next_seq:
            self._missing += head.seq - self._next_seq
        self._next_seq = head.seq + 1
        return head

    def statistics(self) -> JitterStatistics:
        return JitterStatistics(
            target_delay_ms=self._target,
            current_delay_ms=self._current_delay,
            base_transit_ms=self._sorted[0] if self._sorted else 0.0,
            buffered_frames=len(self._frames),
            played_frames=self._played,
            concealed_frames=self._concealed,
            stretched_frames=self._stretched,
            late_frames=self._late,
            dropped_frames=self._dropped,
            compressed_frames=self._compressed,
            missing_frames=self._missing,
            jumps=self._jumps,
        )
