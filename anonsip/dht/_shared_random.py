"""``TorSharedRandom``: the shared random values of our tor's consensus, for the sans-IO cores.

Tor's directory authorities publish a new shared random value once per
protocol run (24 voting rounds: daily on the public network, every 240 s on
a private network voting every 10 s, as measured with ``anonsip testnet
up``); tor exposes it with GETINFO ``sr/current`` and ``sr/previous``. This
adapter reads both when it starts and again whenever tor announces a new
consensus (``NEWCONSENSUS``: nothing polls), and hands the cores a plain
callable (``__call__``) returning ``SharedRandom``, with Tor's disaster
values standing in for missing ones (``_placement.shared_random_at``).
``wait_changed`` lets the registrar republish when the values move.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

import trio

from anonsip.dht._placement import SharedRandom, parse_tor_shared_random, shared_random_at
from anonsip.identity import TOR_TIME_PERIODS, TimePeriods
from onion import OnionError, Tor

__all__ = ["TorSharedRandom"]

log = logging.getLogger(__name__)

_READ_TIMEOUT = 10.0


class TorSharedRandom:
    """A ``SharedRandomSource`` kept current from tor; run ``run`` in a nursery."""

    def __init__(
        self,
        tor: Tor,
        *,
        clock: Callable[[], float] = time.time,
        periods: TimePeriods = TOR_TIME_PERIODS,
    ) -> None:
        self._tor = tor
        self._clock = clock
        self._periods = periods
        self._current: bytes | None = None
        self._previous: bytes | None = None
        self._changed = trio.Event()
        self.updates = 0

    def __call__(self) -> SharedRandom:
        return shared_random_at(self._clock(), self._current, self._previous, self._periods)

    @property
    def from_consensus(self) -> bool:
        """Whether tor gave a current value (False: the disaster value stands in)."""
        return self._current is not None

    async def wait_changed(self) -> None:
        """Return once the values change (a new consensus brought a new value)."""
        await self._changed.wait()

    async def refresh(self) -> None:
        """Read the values from tor now."""
        current = previous = ""
        with trio.move_on_after(_READ_TIMEOUT) as scope:
            try:
                current, previous = await self._tor.shared_random_values()
            except OnionError as exc:
                log.warning("could not read the shared random values from tor: %s", exc)
                return
        if scope.cancelled_caught:
            log.warning("tor did not say its shared random values in time")
            return
        values = parse_tor_shared_random(current), parse_tor_shared_random(previous)
        if values != (self._current, self._previous):
            self._current, self._previous = values
            self.updates += 1
            self._changed.set()
            self._changed = trio.Event()

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Follow tor's consensus until cancelled; started once the first values are read."""
        async with self._tor.control.events("NEWCONSENSUS") as events:
            await self.refresh()
            task_status.started()
            async for _ in events:
                await self.refresh()
