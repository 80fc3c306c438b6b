"""Admission of contact requests from pseudonyms we do not know.

A request must carry a proof of work bound to both addresses and a recent
time bucket (``_pow``); admitted requests are then rate-limited by a global
token bucket and one per sender (a full waiting list drops its oldest
request, in the store, rather than refusing newcomers). The gate is
sans-IO: it reads only the clock it was given and decides; the node stores
what it admits.
"""

from __future__ import annotations

import enum
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from anonsip.admission._bucket import TokenBucket
from anonsip.admission._pow import (
    BUCKET_SECONDS,
    DEFAULT_DIFFICULTY,
    challenge,
    solve,
    time_bucket,
    verify,
)

__all__ = ["GateLimits", "GateStatistics", "Proof", "RequestGate", "Verdict", "prove"]


class Verdict(enum.Enum):
    ADMIT = "admit"
    REJECT_BAD_POW = "reject-bad-pow"  # wrong, too weak, or outside the time window
    REJECT_RATE_LIMITED = "reject-rate-limited"


@dataclass(frozen=True, kw_only=True)
class GateLimits:
    difficulty_bits: int = DEFAULT_DIFFICULTY
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
    rate_limited: int
    senders_tracked: int


@dataclass(frozen=True, kw_only=True)
class Proof:
    bucket: int
    nonce: bytes


def prove(
    recipient: str,
    sender: str,
    now: float,
    *,
    difficulty_bits: int = DEFAULT_DIFFICULTY,
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

    def check(self, *, sender: str, bucket: int, nonce: bytes) -> Verdict:
        """Judge one request (a full waiting list is the store's to handle: oldest out)."""
        verdict = self._judge(sender, bucket, nonce)
        self._counts[verdict] += 1
        return verdict

    def _judge(self, sender: str, bucket: int, nonce: bytes) -> Verdict:
        limits = self.limits
        now = self._clock()
        current = time_bucket(now, limits.bucket_seconds)
        if abs(bucket - current) > limits.bucket_slack or bucket < 0:
            return Verdict.REJECT_BAD_POW
        if not verify(challenge(self.recipient, sender, bucket), nonce, limits.difficulty_bits):
            return Verdict.REJECT_BAD_POW
        own = self._sender_bucket(sender, now)
        # take from both or neither, so a global refusal does not cost the sender
        if own.available(now) < 1 or self._global.available(now) < 1:
            return Verdict.REJECT_RATE_LIMITED
        own.try_take(now)
        self._global.try_take(now)
        return Verdict.ADMIT

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
            rate_limited=self._counts[Verdict.REJECT_RATE_LIMITED],
            senders_tracked=len(self._senders),
        )
