"""Publishing where our pseudonym can be reached (SIP REGISTER semantics, in the DHT).

Each time period the identity's registration (its onion contact, expiry
and a sequence number) is sealed with the period's record key, signed with
the period's blinded key (rend-spec-v3 A.2) and stored under that blinded
key through the anonymous ``DhtClient``: no node identity, a fresh Tor
isolation for every store, so storing nodes cannot tell who stores it.

Nothing links the current period's record to the next one's, so each
period is scheduled on its own (``_Schedule``):

* the current period is registered at once (we must be reachable), the
  next one at a random time in the last ``next_period_lead`` before the
  boundary (so lookups that already moved on find it), never together;
* each record expires after a random share (75-100 %) of ``ttl`` and is
  republished a random time (``refresh_before`` to twice that) before it
  expires; a new shared random value (storage positions moved) republishes
  each record at its own random time within ``reposition_within``;
* sequence numbers (``sequence_number``) start at a random-looking offset
  per (identity, period) that only the identity's key can compute, plus
  milliseconds since the period before it began: they go up across
  restarts without storing anything, and neither reveal the clock nor
  match between periods.

Each record also says how much proof of work a stranger's contact request
needs now (the ``effort`` callable: the messaging gate's, proposal 327's
advertised effort). When it rises under a flood, the live records are
published again at once, so strangers read it before their first try, but
no record sooner than ``effort_window`` after its last publication (one
change per window is all the gate makes; a flood cannot make us hammer
the DHT). A fall waits for the next regular publication.

A record stored while our own DHT node knew no other node (a join that
failed, a network cut off) is held by that node alone, where only nodes
that join through us look: when the node joins again (``rejoined``) every
record is stored again at once, where everyone's lookups go.

On a clean shutdown ``unregister`` replaces every record that may still be
live (this period's, the next one's, the last one's) with an empty one.
"""

from __future__ import annotations

import hashlib
import logging
import math
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol

import trio

from anonsip.admission import GateLimits
from anonsip.dht import DhtRecord, registration_record
from anonsip.identity import TOR_TIME_PERIODS, Identity, RandomSource, TimePeriods
from anonsip.registration import MAX_EFFORT, Contact, Presence, Registration

log = logging.getLogger(__name__)

_SEQ_PERSON = b"asip-seq-offset"


class RecordPublisher(Protocol):
    """Where records go: ``anonsip.dht.DhtClient`` (anonymous) in the node."""

    async def put(self, record: DhtRecord) -> int: ...


@dataclass(frozen=True, kw_only=True)
class RegistrationState:
    state: str  # "unregistered" | "registering" | "registered" | "failed"
    period: int = 0
    seq: int = 0
    expires: float = 0.0
    stored_at: int = 0
    effort: int = 0  # the contact-request effort the record advertises


def sequence_number(identity: Identity, period: int, now: float, periods: TimePeriods) -> int:
    """A per-period offset only ``identity`` can compute, plus ms since ``period - 1`` began.

    The offset (62 bits of keyed BLAKE2b) hides the clock and differs from
    period to period; the milliseconds make it grow with time, restarts
    included.
    """
    digest = hashlib.blake2b(
        period.to_bytes(8, "big") + periods.length_minutes.to_bytes(8, "big"),
        key=identity.seed,
        person=_SEQ_PERSON,
        digest_size=8,
    ).digest()
    offset = int.from_bytes(digest, "big") >> 2
    since = max(0, int((now - periods.start_of(period - 1)) * 1000))
    return offset + since


