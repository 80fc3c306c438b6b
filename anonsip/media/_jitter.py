"""A playout (jitter) buffer for voice over onion streams, one path or several.

On one onion stream nothing is lost or reordered, but frames arrive in
bursts and after stalls; over several paths (the first copy of each frame
wins, see ``_paths``) a frame can also come after its successor. The buffer
is sans-IO: the caller hands it frames with their sender timestamp and
arrival time (``put``, any order) and asks it, once per 20 ms playout tick,
what to play (``pop(now)``): a frame, a concealment (PLC) frame, or nothing
yet. Like aiortc's ``jitterbuffer.py`` and WebRTC NetEq, but for paths
where waiting pays off:

* The target delay is a high percentile (p95) of transit times over a
  sliding window, relative to their minimum, plus one frame. It grows at
  once and shrinks slowly (``shrink_ms_per_s``).
* Frames play in sequence order on a timeline. An empty buffer (every path
  stalled) is concealed and the late frame then played, not dropped: the
  delay grows by a frame, which is how a stall is absorbed. A frame missing
  while later ones wait (a slower path has it, or the sender dropped it)
  is concealed in its own slot; if it comes after that slot it is
  discarded.
* Speech is never shortened: the buffer catches up only inside silence
  (the sender's voice-activity flag, carried sealed in each frame). A
  silent frame is skipped only when the frame played before it and the
  next ``silence_lookahead_frames`` frames are silent too, so a quiet word
  onset or ending next to speech is never cut; far above target it skips
  as many such frames at once as it needs. Below target it stretches
  silence with concealment. Time compression of speech (``compress_every``)
  is an opt-in experiment, off by default.
* The buffer is bounded (``capacity_frames``): when full, it evicts the
  oldest silent frame, and speech only if it holds nothing else.
* A frame the sender held back until the call's first path opened (its
  start backlog, flagged ``held``) plays like any other, but its transit
  (seconds spent waiting at the sender) is not the network's: it does not
  enter the window, so a late first path does not push the target to its
  maximum. Such a burst is caught up inside its silences like any delay.
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

    # "underrun" (nothing to play), "stretch" (growing in silence) or
    # "missing" (this frame's slot came and it had not)
    reason: str


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
    silence_lookahead_frames: int = 3  # silent frames that must follow a skipped one
    compress_every: int = 0  # drop at most one speech frame in N; 0: never
    compress_above_ms: float = 200.0  # only when this far above target
    capacity_frames: int = 600  # 12 s: a sender's whole start backlog (10 s) fits

    @classmethod
    def for_paths(cls, paths: int, *, frame_ms: int = 20) -> JitterPolicy:
        """The default for a call on ``paths`` paths. With two or more, a stall on
        one path rarely delays the first copy, so the prior can be lower: on the
        Tor-like model 60 ms cost 0.03 PESQ-WB and saved 40 ms (``bench/call.py``)."""
        return cls(frame_ms=frame_ms, min_target_ms=100.0 if paths < 2 else 60.0)


@dataclass(frozen=True, kw_only=True)
class JitterStatistics:
    target_delay_ms: float
    current_delay_ms: float
    base_transit_ms: float
    buffered_frames: int
    played_frames: int
    concealed_frames: int
    stretched_frames: int
    late_frames: int  # came after an underrun and were played late
    dropped_frames: int  # silence skipped to catch up, and evictions
    compressed_frames: int  # speech dropped by the opt-in time compression
    missing_frames: int  # slots concealed because their frame had not come
    discarded_frames: int  # came after their slot (or twice) and were not played
    evicted_frames: int  # pushed out of a full buffer
    dropped_speech_frames: int  # speech never played: compression or a full buffer


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
        if (
            not 0 < p.percentile <= 1
            or p.window_frames < 1
            or p.capacity_frames < 2
            or p.silence_lookahead_frames < 0
        ):
            raise LocalError("impossible jitter buffer policy")
        self._seqs: list[int] = []  # buffered sequence numbers, sorted
        self._entries: dict[int, _Entry] = {}
        self._transits: collections.deque[float] = collections.deque()
        self._sorted: list[float] = []
        self._held_base: float | None = None  # least transit of a held frame
        self._target = p.min_target_ms
        self._last_target_update: float | None = None
        self._next_seq: int | None = None  # the slot to play next, once started
        self._started = False
        self._ended = False
        self._underrun = False
        self._current_delay = 0.0
        self._since_compress = 0
        self._last_played_speech = False
        self._last_taken: tuple[int, bool] | None = None  # seq, speech of the last frame out
        self._played = self._concealed = self._stretched = self._late = 0
        self._dropped = self._compressed = self._missing = self._discarded = 0
        self._evicted = self._dropped_speech = 0

    # -- input -------------------------------------------------------------

    def put(
        self,
        *,
        seq: int,
        send_ms: float,
        arrival_ms: float,
        payload: bytes,
        speech: bool,
        held: bool = False,
    ) -> None:
        """A frame arrived (any order; a frame whose slot has passed is discarded).
        ``held``: the sender kept it until the first path opened (see the module)."""
        if seq < 0:
            raise LocalError("sequence numbers are not negative")
        if (self._next_seq is not None and seq < self._next_seq) or seq in self._entries:
            self._discarded += 1
            return
        if self._underrun:
            self._late += 1
            self._underrun = False
        if held:
            transit = arrival_ms - send_ms
            if self._held_base is None or transit < self._held_base:
                self._held_base = transit
        else:
            self._observe(transit=arrival_ms - send_ms, now=arrival_ms)
        bisect.insort(self._seqs, seq)
        self._entries[seq] = _Entry(
            seq=seq, send_ms=send_ms, arrival_ms=arrival_ms, payload=payload, speech=speech
        )
        if len(self._seqs) > self.policy.capacity_frames:
            self._evict()

    def end_of_stream(self) -> None:
        """No more frames will come; play out what is buffered, then finish."""
        self._ended = True

    def _observe(self, *, transit: float, now: float) -> None:
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

    def _evict(self) -> None:
        # Silence first (inside a silence run if there is one), speech only if
        # the buffer holds nothing else.
        n = len(self._seqs)
        inside = (i for i in range(n) if self._inside_silence(i))
        silent = (i for i in range(n) if not self._entries[self._seqs[i]].speech)
        index = next(inside, None)
        if index is None:
            index = next(silent, 0)
        if self._remove_at(index).speech:
            self._dropped_speech += 1
        self._evicted += 1
        self._dropped += 1

    def _inside_silence(self, index: int) -> bool:
        """The buffered frame at ``index`` is silent, and so are its neighbours."""
        entry = self._entries[self._seqs[index]]
        if entry.speech:
            return False
        if index == 0:
            # The frame before it left the buffer (played or skipped); one never
            # seen may have been speech, so only a known silent one counts.
            taken = self._last_taken
            before_silent = taken is not None and taken == (entry.seq - 1, False)
        else:
            prev = self._entries[self._seqs[index - 1]]
            before_silent = prev.seq == entry.seq - 1 and not prev.speech
        return before_silent and self._silent_after(entry.seq)

    def _silent_after(self, seq: int) -> bool:
        for ahead in range(seq + 1, seq + 1 + self.policy.silence_lookahead_frames):
            nxt = self._entries.get(ahead)
            if nxt is None or nxt.speech:
                return False
        return True

    def _remove_at(self, index: int) -> _Entry:
        seq = self._seqs.pop(index)
        return self._entries.pop(seq)

    # -- output ------------------------------------------------------------

    def pop(self, now_ms: float) -> PlayoutEvent:
        """What to play for the tick starting at ``now_ms``."""
        p = self.policy
        if not self._seqs:
            if self._ended:
                return Idle(finished=True)
            if not self._started:
                return Idle()
            self._underrun = True
            self._concealed += 1
            self._last_played_speech = False
            return Conceal(reason="underrun")
        base = self._base()
        if not self._started:
            head = self._entries[self._seqs[0]]
            if now_ms - head.send_ms - base < self._target and not self._ended:
                return Idle()
            self._started = True
            self._next_seq = head.seq
        assert self._next_seq is not None
        first = self._seqs[0]
        if first > self._next_seq:
            # A gap: this slot's frame has not come. Its slot is now.
            self._next_seq += 1
            self._missing += 1
            self._concealed += 1
            self._last_played_speech = False
            return Conceal(reason="missing")
        head = self._entries[first]
        delay = now_ms - head.send_ms - base
        if len(self._seqs) >= 2 and delay > self._target + p.frame_ms:
            if p.catch_up_in_silence:
                # Skip silence, as much as it takes, but never a frame next to speech.
                while delay > self._target + p.frame_ms and self._skippable():
                    self._last_taken = (first, False)
                    self._remove_at(0)
                    self._dropped += 1
                    self._next_seq = first + 1
                    first = self._seqs[0]
                    if first > self._next_seq:
                        break
                    head = self._entries[first]
                    delay = now_ms - head.send_ms - base
                if first > self._next_seq:
                    return self.pop(now_ms)  # the skip reached a gap: conceal its slot
            if (
                p.compress_every
                and head.speech
                and delay > self._target + p.compress_above_ms
                and self._since_compress >= p.compress_every
                and len(self._seqs) >= 2
                and self._seqs[1] == first + 1
            ):
                self._last_taken = (first, True)
                self._remove_at(0)
                self._compressed += 1
                self._dropped_speech += 1
                self._since_compress = 0
                first = self._seqs[0]
                self._next_seq = first
                head = self._entries[first]
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
        self._remove_at(0)
        self._next_seq = head.seq + 1
        self._played += 1
        self._since_compress += 1
        self._current_delay = delay
        self._last_played_speech = head.speech
        self._last_taken = (head.seq, head.speech)
        return Play(seq=head.seq, payload=head.payload, speech=head.speech, send_ms=head.send_ms)

    def _base(self) -> float:
        """The least transit seen: the network's, or, while only held frames came,
        theirs (at least the network's: they waited before they left)."""
        if self._sorted:
            return self._sorted[0]
        return self._held_base if self._held_base is not None else 0.0

    def _skippable(self) -> bool:
        return len(self._seqs) >= 2 and self._inside_silence(0)

    def statistics(self) -> JitterStatistics:
        return JitterStatistics(
            target_delay_ms=self._target,
            current_delay_ms=self._current_delay,
            base_transit_ms=self._base(),
            buffered_frames=len(self._seqs),
            played_frames=self._played,
            concealed_frames=self._concealed,
            stretched_frames=self._stretched,
            late_frames=self._late,
            dropped_frames=self._dropped,
            compressed_frames=self._compressed,
            missing_frames=self._missing,
            discarded_frames=self._discarded,
            evicted_frames=self._evicted,
            dropped_speech_frames=self._dropped_speech,
        )
