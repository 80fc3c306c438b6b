"""The notifier side of presence (RFC 6665 4.2, RFC 3856 6): who may watch us, and until when.

``Notifier`` is sans-IO: it is handed the time and answers what to do.
It holds our ``Status`` and a bounded table of subscriptions, one row per
subscription dialog (keyed by the peer and the dialog's Call-ID):

* ``on_subscribe`` decides a SUBSCRIBE (new, refresh or unsubscribe): only
  accepted contacts get in (403 for everyone else, whatever the reason, so a
  stranger cannot tell "blocked" from "unknown"); ``Event`` must be
  ``presence`` (489); ``Expires`` is clamped to what we allow (423 below the
  minimum, RFC 6665 4.2.1.1); a refresh of a subscription we no longer hold
  is 481. A peer holds at most ``max_per_peer`` rows (a re-subscribe after
  a broken link evicts the oldest); a full table is 503.
* Every accepted SUBSCRIBE is followed by a NOTIFY of the current state
  (RFC 6665 4.2.1.2); ``set_status`` returns the rows to NOTIFY on a change.
* ``expire(now)`` drops rows whose subscription ran out without a refresh.

Each row carries an opaque ``handle`` (the adapter's link and dialog),
attached once the 200 that created the dialog has been sent.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Generic, TypeVar

from anonsip.presence._status import Status

H = TypeVar("H")

DEFAULT_EXPIRES = 3600  # RFC 3856 6.4
MIN_EXPIRES = 60
MAX_EXPIRES = 3600
MAX_SUBSCRIBERS = 256
MAX_PER_PEER = 2


@dataclass(frozen=True, kw_only=True)
class SubscriptionKey:
    peer: str
    call_id: str


@dataclass(kw_only=True)
class Subscriber(Generic[H]):
    key: SubscriptionKey
    expires_at: float
    handle: H | None = None

    def remaining(self, now: float) -> int:
        return max(0, int(self.expires_at - now))


@dataclass(frozen=True, kw_only=True)
class Accepted(Generic[H]):
    """Answer 200 with ``Expires: expires``, then NOTIFY (terminated when ``expires`` is 0)."""

    key: SubscriptionKey
    expires: int
    evicted: tuple[Subscriber[H], ...] = ()


@dataclass(frozen=True, kw_only=True)
class Refused:
    """Answer ``status_code`` with ``headers``; no subscription exists."""

    status_code: int
    headers: tuple[tuple[str, str], ...] = ()


@dataclass(kw_only=True)
class Notifier(Generic[H]):
    """Our presence and the contacts subscribed to it."""

    status: Status = field(default_factory=Status)
    default_expires: int = DEFAULT_EXPIRES
    min_expires: int = MIN_EXPIRES
    max_expires: int = MAX_EXPIRES
    max_subscribers: int = MAX_SUBSCRIBERS
    max_per_peer: int = MAX_PER_PEER
    _rows: dict[SubscriptionKey, Subscriber[H]] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self._rows)

    def subscribers(self) -> list[Subscriber[H]]:
        return list(self._rows.values())

    def get(self, key: SubscriptionKey) -> Subscriber[H] | None:
        return self._rows.get(key)

    # -- SUBSCRIBE ------------------------------------------------------------

    def on_subscribe(
        self,
        *,
        peer: str,
        call_id: str,
        is_contact: bool,
        in_dialog: bool,
        event: str | None,
        expires: int | None,
        now: float,
    ) -> Accepted[H] | Refused:
        if not is_contact:
            return Refused(status_code=403)
        if event != "presence":
            return Refused(status_code=489, headers=(("Allow-Events", "presence"),))
        wanted = self.default_expires if expires is None else expires
        if 0 < wanted < self.min_expires:
            return Refused(status_code=423, headers=(("Min-Expires", str(self.min_expires)),))
        granted = min(wanted, self.max_expires)
        key = SubscriptionKey(peer=peer, call_id=call_id)
        row = self._rows.get(key)
        if in_dialog and row is None:
            return Refused(status_code=481)
        if granted == 0:
            # Unsubscribe, or a one-off fetch (RFC 6665 4.4.3): one final NOTIFY.
            self._rows.pop(key, None)
            return Accepted(key=key, expires=0)
        if row is not None:
            row.expires_at = now + granted
            return Accepted(key=key, expires=granted)
        evicted: list[Subscriber[H]] = []
        mine = [r for r in self._rows.values() if r.key.peer == peer]
        while len(mine) >= self.max_per_peer:
            oldest = mine.pop(0)
            evicted.append(self._rows.pop(oldest.key))
        if len(self._rows) >= self.max_subscribers:
            return Refused(status_code=503, headers=(("Retry-After", "300"),))
        self._rows[key] = Subscriber(key=key, expires_at=now + granted)
        return Accepted(key=key, expires=granted, evicted=tuple(evicted))

    def attach(self, key: SubscriptionKey, handle: H) -> None:
        """The 200 went out; ``handle`` is how to reach this subscriber."""
        row = self._rows.get(key)
        if row is not None:
            row.handle = handle

    def remove(self, key: SubscriptionKey) -> Subscriber[H] | None:
        return self._rows.pop(key, None)

    def remove_peer(self, peer: str) -> list[Subscriber[H]]:
        """A contact was removed or blocked: every subscription of theirs ends."""
        gone = [r for r in self._rows.values() if r.key.peer == peer]
        for row in gone:
            del self._rows[row.key]
        return gone

    # -- our status -------------------------------------------------------------

    def set_status(self, status: Status) -> list[Subscriber[H]]:
        """Change our presence; the subscribers to NOTIFY (none if nothing changed)."""
        if status == self.status:
            return []
        self.status = status
        return [r for r in self._rows.values() if r.handle is not None]

    # -- time -------------------------------------------------------------------

    def next_deadline(self) -> float | None:
        return min((r.expires_at for r in self._rows.values()), default=None)

    def expire(self, now: float) -> list[Subscriber[H]]:
        """Drop subscriptions that ran out (RFC 6665 4.2.2: they end silently)."""
        gone = [r for r in self._rows.values() if r.expires_at <= now]
        for row in gone:
            del self._rows[row.key]
        return gone
