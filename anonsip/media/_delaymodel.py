"""A seeded model of one-way delay on a Tor circuit, for tests and benches.

Tor carries a call over one TCP-like stream: nothing is lost or reordered,
but delivery comes in bursts and stalls (cell scheduling, congestion on a
relay, a circuit's window filling). The model: a base one-way delay (about
250 ms), a slow random walk on top of it, a small exponential per-frame
jitter, and occasional stalls during which nothing arrives and after which
everything queued arrives at once. Arrival times never go backwards.

``replay_trace`` drives a ``JitterBuffer`` through a trace on a 20 ms
playout clock, the same way the media loop does, so tests and the bench
compare playout policies on identical input. A multipath call is modelled
by one independent trace per path: ``first_arrivals`` gives when the first
copy of each frame arrives when every frame goes on every path, or on one
path in turn.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

from anonsip.media._jitter import Conceal, JitterBuffer, Play, PlayoutEvent

__all__ = [
    "DelayModel",
    "PlayoutRecord",
    "TorLikeDelay",
    "first_arrivals",
    "replay_trace",
    "talkspurts",
]


@dataclass(frozen=True, kw_only=True)
class DelayModel:
    """Parameters of the Tor-like model; all times in milliseconds."""

    base_ms: float = 250.0
    walk_ms: float = 40.0  # the slow component wanders within [0, walk_ms]
    jitter_ms: float = 8.0  # mean of the per-frame exponential jitter
    stalls_per_s: float = 0.12
    stall_min_ms: float = 80.0
    stall_max_ms: float = 450.0
    burst_spacing_ms: float = 0.2  # frames released by a stall arrive this far apart


class TorLikeDelay:
    """Stateful arrival-time generator: ``arrival(send_ms)`` for sends in order."""

    def __init__(self, model: DelayModel | None = None, *, seed: int = 0) -> None:
        self.model = model or DelayModel()
        self._rng = random.Random(seed)  # noqa: S311 -- a seeded model, not a secret
        self._walk = self.model.walk_ms / 2
        self._last_send = -math.inf
        self._last_arrival = -math.inf
        self._stall_until = -math.inf

    def arrival(self, send_ms: float) -> float:
        m, rng = self.model, self._rng
        if send_ms < self._last_send:
            raise ValueError("sends must be in time order")
        dt = 20.0 if self._last_send == -math.inf else send_ms - self._last_send
        self._last_send = send_ms
        step = rng.gauss(0.0, m.walk_ms * 0.02 * math.sqrt(dt / 20.0))
        self._walk = min(max(self._walk + step, 0.0), m.walk_ms)
        natural = send_ms + m.base_ms + self._walk + rng.expovariate(1.0 / m.jitter_ms)
        if rng.random() < m.stalls_per_s * dt / 1000.0:
            start = max(natural, self._last_arrival)
            self._stall_until = start + rng.uniform(m.stall_min_ms, m.stall_max_ms)
        arrival = max(natural, self._last_arrival + m.burst_spacing_ms)
        if arrival < self._stall_until:
            arrival = max(self._stall_until, self._last_arrival + m.burst_spacing_ms)
        self._last_arrival = arrival
        return arrival

    def trace(self, n_frames: int, *, frame_ms: int = 20) -> list[float]:
        """Arrival times of ``n_frames`` frames sent every ``frame_ms`` from 0."""
        return [self.arrival(i * frame_ms) for i in range(n_frames)]


def first_arrivals(
    paths: list[TorLikeDelay], n_frames: int, *, alternate: bool = False, frame_ms: int = 20
) -> list[float]:
    """Arrival of the first copy of each frame sent on ``paths``.

    Every frame goes on every path, or (``alternate``) frame ``i`` only on
    path ``i mod len(paths)``. Each path is in order; the merged arrivals
    need not be.
    """
    if not paths:
        raise ValueError("a call needs at least one path")
    out = []
    for i in range(n_frames):
        send = i * frame_ms
        if alternate:
            out.append(paths[i % len(paths)].arrival(send))
        else:
            out.append(min(path.arrival(send) for path in paths))
    return out


def talkspurts(n_frames: int, *, seed: int = 0) -> list[bool]:
    """A speech/silence pattern of conversational talkspurts (1-3 s on, 0.4-2 s off)."""
    rng = random.Random(seed)  # noqa: S311 -- a seeded model, not a secret
    out: list[bool] = []
    talking = True
    while len(out) < n_frames:
        length = int(rng.uniform(50, 150) if talking else rng.uniform(20, 100))
        out += [talking] * length
        talking = not talking
    return out[:n_frames]


@dataclass(frozen=True, kw_only=True)
class PlayoutRecord:
    """One 20 ms playout tick: which frame played (None: concealed or idle)."""

    time_ms: float
    seq: int | None
    event: PlayoutEvent


def replay_trace(
    buffer: JitterBuffer,
    arrivals: list[float],
    *,
    speech: list[bool] | None = None,
    payloads: list[bytes] | None = None,
    frame_ms: int = 20,
) -> list[PlayoutRecord]:
    """Feed frames at their arrival times (in any order) and pop on a playout clock
    until drained."""
    n = len(arrivals)
    speech = speech if speech is not None else [True] * n
    order = sorted(range(n), key=lambda k: (arrivals[k], k))
    start = arrivals[order[0]]
    out: list[PlayoutRecord] = []
    i = 0
    tick = 0
    while True:
        now = start + tick * frame_ms
        while i < n and arrivals[order[i]] <= now:
            k = order[i]
            payload = payloads[k] if payloads is not None else b""
            buffer.put(
                seq=k,
                send_ms=k * frame_ms,
                arrival_ms=arrivals[k],
                payload=payload,
                speech=speech[k],
            )
            i += 1
        if i == n:
            buffer.end_of_stream()
        event = buffer.pop(now)
        if i == n and not isinstance(event, Play | Conceal):
            return out
        out.append(
            PlayoutRecord(
                time_ms=now, seq=event.seq if isinstance(event, Play) else None, event=event
            )
        )
        tick += 1
