"""Admission of contact requests from pseudonyms we do not know.

A request must carry a proof of work bound to both addresses and a recent
time bucket (``_pow``) of at least the effort the node asks now (``_effort``:
resting, raised while requests outrun the gate); admitted requests are then
rate-limited by a global token bucket and one per sender (a full waiting
list drops its oldest request, in the store, rather than refusing
newcomers). The gate is sans-IO: it reads only the clock it was given and
decides; the node stores what it admits and advertises ``effort()``.
"""

from __future__ import annotations

import enum
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from anonsip.admission._bucket import TokenBucket
from anonsip.admission._effort import EffortController, EffortLimits
from anonsip.admission._pow import (
    BUCKET_SECONDS,
    NONCE_SIZE,
    RESTING_EFFORT,
    challenge,
    solve,
    time_bucket,
    work,
)

__all__ = ["GateLimits", "GateStatistics", "Proof", "RequestGate", "Verdict", "prove"]


class Verdict(enum.Enum):
    ADMIT = "admit"
    REJECT_BAD_POW = "reject-bad-pow"  # malformed, or outside the time window
    REJECT_LOW_EFFORT = "reject-low-effort"  # less work than we ask now: try again with more
    REJECT_RATE_LIMITED = "reject-rate-limited"


@dataclass(frozen=True, kw_only=True)
class GateLimits:
    difficulty_bits: int = RESTING_EFFORT  # the effort asked at rest
    effort_ceiling: int = 28  # the most asked under a flood
    effort_window: float = 120.0  # seconds between effort changes
    global_rate: float = 10 / 60  # requests per second from all strangers together
    global_burst: int = 20
    sender_rate: float = 1 / 600  # one more request per sender every ten minutes
    sender_burst: int = 3
    max_senders: int = 4096  # per-sender buckets remembered, least recently used dropped
    bucket_seconds: int = BUCKET_SECONDS
    bucket_slack: int = 1  # time buckets either side of ours still accepted


@dataclass(frozen=True, kw_only=True)
class GateStatistics:
    admitted: int
    bad_pow: int
    low_effort: int
    rate_limited: int
    senders_tracked: int
    effort: int


@dataclass(frozen=True, kw_only=True)
class Proof:
    bucket: int
    nonce: bytes


def prove(
    recipient: str,
    sender: str,
    now: float,
    *,
    difficulty_bits: int = RESTING_EFFORT,
    bucket_seconds: int = BUCKET_SECONDS,
    rng: Callable[[int], bytes] | None = None,
) -> Proof:
    """The sender's side: the proof to attach to a contact request sent at ``now``."""
    bucket = time_bucket(now, bucket_seconds)
    material = challenge(recipient, sender, bucket)
    nonce = (
        solve(material, difficulty_bits) if rng is None else solve(material, difficulty_bits, rng)
    )
    return Proof(bucket=bucket, nonce=nonce)


class RequestGate:
    """Decides whether a contact request from ``sender`` reaches the user."""

    def __init__(
        self, recipient: str, clock: Callable[[], float], limits: GateLimits | None = None
    ) -> None:
        self.recipient = recipient
        self.limits = limits or GateLimits()
        self._clock = clock
        now = clock()
        self._global = TokenBucket(
            capacity=self.limits.global_burst, rate=self.limits.global_rate, now=now
        )
        self._senders: OrderedDict[str, TokenBucket] = OrderedDict()
        self._counts = dict.fromkeys(Verdict, 0)
        self._effort = EffortController(
            EffortLimits(
                rest=self.limits.difficulty_bits,
                ceiling=max(self.limits.effort_ceiling, self.limits.difficulty_bits),
                window=self.limits.effort_window,
            ),
            now,
        )

    def effort(self) -> int:
        """The effort to ask of strangers now (advertised with the registration)."""
        return self._effort.effort(self._clock())

    def check(self, *, sender: str, bucket: int, nonce: bytes) -> Verdict:
        """Judge one request: its work, then the rate limits (a full waiting list is the
        store's to handle: oldest out)."""
        verdict = self.check_work(sender=sender, bucket=bucket, nonce=nonce)
        return self.admit(sender) if verdict is Verdict.ADMIT else verdict

    def check_work(self, *, sender: str, bucket: int, nonce: bytes) -> Verdict:
        """Only the proof (``ADMIT`` if it is enough), spending no tokens: the node judges
        it before anything else, so what it answers says nothing about whether it
        blocked the sender."""
        limits = self.limits
        now = self._clock()
        current = time_bucket(now, limits.bucket_seconds)
        if abs(bucket - current) > limits.bucket_slack or bucket < 0 or len(nonce) != NONCE_SIZE:
            verdict = Verdict.REJECT_BAD_POW
        elif work(challenge(self.recipient, sender, bucket), nonce) < self._effort.required(now):
            verdict = Verdict.REJECT_LOW_EFFORT
        else:
            return Verdict.ADMIT
        self._counts[verdict] += 1
        return verdict

    def admit(self, sender: str) -> Verdict:
        """The rate limits, for a request whose work was enough."""
        now = self._clock()
        own = self._sender_bucket(sender, now)
        # take from both or neither, so a global refusal does not cost the sender
        if own.available(now) < 1 or self._global.available(now) < 1:
            self._effort.turned_away(now)
            verdict = Verdict.REJECT_RATE_LIMITED
        else:
            own.try_take(now)
            self._global.try_take(now)
            self._effort.admitted(now)
            verdict = Verdict.ADMIT
        self._counts[verdict] += 1
        return verdict

    def _sender_bucket(self, sender: str, now: float) -> TokenBucket:
        own = self._senders.get(sender)
        if own is not None:
            self._senders.move_to_end(sender)
            return own
        while len(self._senders) >= self.limits.max_senders:
            self._senders.popitem(last=False)
        own = TokenBucket(capacity=self.limits.sender_burst, rate=self.limits.sender_rate, now=now)
        self._senders[sender] = own
        return own

    def statistics(self) -> GateStatistics:
        return GateStatistics(
            admitted=self._counts[Verdict.ADMIT],
            bad_pow=self._counts[Verdict.REJECT_BAD_POW],
            low_effort=self._counts[Verdict.REJECT_LOW_EFFORT],
            rate_limited=self._counts[Verdict.REJECT_RATE_LIMITED],
            senders_tracked=len(self._senders),
            effort=self.effort(),
        )
