"""The effort asked of strangers: resting, raised by a flood, lowered when calm."""

from __future__ import annotations

import random

from hypothesis import given
from hypothesis import strategies as st

from anonsip.admission import (
    EffortController,
    EffortLimits,
    GateLimits,
    RequestGate,
    Verdict,
    prove,
)

LIMITS = EffortLimits(rest=8, ceiling=20, window=100.0)
T0 = 1_000_000.0


def window(controller: EffortController, start: float, admitted: int, turned_away: int) -> float:
    """One window's traffic; returns the next window's start."""
    for _ in range(admitted):
        controller.admitted(start + 1)
    for _ in range(turned_away):
        controller.turned_away(start + 2)
    return start + LIMITS.window


def test_honest_traffic_keeps_the_resting_effort() -> None:
    controller = EffortController(LIMITS, T0)
    now = T0
    for _ in range(20):
        now = window(controller, now, admitted=10, turned_away=0)
    assert controller.effort(now) == controller.required(now) == LIMITS.rest


def test_a_flood_raises_the_effort_by_the_work_that_would_tame_it() -> None:
    controller = EffortController(LIMITS, T0)
    now = window(controller, T0, admitted=10, turned_away=30)  # 4x what got through
    assert controller.effort(now) == LIMITS.rest + 2  # log2(40 / 10)
    now = window(controller, now, admitted=10, turned_away=10)  # 2x
    assert controller.effort(now) == LIMITS.rest + 3
    now = window(controller, now, admitted=0, turned_away=10_000)  # at most MAX_STEP a window
    assert controller.effort(now) == LIMITS.rest + 7
    for _ in range(10):
        now = window(controller, now, admitted=1, turned_away=10_000)
    assert controller.effort(now) == LIMITS.ceiling  # never above the ceiling


def test_a_sender_who_read_the_effort_just_before_a_raise_still_gets_in() -> None:
    controller = EffortController(LIMITS, T0)
    now = window(controller, T0, admitted=5, turned_away=5)
    assert controller.effort(now) == LIMITS.rest + 1
    assert controller.required(now) == LIMITS.rest  # the last window's effort still counts
    now = window(controller, now, admitted=5, turned_away=5)
    assert controller.required(now) == LIMITS.rest + 1


def test_calm_lowers_the_effort_a_bit_a_window_down_to_rest() -> None:
    controller = EffortController(LIMITS, T0)
    now = T0
    for _ in range(3):
        now = window(controller, now, admitted=1, turned_away=100)
    high = controller.effort(now)
    assert high == LIMITS.ceiling
    now = window(controller, now, admitted=3, turned_away=0)
    assert controller.effort(now) == high - 1
    assert controller.effort(now + 3 * LIMITS.window) == high - 4  # idle windows count
    assert controller.effort(now + 1e9) == LIMITS.rest  # a long quiet: back at rest


@given(
    st.lists(
        st.tuples(st.integers(0, 50), st.integers(0, 500), st.integers(1, 5)),
        max_size=40,
    )
)
def test_the_effort_stays_between_rest_and_ceiling(
    windows: list[tuple[int, int, int]],
) -> None:
    controller = EffortController(LIMITS, T0)
    now = T0
    for admitted, turned_away, skip in windows:
        window(controller, now, admitted, turned_away)
        now += skip * LIMITS.window
        assert LIMITS.rest <= controller.required(now) <= controller.effort(now)
        assert LIMITS.rest <= controller.effort(now) <= LIMITS.ceiling


def test_the_gate_asks_more_of_strangers_while_flooded() -> None:
    now = [T0]
    gate = RequestGate(
        "asip1me",
        lambda: now[0],
        GateLimits(
            difficulty_bits=4,
            effort_ceiling=12,
            effort_window=60.0,
            global_rate=1 / 60,
            global_burst=2,
            sender_burst=1,
        ),
    )

    def ask(sender: str, bits: int) -> Verdict:
        p = prove(
            "asip1me", sender, now[0], difficulty_bits=bits, rng=random.Random(sender).randbytes
        )
        return gate.check(sender=sender, bucket=p.bucket, nonce=p.nonce)

    # A flood of 40 senders, each paying the resting effort: most are turned away.
    verdicts = [ask(f"asip1flood{i}", 4) for i in range(40)]
    assert verdicts.count(Verdict.ADMIT) == 2
    now[0] += 60
    raised = gate.effort()
    assert raised > 4
    now[0] += 60  # past the grace window: the resting effort no longer does
    weak = next(s for s in (f"asip1late{i}" for i in range(100)) if _work_of(s, 4, now[0]) < raised)
    assert ask(weak, 4) is Verdict.REJECT_LOW_EFFORT
    assert ask("asip1newcomer", gate.effort()) is Verdict.ADMIT  # who pays it gets in
    assert gate.statistics().low_effort >= 1
    # Quiet again: back to rest.
    now[0] += 60 * 20
    assert gate.effort() == 4


def _work_of(sender: str, bits: int, now: float) -> int:
    from anonsip.admission import challenge, work

    p = prove("asip1me", sender, now, difficulty_bits=bits, rng=random.Random(sender).randbytes)
    return work(challenge("asip1me", sender, p.bucket), p.nonce)
