"""A token bucket: ``capacity`` tokens, refilled at ``rate`` per second of the clock given."""

from __future__ import annotations

from anonsip._errors import LocalError

__all__ = ["TokenBucket"]


class TokenBucket:
    def __init__(self, *, capacity: float, rate: float, now: float) -> None:
        if capacity < 1 or rate <= 0:
            raise LocalError("a token bucket needs capacity >= 1 and a positive rate")
        self.capacity = capacity
        self.rate = rate
        self._tokens = capacity
        self._stamp = now

    def _refill(self, now: float) -> None:
        if now > self._stamp:  # a clock stepping backwards refills nothing
            self._tokens = min(self.capacity, self._tokens + (now - self._stamp) * self.rate)
            self._stamp = now

    def available(self, now: float) -> float:
        self._refill(now)
        return self._tokens

    def try_take(self, now: float) -> bool:
        self._refill(now)
        if self._tokens >= 1:
            self._tokens -= 1
            return True
        return False

    def is_full(self, now: float) -> bool:
        return self.available(now) >= self.capacity
