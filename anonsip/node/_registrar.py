"""Publishing where our pseudonym can be reached (SIP REGISTER semantics, in the DHT).

Each time period the identity's registration (its onion contact, expiry
and a sequence number) is sealed with the period's record key, signed with
the period's blinded key (rend-spec-v3 A.2) and stored under that blinded
key. The ``Registrar`` re-registers before the record expires and whenever
our contact changes, publishes the next period's record shortly before the
boundary (so lookups that already moved on find it), and on a clean
shutdown replaces the record with an empty one (unregister).

Sequence numbers are milliseconds of wall-clock time: they only go up
across restarts without storing anything.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass

import trio

from anonsip.dht import DhtNode, sign_record
from anonsip.identity import TOR_TIME_PERIODS, BlindedKey, Identity, RandomSource, TimePeriods
from anonsip.registration import Contact, Presence, Registration, seal

log = logging.getLogger(__name__)


@dataclass(frozen=True, kw_only=True)
class RegistrationState:
    state: str  # "unregistered" | "registering" | "registered" | "failed"
    period: int = 0
    seq: int = 0
    expires: float = 0.0
    stored_at: int = 0


class Registrar:
    """Keeps the identity's registration in the DHT fresh."""

    def __init__(
        self,
        identity: Identity,
        dht: DhtNode,
        *,
        rng: RandomSource,
        clock: Callable[[], float],
        periods: TimePeriods = TOR_TIME_PERIODS,
        ttl: float = 3 * 3600.0,
        refresh_before: float = 600.0,
        next_period_lead: float = 1800.0,
        retry_after: float = 5.0,
        max_retry_after: float = 30.0,
        on_change: Callable[[RegistrationState], None] | None = None,
    ) -> None:
        self._identity = identity
        self._dht = dht
        self._rng = rng
        self._clock = clock
        self._periods = periods
        self._ttl = ttl
        self._refresh_before = refresh_before
        self._next_period_lead = next_period_lead
        self._retry_after = retry_after
        self._max_retry_after = max_retry_after
        self._failures = 0
        self._on_change = on_change
        self._contacts: tuple[Contact, ...] = ()
        self._changed = trio.Event()
        self._last_seq = 0
        self.state = RegistrationState(state="unregistered")

    def set_contacts(self, contacts: tuple[Contact, ...]) -> None:
        """Our reachable onion contacts changed: re-register now."""
        if contacts != self._contacts:
            self._contacts = contacts
            self._changed.set()

    def _set_state(self, state: RegistrationState) -> None:
        self.state = state
        if self._on_change is not None:
            self._on_change(state)

    def _next_seq(self) -> int:
        self._last_seq = max(self._last_seq + 1, int(self._clock() * 1000))
        return self._last_seq

    async def publish(self, period: int, contacts: tuple[Contact, ...]) -> RegistrationState:
        """Seal, sign and store one record for ``period``; returns what was stored."""
        now = self._clock()
        end = self._periods.end_of(period + 1)
        expires = int(min(now + self._ttl, end))
        presence = Presence.AVAILABLE if contacts else Presence.OFFLINE
        seq = self._next_seq()
        registration = Registration(
            contacts=contacts, presence=presence, expires=expires, sequence=seq
        )
        value = seal(self._identity, period, registration, rng=self._rng, periods=self._periods)
        blinded = BlindedKey.for_identity(self._identity, period, self._periods)
        record = sign_record(
            blinded.sign, public_key=blinded.public_key, seq=seq, expiry=expires, payload=value
        )
        stored = await self._dht.put(record)
        return RegistrationState(
            state="registered" if stored else "failed",
            period=period,
            seq=seq,
            expires=float(expires),
            stored_at=stored,
        )

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Register, then keep registering until cancelled."""
        task_status.started()
        while True:
            self._changed = trio.Event()
            if not self._contacts:
                await self._changed.wait()
                continue
            now = self._clock()
            period = self._periods.number_at(now)
            self._set_state(RegistrationState(state="registering", period=period))
            state = await self.publish(period, self._contacts)
            self._set_state(state)
            if state.state != "registered":
                # Alone in the DHT (the first node of a network) or cut off:
                # try again soon, then less often.
                delay = min(self._max_retry_after, self._retry_after * 2**self._failures)
                self._failures += 1
                log.warning("registration was stored nowhere; retrying in %.0f s", delay)
                wake = now + delay
            else:
                self._failures = 0
                boundary = self._periods.end_of(period)
                if boundary - now <= self._next_period_lead:
                    next_state = await self.publish(period + 1, self._contacts)
                    log.info(
                        "published next period's registration on %d nodes", next_state.stored_at
                    )
                    wake = min(state.expires - self._refresh_before, boundary + 1)
                else:
                    wake = min(
                        state.expires - self._refresh_before, boundary - self._next_period_lead
                    )
            delay = max(1.0, wake - self._clock())
            with trio.move_on_after(delay if math.isfinite(delay) else 60.0):
                await self._changed.wait()

    async def unregister(self) -> None:
        """Replace the current record with one that lists no contact."""
        period = self._periods.number_at(self._clock())
        state = await self.publish(period, ())
        self._set_state(RegistrationState(state="unregistered", period=period, seq=state.seq))
