"""How much work a node asks of strangers: little at rest, more while it is flooded.

Modelled on Tor's onion-service proof of work (proposal 327): the node
advertises an effort (leading zero bits) with its registration, and raises
it when more requests arrive than its gate lets through, so a flood costs
the flooder more with every round while a newcomer at a quiet time pays
almost nothing (16 bits: a few hundredths of a second, less than the dial
it overlaps with).

Time is cut into windows. At the end of one, if requests that carried
enough work were still turned away by the rate limits, the effort goes up
by ``log2(arrived / admitted)`` bits (at least 1, at most ``MAX_STEP``):
the work that would have brought that demand down to what the gate takes.
A window with nobody turned away lowers it by one bit, never below the
resting effort (under a steady flood it settles within a bit of what the
flood can pay).
A proof is accepted at the lower of this window's and the last window's
effort, so a sender who read the registration just before a raise is not
turned away for it.

Pure: it reads only the times it is given.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from anonsip.admission._pow import RESTING_EFFORT

__all__ = ["EffortController", "EffortLimits"]

MAX_STEP = 4


@dataclass(frozen=True, kw_only=True)
class EffortLimits:
    rest: int = RESTING_EFFORT
    ceiling: int = 28  # about 90 s of one core at ~3 M hashes/s: the most we ask
    window: float = 120.0  # seconds between changes (and registration updates)


class EffortController:
    def __init__(self, limits: EffortLimits, now: float) -> None:
        if not 0 <= limits.rest <= limits.ceiling:
            raise ValueError("the resting effort must be between 0 and the ceiling")
        if limits.window <= 0:
            raise ValueError("an effort window must be positive")
        self.limits = limits
        self._effort = limits.rest
        self._previous = limits.rest
        self._window_start = now
        self._admitted = 0
        self._turned_away = 0

    def effort(self, now: float) -> int:
        """The effort to advertise now."""
        self._roll(now)
        return self._effort

    def required(self, now: float) -> int:
        """The least effort a proof may carry now (the last window's still counts)."""
        self._roll(now)
        return min(self._effort, self._previous)

    def admitted(self, now: float) -> None:
        """A request with enough work went through the gate."""
        self._roll(now)
        self._admitted += 1

    def turned_away(self, now: float) -> None:
        """A request with enough work was refused by the rate limits: demand outran us."""
        self._roll(now)
        self._turned_away += 1

    def _roll(self, now: float) -> None:
        elapsed = now - self._window_start
        if elapsed < self.limits.window:
            return
        windows = int(elapsed // self.limits.window)
        self._window_start += windows * self.limits.window
        # The window that ended, then any that passed with nothing seen: calm ones.
        for _ in range(min(windows, self.limits.ceiling - self.limits.rest + 2)):
            self._previous = self._effort
            self._effort = self._next(self._effort)
            self._admitted = 0
            self._turned_away = 0

    def _next(self, effort: int) -> int:
        if not self._turned_away:
            return max(self.limits.rest, effort - 1)
        arrived = self._admitted + self._turned_away
        step = math.ceil(math.log2(arrived / max(1, self._admitted)))
        return min(self.limits.ceiling, effort + min(MAX_STEP, max(1, step)))
