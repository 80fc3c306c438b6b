"""How long the outbox waits before trying a message again."""

from __future__ import annotations

from typing import Final

__all__ = ["RETRY_BASE", "RETRY_CAP", "retry_delay"]

RETRY_BASE: Final = 5.0
RETRY_CAP: Final = 900.0


def retry_delay(attempts: int) -> float:
    """Seconds to wait after ``attempts`` tries: 5, 10, 20, ... doubling, at most 15 minutes."""
    if attempts <= 0:
        return 0.0
    return min(RETRY_CAP, RETRY_BASE * 2.0 ** min(attempts - 1, 32))
