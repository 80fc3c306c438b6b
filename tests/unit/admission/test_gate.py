"""RequestGate with an injected clock: proof checks and rate limits."""

import random
from typing import Any

import pytest

from anonsip import LocalError
from anonsip.admission import (
    GateLimits,
    Proof,
    RequestGate,
    TokenBucket,
    Verdict,
    prove,
    time_bucket,
)

ME = "asip1me"
BITS = 8


class Clock:
    def __init__(self, now: float = 1_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def limits(**changes: Any) -> GateLimits:
    base: dict[str, Any] = {
        "difficulty_bits": BITS,
        "global_rate": 1.0,
        "global_burst": 5,
        "sender_rate": 1 / 600,
        "sender_burst": 2,
        "max_senders": 100,
    }
    base.update(changes)
    return GateLimits(**base)


def proof(sender: str, clock: Clock, recipient: str = ME) -> Proof:
    return prove(
        recipient, sender, clock.now, difficulty_bits=BITS, rng=random.Random(sender).randbytes
    )


def ask(gate: RequestGate, sender: str, clock: Clock, p: Proof | None = None) -> Verdict:
    p = p or proof(sender, clock)
    return gate.check(sender=sender, bucket=p.bucket, nonce=p.nonce)


def test_a_proper_request_is_admitted() -> None:
    clock = Clock()
    gate = RequestGate(ME, clock, limits())
    assert ask(gate, "asip1alice", clock) is Verdict.ADMIT


def test_bad_proofs_are_rejected_without_spending_tokens() -> None:
    clock = Clock()
    gate = RequestGate(ME, clock, limits(global_burst=1))
    good = proof("asip1alice", clock)
    for weak in (
        Proof(bucket=good.bucket, nonce=b"\x00" * 16),  # not a solution (fixed, 2**-8 chance)
        proof("asip1alice", clock, recipient="asip1someoneelse"),
    ):
        assert ask(gate, "asip1alice", clock, p=weak) is Verdict.REJECT_LOW_EFFORT
    for bad in (
        Proof(bucket=good.bucket, nonce=good.nonce[:-1]),
        Proof(bucket=good.bucket + 5, nonce=good.nonce),
    ):
        assert ask(gate, "asip1alice", clock, p=bad) is Verdict.REJECT_BAD_POW
    assert ask(gate, "asip1mallory", clock, p=good) is Verdict.REJECT_LOW_EFFORT  # stolen proof
    assert ask(gate, "asip1alice", clock, p=good) is Verdict.ADMIT  # tokens untouched
    stats = gate.statistics()
    assert (stats.bad_pow, stats.low_effort, stats.effort) == (2, 3, BITS)


def test_proofs_expire_after_the_adjacent_bucket() -> None:
    clock = Clock(600 * 1000)
    gate = RequestGate(ME, clock, limits(sender_burst=5))
    p = proof("asip1alice", clock)
    clock.now += 600  # next bucket: still accepted (slack 1)
    assert ask(gate, "asip1alice", clock, p=p) is Verdict.ADMIT
    clock.now += 600  # two buckets on: replay window closed
    assert ask(gate, "asip1alice", clock, p=p) is Verdict.REJECT_BAD_POW
    future = Proof(bucket=time_bucket(clock.now) + 2, nonce=p.nonce)
    assert ask(gate, "asip1alice", clock, p=future) is Verdict.REJECT_BAD_POW


def test_per_sender_rate_limit_refills_with_time() -> None:
    clock = Clock()
    gate = RequestGate(ME, clock, limits())
    assert [ask(gate, "asip1alice", clock) for _ in range(3)] == [
        Verdict.ADMIT,
        Verdict.ADMIT,
        Verdict.REJECT_RATE_LIMITED,
    ]
    assert ask(gate, "asip1bob", clock) is Verdict.ADMIT  # others unaffected
    clock.now += 599
    assert ask(gate, "asip1alice", clock) is Verdict.REJECT_RATE_LIMITED
    clock.now += 1
    assert ask(gate, "asip1alice", clock) is Verdict.ADMIT


def test_global_rate_limit_across_senders() -> None:
    clock = Clock()
    gate = RequestGate(ME, clock, limits(global_burst=5, global_rate=0.5))
    verdicts = [ask(gate, f"asip1s{i}", clock) for i in range(7)]
    assert verdicts == [Verdict.ADMIT] * 5 + [Verdict.REJECT_RATE_LIMITED] * 2
    clock.now += 2.0
    assert ask(gate, "asip1s5", clock) is Verdict.ADMIT
    # the global refusal above did not cost s5 a token: it still has its second one
    assert ask(gate, "asip1s5", clock, p=proof("asip1s5", clock)) is Verdict.REJECT_RATE_LIMITED
    clock.now += 2.0
    assert ask(gate, "asip1s5", clock) is Verdict.ADMIT


def test_sender_table_is_bounded() -> None:
    clock = Clock()
    gate = RequestGate(ME, clock, limits(max_senders=4, global_burst=100))
    for i in range(10):
        ask(gate, f"asip1s{i}", clock)
    assert gate.statistics().senders_tracked == 4


def test_token_bucket_ignores_a_clock_going_backwards() -> None:
    bucket = TokenBucket(capacity=2, rate=1.0, now=100.0)
    assert bucket.try_take(100.0)
    assert bucket.try_take(100.0)
    assert not bucket.try_take(50.0)
    assert not bucket.try_take(100.5)
    assert bucket.try_take(101.0)
    assert bucket.is_full(1000.0)
    with pytest.raises(LocalError, match="capacity"):
        TokenBucket(capacity=0, rate=1.0, now=0.0)
