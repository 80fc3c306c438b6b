"""Frames of one call that arrive on several media paths: the first copy of each plays.

A multipath call (DONAR, NSDI 2022, did this over Tor) runs one onion
stream per path, each on its own circuit, and sends every sealed frame on
each path, or alternately on one of them. Each path's frames are opened by
that path's own ``MediaReceiver`` (its own key and in-order counter), so a
forged or replayed frame, or one copied from another path, fails there.
What is left for the merger is the one question the paths cannot answer
alone: has this packet already come on another path? The first copy goes
to the jitter buffer; later copies are dropped silently and counted.

Memory is a fixed ring of the last ``window`` sequence numbers: a packet
older than the window is treated as a copy, since its playout slot passed
long ago. The merger is sans-IO and keeps per-path counts for the bench
and the call's statistics.
"""

from __future__ import annotations

from dataclasses import dataclass

from anonsip._errors import LocalError

__all__ = ["PathCounts", "PathMerger"]

_WINDOW = 1024  # 20 s of 20 ms packets


@dataclass(frozen=True, kw_only=True)
class PathCounts:
    """What one path delivered: every packet, and how many came first."""

    path: int
    received: int
    first: int

    @property
    def duplicates(self) -> int:
        return self.received - self.first


class PathMerger:
    """Decides, packet by packet, whether a copy is the first to arrive."""

    def __init__(self, *, window: int = _WINDOW) -> None:
        if window < 2:
            raise LocalError("the merge window must hold at least two packets")
        self._window = window
        self._ring = [-1] * window
        self._highest = -1
        self._received: dict[int, int] = {}
        self._first: dict[int, int] = {}

    def accept(self, path: int, seq: int) -> bool:
        """True if packet ``seq`` (already authenticated on ``path``) is the first copy."""
        if seq < 0:
            raise LocalError("sequence numbers are not negative")
        self._received[path] = self._received.get(path, 0) + 1
        if seq <= self._highest - self._window:
            return False  # older than the window: its slot is long gone
        slot = seq % self._window
        if self._ring[slot] == seq:
            return False
        self._ring[slot] = seq
        self._highest = max(self._highest, seq)
        self._first[path] = self._first.get(path, 0) + 1
        return True

    def counts(self) -> list[PathCounts]:
        return [
            PathCounts(path=p, received=n, first=self._first.get(p, 0))
            for p, n in sorted(self._received.items())
        ]

    @property
    def duplicates(self) -> int:
        return sum(c.duplicates for c in self.counts())
