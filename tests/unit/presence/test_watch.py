"""One watch per contact (RFC 6665 4.1, RFC 3856): refresh at 80 %, backoff, offline detection.

Time is a plain number handed in, so every deadline is checked exactly.
"""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from anonsip.presence import TRANSITIONS, Action, Watch, WatchInput, WatchState
from anonsip.sip import Availability


def active(now: float = 0.0, expires: int = 300) -> Watch:
    w = Watch("bob", now=now)
    assert w.on_timer(now) is Action.SUBSCRIBE
    w.sending("cid")
    w.on_accepted(expires, now)
    assert w.state is WatchState.ACTIVE
    return w


def notify(w: Watch, availability: Availability, note: str = "", now: float = 1.0) -> bool:
    return w.on_notify("cid", availability=availability, note=note, expires=None, now=now)


def test_a_new_watch_subscribes_at_once_and_knows_nothing() -> None:
    w = Watch("bob", now=10.0)
    assert w.visible() == ("unknown", "")
    assert w.next_deadline() == 10.0
    assert w.on_timer(10.0) is Action.SUBSCRIBE
    assert w.state is WatchState.SUBSCRIBING
    assert w.next_deadline() is None


def test_notify_sets_presence_and_refresh_is_at_80_percent() -> None:
    w = active(now=0.0, expires=300)
    assert notify(w, Availability.AWAY, "lunch")
    assert w.visible() == ("away", "lunch")
    assert w.next_deadline() == 240.0
    assert w.on_timer(239.9) is None
    assert w.on_timer(240.0) is Action.REFRESH
    assert w.state is WatchState.REFRESHING
    assert w.next_deadline() == 300.0
    w.on_accepted(300, 240.0)
    assert w.state is WatchState.ACTIVE
    assert w.next_deadline() == 480.0
    assert w.visible() == ("away", "lunch")


def test_notify_that_overtakes_its_200_counts() -> None:
    w = Watch("bob", now=0.0)
    w.on_timer(0.0)
    w.sending("cid")
    assert notify(w, Availability.BUSY, "call")
    w.on_accepted(300, 0.0)
    assert w.visible() == ("busy", "call")


def test_notify_for_another_subscription_is_not_ours() -> None:
    w = active()
    assert not w.on_notify("other", availability=Availability.AWAY, note="", expires=1, now=1)
    assert w.visible() == ("unknown", "")
    idle = Watch("bob", now=0.0)
    assert not idle.on_notify("cid", availability=Availability.AWAY, note="", expires=1, now=1)


def test_notifier_may_shorten_the_subscription() -> None:
    w = active(expires=300)
    w.on_notify("cid", availability=Availability.AVAILABLE, note="", expires=100, now=10.0)
    assert w.expires_at == 110.0
    assert w.next_deadline() == 90.0


def test_expiry_without_refresh_is_offline_then_resubscribe() -> None:
    w = active(expires=300)
    notify(w, Availability.AVAILABLE)
    assert w.on_timer(240.0) is Action.REFRESH
    # The refresh never gets an answer before the subscription runs out.
    assert w.on_timer(300.0) is Action.SUBSCRIBE
    assert w.visible() == ("offline", "")


def test_unreachable_is_offline_with_doubling_backoff() -> None:
    w = Watch("bob", now=0.0)
    now = 0.0
    delays = []
    for _ in range(8):
        assert w.on_timer(now) is Action.SUBSCRIBE
        w.on_failed(now)
        assert w.visible() == ("offline", "")
        deadline = w.next_deadline()
        assert deadline is not None
        delays.append(deadline - now)
        now = deadline
    assert delays == [5, 10, 20, 40, 80, 160, 300, 300]
    w.on_timer(now)
    w.on_accepted(300, now)
    assert w.failures == 0


def test_refusal_is_unknown_with_long_backoff_and_a_kick_retries() -> None:
    w = active()
    notify(w, Availability.AWAY, "x")
    w.on_link_broke(5.0)
    assert w.on_timer(5.0) is Action.SUBSCRIBE
    w.on_refused(403, 5.0)
    assert w.visible() == ("unknown", "")
    assert w.next_deadline() == 65.0
    w.on_timer(65.0)
    w.on_refused(403, 65.0)
    assert w.next_deadline() == 185.0
    w.kick(70.0)
    assert w.on_timer(70.0) is Action.SUBSCRIBE


