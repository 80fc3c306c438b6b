"""Finding where a pseudonym can be reached: fetch, verify and decrypt its registration.

Only someone who knows the address (the Ed25519 public key) can compute
the period's blinded key, hence the DHT key, and the record key that
decrypts the registration. Lookups go through the anonymous ``DhtClient``
(no node identity, a fresh Tor isolation per lookup), so the nodes that
answer cannot tell who asks. Near a period boundary the clocks of two
nodes may disagree, so the neighbouring period is tried as well.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Protocol

from anonsip._errors import AnonsipError
from anonsip.dht import DhtRecord, RecordKind, record_key
from anonsip.identity import TOR_TIME_PERIODS, TimePeriods, blind_public_key
from anonsip.registration import RecordError, Registration, open_record

log = logging.getLogger(__name__)


class RecordFetcher(Protocol):
    """Where records come from: ``anonsip.dht.DhtClient`` (anonymous) in the node."""

    async def get(self, key: bytes) -> DhtRecord | None: ...


class NotRegistered(AnonsipError):
    """No valid registration for this pseudonym was found in the DHT."""


class Resolver:
    """Looks pseudonyms up in the DHT."""

    def __init__(
        self,
        dht: RecordFetcher,
        *,
        clock: Callable[[], float],
        periods: TimePeriods = TOR_TIME_PERIODS,
    ) -> None:
        self._dht = dht
        self._clock = clock
        self._periods = periods
        self._last_seq: dict[tuple[bytes, int], int] = {}

    async def lookup(self, public_key: bytes) -> tuple[int, Registration]:
        """The newest valid registration of ``public_key`` and its period."""
        now = self._clock()
        current = self._periods.number_at(now)
        start = self._periods.start_of(current)
        neighbour = current - 1 if now - start < self._periods.length_minutes * 30 else current + 1
        problems: list[str] = []
        for period in (current, neighbour):
            blinded = blind_public_key(public_key, period, self._periods)
            record = await self._dht.get(record_key(blinded))
            if record is None:
                problems.append(f"period {period}: not found")
                continue
            if record.kind != RecordKind.REGISTRATION:
                problems.append(f"period {period}: not a registration")
                continue
            try:
                registration = open_record(
                    public_key,
                    period,
                    record.payload,
                    now,
                    last_sequence=self._last_seq.get((public_key, period)),
                    periods=self._periods,
                )
            except RecordError as exc:
                problems.append(f"period {period}: {exc}")
                continue
            if len(self._last_seq) > 4096:
                self._last_seq.clear()
            self._last_seq[(public_key, period)] = registration.sequence
            return period, registration
        raise NotRegistered(
            "this pseudonym is not reachable right now (" + "; ".join(problems) + ")"
        )
