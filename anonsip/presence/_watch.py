"""The subscriber side of presence: one ``Watch`` per accepted contact (RFC 6665 4.1, RFC 3856).

A watch keeps one presence subscription to one contact alive and says what
that contact's presence is, as far as we can tell. It is sans-IO: the
adapter feeds it the outcome of each SUBSCRIBE, each NOTIFY and each broken
link, with the time, and asks ``on_timer(now)`` what to send next.

States (``WatchState``) and the one transition table (``TRANSITIONS``)::

    WAITING ──due──▶ SUBSCRIBING ──2xx──▶ ACTIVE ──refresh_at──▶ REFRESHING
       ▲                 │                  │  ▲                   │
       └─refused/failed──┘                  │  └───────2xx─────────┘
       └────────── terminated / link broke / expired ◀─────────────┘

Presence follows the brief of RFC 3856 6.6 for what a watcher may infer:

* a NOTIFY body is the contact's presence, as sent;
* a contact whose subscription expires unrefreshed, who says goodbye
  (``terminated`` with an offline body or a non-retry reason) or whom a new
  SUBSCRIBE cannot reach is OFFLINE;
* a broken link or a failed refresh is not yet OFFLINE: a fresh SUBSCRIBE
  is tried at once, and only its failure marks the contact offline;
* a contact that refuses us (403: they have not accepted us, or blocked us)
  is UNKNOWN, and asked again on a long backoff or when they give a sign of
  life (they subscribe to us, they accept us).

Refresh is at ``refresh_fraction`` (80 %) of the granted Expires.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from anonsip.sip import Availability

REQUESTED_EXPIRES = 300
REFRESH_FRACTION = 0.8
# Subscription-State reasons after which RFC 6665 4.1.3 says to retry at once.
RETRY_NOW_REASONS = frozenset({"deactivated", "timeout"})
# Final answers that mean "not for you" rather than "not now".
REFUSALS = frozenset({403, 404, 489, 603})


class WatchState(enum.Enum):
    WAITING = "waiting"  # no subscription; subscribe at retry_at
    SUBSCRIBING = "subscribing"  # a new SUBSCRIBE is in flight
    ACTIVE = "active"  # subscribed; refresh at refresh_at
    REFRESHING = "refreshing"  # a refresh is in flight; still subscribed until expires_at


class WatchInput(enum.Enum):
    DUE = "a deadline passed"
    ACCEPTED = "2xx to SUBSCRIBE"
    REFUSED = "final non-2xx to SUBSCRIBE"
    FAILED = "no answer: unreachable, timed out"
    NOTIFY = "NOTIFY in the subscription"
    TERMINATED = "NOTIFY ending the subscription"
    LINK_BROKE = "the link carrying the subscription ended"
    EXPIRED = "the subscription ran out unrefreshed"
    KICK = "a sign of life: try now"


S, In = WatchState, WatchInput
TRANSITIONS: dict[tuple[WatchState, WatchInput], WatchState] = {
    (S.WAITING, In.DUE): S.SUBSCRIBING,
    (S.WAITING, In.KICK): S.WAITING,
    (S.SUBSCRIBING, In.ACCEPTED): S.ACTIVE,
    (S.SUBSCRIBING, In.REFUSED): S.WAITING,
    (S.SUBSCRIBING, In.FAILED): S.WAITING,
    (S.SUBSCRIBING, In.LINK_BROKE): S.WAITING,
    (S.SUBSCRIBING, In.NOTIFY): S.SUBSCRIBING,  # a NOTIFY may overtake its 200
    (S.SUBSCRIBING, In.TERMINATED): S.WAITING,
    (S.ACTIVE, In.DUE): S.REFRESHING,
    (S.ACTIVE, In.NOTIFY): S.ACTIVE,
    (S.ACTIVE, In.TERMINATED): S.WAITING,
    (S.ACTIVE, In.LINK_BROKE): S.WAITING,
    (S.ACTIVE, In.EXPIRED): S.WAITING,
    (S.REFRESHING, In.ACCEPTED): S.ACTIVE,
    (S.REFRESHING, In.REFUSED): S.WAITING,
    (S.REFRESHING, In.FAILED): S.WAITING,
    (S.REFRESHING, In.NOTIFY): S.REFRESHING,
    (S.REFRESHING, In.TERMINATED): S.WAITING,
    (S.REFRESHING, In.LINK_BROKE): S.WAITING,
    (S.REFRESHING, In.EXPIRED): S.WAITING,
}
del S, In


class Action(enum.Enum):
    SUBSCRIBE = "send a new SUBSCRIBE"
    REFRESH = "send a SUBSCRIBE in the subscription's dialog"


@dataclass(frozen=True, kw_only=True)
class WatchTimings:
    expires: int = REQUESTED_EXPIRES
    refresh_fraction: float = REFRESH_FRACTION
    failure_base: float = 5.0  # unreachable: 5, 10, 20 ... s
    failure_cap: float = 300.0
    refusal_base: float = 60.0  # refused: 60, 120, 240 ... s
    refusal_cap: float = 1800.0

    def failure_delay(self, failures: int) -> float:
        return min(self.failure_cap, self.failure_base * 2.0 ** min(failures - 1, 30))

    def refusal_delay(self, refusals: int) -> float:
        return min(self.refusal_cap, self.refusal_base * 2.0 ** min(refusals - 1, 30))


class Watch:
    """Our subscription to one contact's presence and what it told us."""

    def __init__(self, peer: str, *, now: float, timings: WatchTimings | None = None) -> None:
        self.peer = peer
        self.timings = timings or WatchTimings()
        self.state = WatchState.WAITING
        self.availability: Availability | None = None  # None: unknown
        self.note = ""
        self.call_id: str | None = None
        self.retry_at = now
        self.refresh_at = 0.0
        self.expires_at = 0.0
        self.failures = 0
        self.refusals = 0

    def __repr__(self) -> str:
        return f"<Watch {self.peer[:12]} {self.state.value} {self.visible()}>"

    def visible(self) -> tuple[str, str]:
        """(presence, note) as the control API shows it."""
        if self.availability is None:
            return ("unknown", "")
        if self.availability is Availability.OFFLINE:
            return ("offline", "")
        return (self.availability.value, self.note)

    # -- the one place state changes ---------------------------------------------

    def _fire(self, event: WatchInput) -> bool:
        new = TRANSITIONS.get((self.state, event))
        if new is None:
            return False
        self.state = new
        return True

    # -- time ----------------------------------------------------------------------

    def next_deadline(self) -> float | None:
        if self.state is WatchState.WAITING:
            return self.retry_at
        if self.state is WatchState.ACTIVE:
            return min(self.refresh_at, self.expires_at)
        if self.state is WatchState.REFRESHING:
            return self.expires_at
        return None  # SUBSCRIBING: the adapter bounds the attempt

    def on_timer(self, now: float) -> Action | None:
        """What to send now, if anything; expires the subscription if it ran out."""
        if self.state in (WatchState.ACTIVE, WatchState.REFRESHING) and now >= self.expires_at:
            self._fire(WatchInput.EXPIRED)
            self._went_offline()
            self.retry_at = now
        if self.state is WatchState.WAITING and now >= self.retry_at:
            self._fire(WatchInput.DUE)
            self.call_id = None
            return Action.SUBSCRIBE
        if self.state is WatchState.ACTIVE and now >= self.refresh_at:
            self._fire(WatchInput.DUE)
            return Action.REFRESH
        return None

    def sending(self, call_id: str) -> None:
        """The new SUBSCRIBE about to go out has this Call-ID (NOTIFYs will carry it)."""
        if self.state is WatchState.SUBSCRIBING:
            self.call_id = call_id

    # -- answers -------------------------------------------------------------------

    def on_accepted(self, expires: int, now: float) -> None:
        if expires <= 0:
            self.on_terminated(self.call_id or "", reason=None, retry_after=None, now=now)
            return
        if self._fire(WatchInput.ACCEPTED):
            self.expires_at = now + expires
            self.refresh_at = now + expires * self.timings.refresh_fraction
            self.failures = 0
            self.refusals = 0

    def on_refused(self, status_code: int, now: float, *, retry_after: int | None = None) -> None:
        was = self.state
        if not self._fire(WatchInput.REFUSED):
            return
        self.call_id = None
        if was is WatchState.REFRESHING:
            self.retry_at = now  # the subscription is gone; a fresh one decides
        elif status_code in REFUSALS:
            self.refusals += 1
            self.availability = None
            self.note = ""
            self.retry_at = now + self.timings.refusal_delay(self.refusals)
        else:
            self._failed(now, retry_after)

    def on_failed(self, now: float) -> None:
        was = self.state
        if not self._fire(WatchInput.FAILED):
            return
        self.call_id = None
        if was is WatchState.REFRESHING:
            self.retry_at = now
        else:
            self._failed(now, None)

    def on_link_broke(self, now: float) -> None:
        was = self.state
        if not self._fire(WatchInput.LINK_BROKE):
            return
        self.call_id = None
        if was is WatchState.SUBSCRIBING:
            self._failed(now, None)
        else:
            self.retry_at = now

    def on_notify(
        self,
        call_id: str,
        *,
        availability: Availability | None,
        note: str | None,
        expires: int | None,
        now: float,
    ) -> bool:
        """An active NOTIFY; False if it belongs to no subscription of ours (answer 481)."""
        if call_id != self.call_id or not self._fire(WatchInput.NOTIFY):
            return False
        if availability is not None:
            self.availability = availability
            self.note = note or ""
        # The notifier may shorten the subscription (RFC 6665 4.2.2).
        if (
            expires is not None
            and self.state is not WatchState.SUBSCRIBING
            and now + expires < self.expires_at
        ):
            self.expires_at = now + expires
            self.refresh_at = min(self.refresh_at, now + expires * self.timings.refresh_fraction)
        return True

    def on_terminated(
        self,
        call_id: str,
        *,
        reason: str | None,
        retry_after: int | None,
        now: float,
        availability: Availability | None = None,
    ) -> bool:
        """A NOTIFY with ``Subscription-State: terminated`` (RFC 6665 4.1.3)."""
        if call_id != self.call_id or not self._fire(WatchInput.TERMINATED):
            return False
        self.call_id = None
        if reason in RETRY_NOW_REASONS and availability is not Availability.OFFLINE:
            self.retry_at = now
        elif reason == "rejected":
            self.refusals += 1
            self.availability = None
            self.note = ""
            self.retry_at = now + self.timings.refusal_delay(self.refusals)
        else:
            self._failed(now, retry_after)
        return True

    def kick(self, now: float) -> None:
        """A sign of life from the contact: if we are waiting, try now."""
        if self._fire(WatchInput.KICK):
            self.retry_at = min(self.retry_at, now)

    # -- helpers ----------------------------------------------------------------------

    def _went_offline(self) -> None:
        self.availability = Availability.OFFLINE
        self.note = ""

    def _failed(self, now: float, retry_after: int | None) -> None:
        self._went_offline()
        self.failures += 1
        delay = self.timings.failure_delay(self.failures)
        if retry_after is not None:
            delay = max(delay, float(retry_after))
        self.retry_at = now + delay