def test_other_errors_back_off_like_failures_and_honour_retry_after() -> None:
    w = Watch("bob", now=0.0)
    w.on_timer(0.0)
    w.on_refused(503, 0.0, retry_after=300)
    assert w.visible() == ("offline", "")
    assert w.next_deadline() == 300.0


def test_broken_link_keeps_presence_until_the_resubscribe_fails() -> None:
    w = active()
    notify(w, Availability.BUSY, "meeting")
    w.on_link_broke(50.0)
    assert w.state is WatchState.WAITING
    assert w.visible() == ("busy", "meeting")
    assert w.on_timer(50.0) is Action.SUBSCRIBE
    w.on_failed(80.0)
    assert w.visible() == ("offline", "")


def test_failed_refresh_tries_a_fresh_subscription_at_once() -> None:
    for fail in ("refused", "failed"):
        w = active()
        notify(w, Availability.AWAY)
        w.on_timer(240.0)
        if fail == "refused":
            w.on_refused(481, 241.0)
        else:
            w.on_failed(241.0)
        assert w.visible() == ("away", "")
        assert w.on_timer(241.0) is Action.SUBSCRIBE


def test_goodbye_is_offline_and_deactivated_retries_now() -> None:
    w = active()
    notify(w, Availability.AWAY)
    assert w.on_terminated(
        "cid", reason="noresource", retry_after=None, now=10.0, availability=Availability.OFFLINE
    )
    assert w.visible() == ("offline", "")
    assert w.next_deadline() == 15.0
    w = active()
    notify(w, Availability.AWAY)
    assert w.on_terminated("cid", reason="deactivated", retry_after=None, now=10.0)
    assert w.visible() == ("away", "")
    assert w.on_timer(10.0) is Action.SUBSCRIBE
    w = active()
    assert w.on_terminated("cid", reason="rejected", retry_after=None, now=10.0)
    assert w.visible() == ("unknown", "")
    assert not w.on_terminated("cid", reason=None, retry_after=None, now=11.0)


def test_offline_never_shows_a_stale_note() -> None:
    w = active()
    notify(w, Availability.OFFLINE, "stale")
    assert w.visible() == ("offline", "")


def test_inputs_outside_the_table_change_nothing() -> None:
    assert (WatchState.WAITING, WatchInput.NOTIFY) not in TRANSITIONS
    w = Watch("bob", now=0.0)
    w.on_accepted(300, 0.0)
    w.on_failed(0.0)
    w.on_link_broke(0.0)
    assert w.state is WatchState.WAITING
    assert w.failures == 0


EVENTS = st.sampled_from(
    ["timer", "accept", "refuse403", "refuse500", "fail", "notify", "bye", "broke", "kick"]
)


@settings(max_examples=300)
@given(st.lists(st.tuples(EVENTS, st.floats(0, 400)), max_size=50))
def test_any_sequence_keeps_the_invariants(steps: list[tuple[str, float]]) -> None:
    now = 0.0
    w = Watch("bob", now=now)
    for kind, step in steps:
        now += step
        if kind == "timer":
            if w.on_timer(now) is Action.SUBSCRIBE:
                w.sending(f"c{now}")
        elif kind == "accept":
            w.on_accepted(300, now)
        elif kind == "refuse403":
            w.on_refused(403, now)
        elif kind == "refuse500":
            w.on_refused(500, now)
        elif kind == "fail":
            w.on_failed(now)
        elif kind == "notify" and w.call_id is not None:
            w.on_notify(w.call_id, availability=Availability.AWAY, note="n", expires=None, now=now)
        elif kind == "bye" and w.call_id is not None:
            w.on_terminated(w.call_id, reason="noresource", retry_after=None, now=now)
        elif kind == "broke":
            w.on_link_broke(now)
        elif kind == "kick":
            w.kick(now)
        assert w.visible()[0] in ("unknown", "offline", "available", "away", "busy")
        if w.state is WatchState.WAITING:
            assert w.call_id is None
            assert w.retry_at <= now + 1800
        if w.state is WatchState.SUBSCRIBING:
            assert w.next_deadline() is None
        else:
            assert w.next_deadline() is not None
        if w.state in (WatchState.ACTIVE, WatchState.REFRESHING):
            assert w.refresh_at <= w.expires_at