class Registrar:
    """Keeps the identity's registrations in the DHT fresh, each period on its own schedule."""

    def __init__(
        self,
        identity: Identity,
        dht: RecordPublisher,
        *,
        rng: RandomSource,
        clock: Callable[[], float],
        periods: TimePeriods = TOR_TIME_PERIODS,
        ttl: float = 3 * 3600.0,
        refresh_before: float = 600.0,
        next_period_lead: float = 1800.0,
        reposition_within: float = 60.0,
        retry_after: float = 5.0,
        max_retry_after: float = 30.0,
        on_change: Callable[[RegistrationState], None] | None = None,
        shared_random_changed: Callable[[], Awaitable[None]] | None = None,
        effort: Callable[[], int] = lambda: 0,
        effort_window: float = GateLimits().effort_window,
    ) -> None:
        self._identity = identity
        self._dht = dht
        self._rng = rng
        self._clock = clock
        self._periods = periods
        self._ttl = ttl
        self._refresh_before = refresh_before
        self._next_period_lead = next_period_lead
        self._reposition_within = reposition_within
        self._retry_after = retry_after
        self._max_retry_after = max_retry_after
        self._failures: dict[int, int] = {}
        self._on_change = on_change
        self._shared_random_changed = shared_random_changed
        self._effort = effort
        self._effort_window = effort_window
        self._published_at: dict[int, float] = {}  # period -> when its record was last stored
        self._contacts: tuple[Contact, ...] = ()
        self._changed = trio.Event()
        self._due: dict[int, float] = {}  # period -> when its record is (re)published next
        self._live: dict[int, RegistrationState] = {}  # period -> last record stored
        self._last_seq: dict[int, int] = {}
        self.state = RegistrationState(state="unregistered")

    def set_contacts(self, contacts: tuple[Contact, ...]) -> None:
        """Our reachable onion contacts changed: re-register now."""
        if contacts != self._contacts:
            self._contacts = contacts
            self._publish_again_soon()

    def rejoined(self) -> None:
        """Our DHT node joined the network again (its table had emptied, or never
        filled): what we stored while it was alone sits where only nodes that join
        through us look, so store every record again now."""
        self._publish_again_soon()

    def _publish_again_soon(self) -> None:
        """The current period's record at once, the other live ones at random times of
        their own (never together: nothing may tie them to each other). The next
        period's first record keeps its time before the boundary: published now, it
        could not live into its period."""
        now = self._clock()
        current = self._periods.number_at(now)
        for period in self._due:
            if period != current and period not in self._live:
                continue
            spread = 0.0 if period == current else self._reposition_within
            self._due[period] = min(self._due[period], now + self._uniform(0.0, spread))
        self._changed.set()

    def effort_changed(self) -> None:
        """The effort we ask of strangers changed: if it rose above what a live record
        says, publish that record again, no sooner than a window after its last time
        (the current period's first, the others at random times of their own)."""
        effort = self._advertised_effort()
        now = self._clock()
        current = self._periods.number_at(now)
        raised = False
        for period, state in self._live.items():
            if period not in self._due or state.effort >= effort:
                continue
            soonest = max(now, self._published_at.get(period, -math.inf) + self._effort_window)
            spread = 0.0 if period == current else self._reposition_within
            self._due[period] = min(self._due[period], soonest + self._uniform(0.0, spread))
            raised = True
        if raised:
            self._changed.set()

    def _advertised_effort(self) -> int:
        return max(0, min(MAX_EFFORT, self._effort()))

    def _set_state(self, state: RegistrationState) -> None:
        self.state = state
        if self._on_change is not None:
            self._on_change(state)

    def _uniform(self, low: float, high: float) -> float:
        fraction = int.from_bytes(self._rng(8), "big") / 2**64
        return low + (high - low) * fraction

    def _next_seq(self, period: int, now: float) -> int:
        seq = max(
            self._last_seq.get(period, -1) + 1,
            sequence_number(self._identity, period, now, self._periods),
        )
        self._last_seq[period] = seq
        return seq

    async def publish(self, period: int, contacts: tuple[Contact, ...]) -> RegistrationState:
        """Seal, sign and store one record for ``period``; returns what was stored."""
        now = self._clock()
        end = self._periods.end_of(period + 1)
        expires = int(min(now + self._ttl * self._uniform(0.75, 1.0), end))
        presence = Presence.AVAILABLE if contacts else Presence.OFFLINE
        effort = self._advertised_effort() if contacts else 0  # nobody dials an empty one
        seq = self._next_seq(period, now)
        registration = Registration(
            contacts=contacts, presence=presence, expires=expires, sequence=seq, effort=effort
        )
        record = registration_record(
            self._identity, period, registration, rng=self._rng, periods=self._periods
        )
        stored = await self._dht.put(record)
        return RegistrationState(
            state="registered" if stored else "failed",
            period=period,
            seq=seq,
            expires=float(expires),
            stored_at=stored,
            effort=effort,
        )

    def _plan(self, now: float) -> None:
        """Schedule the current period (now) and the next one (a random time before it starts)."""
        current = self._periods.number_at(now)
        for period in [p for p in self._due if p < current]:
            del self._due[period]
        self._due.setdefault(current, now)
        boundary = self._periods.end_of(current)
        if current + 1 not in self._due:
            earliest = max(now, boundary - self._next_period_lead)
            latest = max(earliest, boundary - self._next_period_lead / 4)
            self._due[current + 1] = self._uniform(earliest, latest)

    async def _publish_due(self, period: int, now: float) -> None:
        current = self._periods.number_at(now)
        if period == current:
            self._set_state(RegistrationState(state="registering", period=period))
        state = await self.publish(period, self._contacts)
        if period == current:
            self._set_state(state)
        if state.state == "registered":
            self._failures.pop(period, None)
            self._live[period] = state
            stored_at = self._published_at[period] = self._clock()
            refresh = self._uniform(self._refresh_before, 2 * self._refresh_before)
            self._due[period] = max(now + 1.0, state.expires - refresh)
            if self._advertised_effort() > state.effort:  # it rose while we stored
                self._due[period] = min(self._due[period], stored_at + self._effort_window)
            if period != current:
                log.info("published the next period's registration on %d nodes", state.stored_at)
        else:
            # Alone in the DHT (the first node of a network) or cut off:
            # try again soon, then less often.
            failures = self._failures.get(period, 0)
            delay = min(self._max_retry_after, self._retry_after * 2**failures)
            self._failures[period] = failures + 1
            log.warning("a registration was stored nowhere; retrying in %.0f s", delay)
            self._due[period] = now + delay

    async def _follow_shared_random(self) -> None:
        assert self._shared_random_changed is not None
        while True:
            await self._shared_random_changed()
            now = self._clock()
            for period in self._live:
                if period in self._due:
                    moved = now + self._uniform(0.0, self._reposition_within)
                    self._due[period] = min(self._due[period], moved)
            self._changed.set()

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Register, then keep registering until cancelled."""
        async with trio.open_nursery() as nursery:
            if self._shared_random_changed is not None:
                nursery.start_soon(self._follow_shared_random)
            task_status.started()
            await self._loop()

    async def _loop(self) -> None:
        while True:
            self._changed = trio.Event()
            if not self._contacts:
                await self._changed.wait()
                continue
            now = self._clock()
            self._plan(now)
            for period, due in sorted(self._due.items()):
                if due <= now:
                    await self._publish_due(period, now)
            self._live = {p: s for p, s in self._live.items() if s.expires > self._clock()}
            self._published_at = {p: t for p, t in self._published_at.items() if p in self._live}
            wake = min(self._due.values())
            delay = max(1.0, wake - self._clock())
            with trio.move_on_after(delay if math.isfinite(delay) else 60.0):
                await self._changed.wait()

    async def unregister(self) -> None:
        """Replace every record that may still be live with one that lists no contact."""
        now = self._clock()
        current = self._periods.number_at(now)
        periods = sorted({current, *(p for p, s in self._live.items() if s.expires > now)})
        stored: dict[int, RegistrationState] = {}

        async def empty(period: int) -> None:
            stored[period] = await self.publish(period, ())

        async with trio.open_nursery() as nursery:
            for period in periods:
                nursery.start_soon(empty, period)
        self._live.clear()
        self._due.clear()
        self._set_state(
            RegistrationState(state="unregistered", period=current, seq=stored[current].seq)
        )
