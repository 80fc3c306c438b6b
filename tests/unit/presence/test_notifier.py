"""The notifier's subscriber table (RFC 6665 4.2): who gets in, for how long, whom to NOTIFY."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from anonsip.presence import (
    Accepted,
    Notifier,
    PresenceError,
    Refused,
    Status,
    SubscriptionKey,
    user_status,
)
from anonsip.sip import Availability

AWAY = Status(availability=Availability.AWAY, note="lunch")


def subscribe(
    n: Notifier[str],
    peer: str = "alice",
    call_id: str = "c1",
    *,
    is_contact: bool = True,
    in_dialog: bool = False,
    event: str | None = "presence",
    expires: int | None = 600,
    now: float = 0.0,
) -> Accepted[str] | Refused:
    return n.on_subscribe(
        peer=peer,
        call_id=call_id,
        is_contact=is_contact,
        in_dialog=in_dialog,
        event=event,
        expires=expires,
        now=now,
    )


def test_only_contacts_get_in_and_strangers_learn_only_403() -> None:
    n: Notifier[str] = Notifier(status=AWAY)
    stranger = subscribe(n, "mallory", is_contact=False)
    # Even a stranger asking for another event package, or a refresh, hears the same.
    odd = subscribe(n, "mallory", is_contact=False, event="dialog", in_dialog=True, expires=1)
    assert stranger == odd == Refused(status_code=403)
    assert len(n) == 0
    assert n.set_status(Status()) == []


def test_event_package_must_be_presence() -> None:
    n: Notifier[str] = Notifier()
    for event in (None, "dialog", "Presence"):
        verdict = subscribe(n, event=event)
        assert verdict == Refused(status_code=489, headers=(("Allow-Events", "presence"),))
    assert len(n) == 0


def test_expires_default_clamp_and_minimum() -> None:
    n: Notifier[str] = Notifier()
    verdict = subscribe(n, call_id="a", expires=None)
    assert isinstance(verdict, Accepted)
    assert verdict.expires == 3600
    verdict = subscribe(n, call_id="b", expires=99999)
    assert isinstance(verdict, Accepted)
    assert verdict.expires == 3600
    assert subscribe(n, call_id="c", expires=59) == Refused(
        status_code=423, headers=(("Min-Expires", "60"),)
    )
    assert len(n) == 2


def test_refresh_extends_and_unknown_refresh_is_481() -> None:
    n: Notifier[str] = Notifier()
    assert isinstance(subscribe(n, expires=600, now=0), Accepted)
    assert n.next_deadline() == 600
    verdict = subscribe(n, in_dialog=True, expires=600, now=500)
    assert verdict == Accepted(key=SubscriptionKey(peer="alice", call_id="c1"), expires=600)
    assert n.next_deadline() == 1100
    assert subscribe(n, call_id="gone", in_dialog=True) == Refused(status_code=481)


def test_unsubscribe_and_fetch_answer_once_and_keep_nothing() -> None:
    n: Notifier[str] = Notifier()
    subscribe(n)
    verdict = subscribe(n, in_dialog=True, expires=0)
    assert isinstance(verdict, Accepted)
    assert verdict.expires == 0
    assert len(n) == 0
    fetch = subscribe(n, call_id="f", expires=0)
    assert isinstance(fetch, Accepted)
    assert fetch.expires == 0
    assert len(n) == 0


def test_a_peer_holds_at_most_two_rows_oldest_evicted() -> None:
    n: Notifier[str] = Notifier()
    subscribe(n, call_id="1")
    subscribe(n, call_id="2")
    verdict = subscribe(n, call_id="3")
    assert isinstance(verdict, Accepted)
    assert [r.key.call_id for r in verdict.evicted] == ["1"]
    assert sorted(r.key.call_id for r in n.subscribers()) == ["2", "3"]


def test_full_table_is_503() -> None:
    n: Notifier[str] = Notifier(max_subscribers=2)
    subscribe(n, "a")
    subscribe(n, "b")
    assert subscribe(n, "c") == Refused(status_code=503, headers=(("Retry-After", "300"),))
    # A refresh of an existing row still works when full.
    assert isinstance(subscribe(n, "a", in_dialog=True), Accepted)


def test_set_status_notifies_attached_rows_on_change_only() -> None:
    n: Notifier[str] = Notifier()
    subscribe(n, "a")
    subscribe(n, "b")
    n.attach(SubscriptionKey(peer="a", call_id="c1"), "link-a")
    assert [r.handle for r in n.set_status(AWAY)] == ["link-a"]
    assert n.set_status(AWAY) == []
    assert n.status == AWAY


def test_expiry_drops_rows_at_their_deadline() -> None:
    n: Notifier[str] = Notifier()
    subscribe(n, "a", expires=100, now=0)
    subscribe(n, "b", expires=200, now=0)
    assert n.expire(99.9) == []
    assert [r.key.peer for r in n.expire(100)] == ["a"]
    assert n.next_deadline() == 200
    assert [r.key.peer for r in n.remove_peer("b")] == ["b"]
    assert n.next_deadline() is None


@settings(max_examples=200)
@given(
    st.lists(
        st.tuples(
            st.sampled_from("abcd"),
            st.sampled_from(["1", "2", "3", "4"]),
            st.booleans(),
            st.booleans(),
            st.one_of(st.none(), st.integers(0, 10000)),
            st.floats(0, 100),
        ),
        max_size=60,
    )
)
def test_table_stays_bounded(
    ops: list[tuple[str, str, bool, bool, int | None, float]],
) -> None:
    n: Notifier[str] = Notifier(max_subscribers=5, max_per_peer=2)
    now = 0.0
    for peer, call_id, contact, in_dialog, expires, step in ops:
        now += step
        n.expire(now)
        verdict = subscribe(
            n, peer, call_id, is_contact=contact, in_dialog=in_dialog, expires=expires, now=now
        )
        if not contact:
            assert verdict == Refused(status_code=403)
        assert len(n) <= 5
        for p in "abcd":
            assert sum(r.key.peer == p for r in n.subscribers()) <= 2
        assert all(r.expires_at > now for r in n.subscribers())


def test_user_status_checks_what_the_user_typed() -> None:
    assert user_status("away", "back at 5") == Status(
        availability=Availability.AWAY, note="back at 5"
    )
    assert user_status("busy") == Status(availability=Availability.BUSY)
    for bad in ("offline", "AWAY", "", "invisible"):
        with pytest.raises(PresenceError, match="available, away, busy"):
            user_status(bad)
    with pytest.raises(PresenceError, match="at most 256"):
        user_status("away", "x" * 257)
    with pytest.raises(PresenceError, match="control characters"):
        user_status("away", "\x1b[31mred")
