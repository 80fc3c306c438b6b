"""The view model as a reducer: control-API results and events in, ViewState out."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tui._model import (
    MAX_MESSAGES,
    MAX_REQUESTS,
    CallPhase,
    MessageState,
    ViewState,
    apply_error,
    apply_event,
    apply_result,
    close_conversation,
    display_name,
    find_contact,
    incoming_call,
    move_selection,
    open_conversation,
    select_contact,
    set_connected,
    shown_call,
)

ALICE = "asip1alice0000000000000000000000"
BOB = "asip1bob000000000000000000000000"
CAROL = "asip1carol00000000000000000000000"

STATUS = {
    "tor": {"progress": 45, "phase": "Loading relay descriptors"},
    "onion_address": "abc.onion",
    "identity": {},
    "dht": {"routing_table": 12, "records": 3},
    "registration": {"state": "registered", "period": 1, "seq": 7, "expires": 1000.0},
    "outbox": 2,
    "presence": {"status": "away"},
}


def contact(address: str, nick: str, **extra: Any) -> dict[str, Any]:
    base = {
        "address": address,
        "nick": nick,
        "state": "accepted",
        "verified": False,
        "presence": "available",
        "note": "",
        "unread": 0,
    }
    return {**base, **extra}


def with_contacts(*contacts: dict[str, Any]) -> ViewState:
    return apply_result(ViewState(), "contacts.list", {}, list(contacts), now=0.0)


def ev(state: ViewState, event: str, data: Any, now: float = 0.0) -> ViewState:
    return apply_event(state, event, data, now=now)


def res(state: ViewState, op: str, result: Any, now: float = 0.0, **args: Any) -> ViewState:
    return apply_result(state, op, args, result, now=now)


# -- status ---------------------------------------------------------------------


def test_status_result_fills_tor_dht_registration_and_presence() -> None:
    state = res(ViewState(), "status", STATUS)
    assert state.status is not None
    assert state.status.tor_connected
    assert (state.status.tor_progress, state.status.tor_phase) == (
        45,
        "Loading relay descriptors",
    )
    assert (state.status.dht_routing_table, state.status.dht_records) == (12, 3)
    assert state.status.registration_state == "registered"
    assert state.status.registration_seq == 7
    assert state.status.outbox == 2
    assert state.status.presence == "away"


def test_status_event_replaces_progress() -> None:
    state = res(ViewState(), "status", STATUS)
    state = ev(state, "status", {**STATUS, "tor": {"progress": 100, "phase": "Done"}})
    assert state.status is not None
    assert state.status.tor_progress == 100
    assert state.status.tor_phase == "Done"


def test_status_without_tor_means_not_connected() -> None:
    state = res(ViewState(), "status", {k: v for k, v in STATUS.items() if k != "tor"})
    assert state.status is not None
    assert not state.status.tor_connected


def test_status_progress_is_clamped() -> None:
    state = res(ViewState(), "status", {**STATUS, "tor": {"progress": 250, "phase": "x"}})
    assert state.status is not None
    assert state.status.tor_progress == 100


def test_presence_set_updates_own_presence() -> None:
    state = res(ViewState(), "status", STATUS)
    state = res(state, "presence.set", None, status="busy")
    assert state.status is not None
    assert state.status.presence == "busy"


def test_identity() -> None:
    state = res(
        ViewState(),
        "identity",
        {"nick": "me", "address": ALICE, "sip_uri": f"sip:{ALICE}", "fingerprint": "12 34"},
    )
    assert state.identity is not None
    assert (state.identity.nick, state.identity.address) == ("me", ALICE)
    assert state.identity.fingerprint == "12 34"


# -- contacts ---------------------------------------------------------------------


def test_contacts_sorted_accepted_first_then_by_name_and_first_selected() -> None:
    state = with_contacts(
        contact(CAROL, "carol", state="requested"),
        contact(BOB, "Bob"),
        contact(ALICE, "alice"),
    )
    assert [c.nick for c in state.contacts] == ["alice", "Bob", "carol"]
    assert state.selected == ALICE


def test_contact_event_changes_presence_and_keeps_other_fields() -> None:
    state = with_contacts(contact(ALICE, "alice", unread=2, verified=True))
    state = ev(state, "contact", {"address": ALICE, "presence": "away", "note": "lunch"})
    (alice,) = state.contacts
    assert (alice.presence, alice.note) == ("away", "lunch")
    assert alice.unread == 2
    assert alice.verified


def test_contact_event_for_a_new_contact_adds_it() -> None:
    state = with_contacts(contact(ALICE, "alice"))
    state = ev(state, "contact", contact(BOB, "bob", presence="busy"))
    assert [c.address for c in state.contacts] == [ALICE, BOB]


def test_verify_result_marks_verified() -> None:
    state = with_contacts(contact(ALICE, "alice"))
    state = res(state, "contacts.verify", contact(ALICE, "alice", verified=True), peer="alice")
    assert state.contacts[0].verified


def test_remove_closes_its_conversation() -> None:
    state = open_conversation(with_contacts(contact(ALICE, "alice")), ALICE)
    state = res(state, "contacts.remove", None, peer="alice")
    assert state.contacts == ()
    assert state.conversation is None
    assert state.selected is None


def test_find_contact_by_address_nick_or_uri() -> None:
    state = with_contacts(contact(ALICE, "alice"))
    for peer in (ALICE, "alice", f"sip:{ALICE}"):
        found = find_contact(state, peer)
        assert found is not None
        assert found.address == ALICE
    assert find_contact(state, "mallory") is None


def test_display_name_falls_back_to_short_address() -> None:
    state = with_contacts(contact(ALICE, ""))
    assert display_name(state.contacts[0]).startswith("asip1alice")
    assert len(display_name(state.contacts[0])) < len(ALICE)


def test_selection_moves_and_stops_at_the_ends() -> None:
    state = with_contacts(contact(ALICE, "a"), contact(BOB, "b"), contact(CAROL, "c"))
    state = move_selection(state, 1)
    assert state.selected == BOB
    state = move_selection(state, 5)
    assert state.selected == CAROL
    state = move_selection(state, -9)
    assert state.selected == ALICE
    assert select_contact(state, "nobody").selected == ALICE
    assert move_selection(ViewState(), 1).selected is None


# -- conversation and delivery state --------------------------------------------------


def message(mid: str, direction: str, text: str, state: str, time: float = 1.0) -> dict[str, Any]:
    return {"message_id": mid, "direction": direction, "text": text, "time": time, "state": state}


def test_open_conversation_clears_unread_and_selects() -> None:
    state = with_contacts(contact(ALICE, "alice"), contact(BOB, "bob", unread=3))
    state = open_conversation(state, "bob")
    assert state.conversation is not None
    assert state.conversation.peer == BOB
    assert state.selected == BOB
    assert [c.unread for c in state.contacts] == [0, 0]


def test_history_fills_the_open_conversation() -> None:
    state = open_conversation(with_contacts(contact(ALICE, "alice")), ALICE)
    history = [message("1", "in", "hi", "received"), message("2", "out", "yo", "delivered")]
    state = res(state, "history", history, peer=ALICE)
    assert state.conversation is not None
    assert state.conversation.loaded
    assert [m.text for m in state.conversation.messages] == ["hi", "yo"]
    assert state.conversation.messages[1].state is MessageState.DELIVERED


def test_history_for_a_conversation_no_longer_open_is_dropped() -> None:
    state = with_contacts(contact(ALICE, "alice"), contact(BOB, "bob"))
    state = open_conversation(state, BOB)
    state = res(state, "history", [message("1", "in", "hi", "received")], peer=ALICE)
    assert state.conversation is not None
    assert state.conversation.messages == ()


def test_history_keeps_events_that_came_first() -> None:
    state = open_conversation(with_contacts(contact(ALICE, "alice")), ALICE)
    state = ev(state, "message", {"peer": ALICE, **message("3", "in", "new", "received", 5.0)})
    state = res(state, "history", [message("1", "in", "old", "received")], peer=ALICE)
    assert state.conversation is not None
    assert [m.text for m in state.conversation.messages] == ["old", "new"]


def test_send_then_events_queued_sent_delivered() -> None:
    state = open_conversation(with_contacts(contact(ALICE, "alice")), ALICE)
    state = res(state, "send", {"message_id": "m1", "state": "queued"}, peer="alice", text="hey")
    assert state.conversation is not None
    (sent,) = state.conversation.messages
    assert (sent.text, sent.state, sent.outgoing) == ("hey", MessageState.QUEUED, True)
    for word, expected in (("sent", MessageState.SENT), ("delivered", MessageState.DELIVERED)):
        state = ev(state, "message", {"peer": ALICE, **message("m1", "out", "hey", word)})
        assert state.conversation is not None
        assert [m.state for m in state.conversation.messages] == [expected]


def test_delivery_state_never_moves_backwards() -> None:
    """The node may send (and report it) before its reply to ``send`` arrives."""
    state = open_conversation(with_contacts(contact(ALICE, "alice")), ALICE)
    state = ev(state, "message", {"peer": ALICE, **message("m1", "out", "hey", "delivered")})
    state = res(state, "send", {"message_id": "m1", "state": "queued"}, peer=ALICE, text="hey")
    state = ev(state, "message", {"peer": ALICE, **message("m1", "out", "hey", "sent")})
    assert state.conversation is not None
    assert [m.state for m in state.conversation.messages] == [MessageState.DELIVERED]


@given(st.permutations(["queued", "sent", "delivered"]))
def test_final_state_is_the_most_advanced_whatever_the_order(order: list[str]) -> None:
    state = open_conversation(with_contacts(contact(ALICE, "alice")), ALICE)
    for word in order:
        state = ev(state, "message", {"peer": ALICE, **message("m1", "out", "x", word)})
    assert state.conversation is not None
    assert state.conversation.messages[0].state is MessageState.DELIVERED


def test_message_for_another_contact_counts_as_unread() -> None:
    state = with_contacts(contact(ALICE, "alice"), contact(BOB, "bob"))
    state = open_conversation(state, ALICE)
    state = ev(state, "message", {"peer": BOB, **message("1", "in", "psst", "received")})
    state = ev(state, "message", {"peer": BOB, **message("2", "in", "psst", "received")})
    state = ev(state, "message", {"peer": BOB, **message("3", "out", "mine", "sent")})
    assert {c.nick: c.unread for c in state.contacts} == {"alice": 0, "bob": 2}
    assert state.conversation is not None
    assert state.conversation.messages == ()


def test_contact_event_does_not_mark_the_open_conversation_unread() -> None:
    state = open_conversation(with_contacts(contact(ALICE, "alice")), ALICE)
    state = ev(state, "contact", {"address": ALICE, "unread": 4})
    assert state.contacts[0].unread == 0


def test_read_result_clears_unread() -> None:
    state = with_contacts(contact(ALICE, "alice", unread=4))
    state = res(state, "read", None, peer="alice")
    assert state.contacts[0].unread == 0


def test_conversation_is_bounded() -> None:
    state = open_conversation(with_contacts(contact(ALICE, "alice")), ALICE)
    history = [message(str(i), "in", f"m{i}", "received") for i in range(MAX_MESSAGES + 50)]
    state = res(state, "history", history, peer=ALICE)
    state = ev(state, "message", {"peer": ALICE, **message("new", "in", "last", "received")})
    assert state.conversation is not None
    assert len(state.conversation.messages) == MAX_MESSAGES
    assert state.conversation.messages[-1].text == "last"


def test_close_conversation() -> None:
    state = open_conversation(with_contacts(contact(ALICE, "alice")), ALICE)
    assert close_conversation(state).conversation is None


# -- contact requests -------------------------------------------------------------------


def test_requests_and_request_events_deduplicate() -> None:
    state = res(ViewState(), "requests", [{"address": ALICE, "text": "hi", "time": 1.0}])
    state = ev(state, "request", {"address": BOB, "text": "me too", "time": 2.0})
    state = ev(state, "request", {"address": ALICE, "text": "again", "time": 3.0})
    assert [(r.address, r.text) for r in state.requests] == [(BOB, "me too"), (ALICE, "again")]


@pytest.mark.parametrize("op", ["accept", "decline", "block"])
def test_answering_a_request_removes_it(op: str) -> None:
    state = res(ViewState(), "requests", [{"address": ALICE, "text": "hi", "time": 1.0}])
    state = res(state, op, None, address=ALICE)
    assert state.requests == ()


def test_block_marks_the_contact_blocked() -> None:
    state = with_contacts(contact(ALICE, "alice"), contact(BOB, "bob"))
    state = res(state, "block", None, address=ALICE)
    assert [(c.nick, c.state) for c in state.contacts] == [
        ("bob", "accepted"),
        ("alice", "blocked"),
    ]


def test_requests_are_bounded() -> None:
    state = ViewState()
    for i in range(MAX_REQUESTS + 10):
        state = ev(state, "request", {"address": f"asip1x{i}", "text": "", "time": 0.0})
    assert len(state.requests) == MAX_REQUESTS
    assert state.requests[-1].address == f"asip1x{MAX_REQUESTS + 9}"


# -- calls ------------------------------------------------------------------------------


def call_event(view: ViewState, now: float = 0.0, **data: Any) -> ViewState:
    return ev(view, "call", data, now)


def test_incoming_call_prompt_then_answered_starts_timer() -> None:
    state = with_contacts(contact(ALICE, "alice"))
    state = call_event(state, call_id="c1", peer=ALICE, direction="in", state="ringing")
    call = incoming_call(state)
    assert call is not None
    assert call.call_id == "c1"
    assert shown_call(state) is None
    state = res(state, "answer", None, now=100.0, call_id="c1")
    assert incoming_call(state) is None
    active = shown_call(state)
    assert active is not None
    assert active.phase is CallPhase.ACTIVE
    assert active.duration(165.0) == 65.0
    # The node's own "active" event afterwards keeps the start time.
    state = call_event(state, now=102.0, call_id="c1", state="active")
    active = shown_call(state)
    assert active is not None
    assert active.started == 100.0


def test_outgoing_call_ringing_then_established_then_ended() -> None:
    state = with_contacts(contact(BOB, "bob"))
    state = res(state, "call", {"call_id": "c2"}, peer="bob")
    call = shown_call(state)
    assert call is not None
    assert (call.phase, call.incoming, call.started) == (CallPhase.RINGING, False, None)
    assert incoming_call(state) is None
    state = call_event(state, now=50.0, call_id="c2", state="established")
    call = shown_call(state)
    assert call is not None
    assert (call.phase, call.started) == (CallPhase.ACTIVE, 50.0)
    state = call_event(state, call_id="c2", peer=BOB, state="ended", reason="hung up")
    assert state.calls == ()
    assert "bob" in state.notice
    assert "hung up" in state.notice


def test_call_event_before_call_reply_is_not_duplicated() -> None:
    state = call_event(ViewState(), call_id="c2", peer=BOB, direction="out", state="calling")
    state = res(state, "call", {"call_id": "c2"}, peer=BOB)
    assert len(state.calls) == 1


@pytest.mark.parametrize("op", ["call.decline", "hangup"])
def test_decline_or_hangup_without_id_ends_the_current_call(op: str) -> None:
    state = call_event(ViewState(), call_id="c1", peer=ALICE, direction="in", state="ringing")
    state = res(state, op, None)
    assert state.calls == ()


def test_mute_and_hold() -> None:
    state = call_event(ViewState(), now=1.0, call_id="c1", peer=ALICE, state="active")
    state = res(state, "call.mute", None, muted=True)
    call = shown_call(state)
    assert call is not None
    assert call.muted
    state = res(state, "call.hold", None, call_id="c1", held=True)
    call = shown_call(state)
    assert call is not None
    assert (call.held, call.phase) == (True, CallPhase.HELD)
    state = res(state, "call.mute", None, call_id="c1", muted=False)
    call = shown_call(state)
    assert call is not None
    assert not call.muted


def test_call_stats_update_quality_and_keep_missing_figures() -> None:
    state = call_event(ViewState(), call_id="c1", peer=ALICE, state="active")
    state = ev(
        state,
        "call.stats",
        {"call_id": "c1", "playout_delay_ms": 180.0, "concealed_frames": 3, "mos": 4.1},
    )
    state = ev(state, "call.stats", {"call_id": "c1", "stats": {"concealed_frames": 5}})
    call = shown_call(state)
    assert call is not None
    assert call.quality.playout_delay_ms == 180.0
    assert call.quality.concealed_frames == 5
    assert call.quality.mos == 4.1


def test_call_stats_delay_in_seconds_is_converted() -> None:
    state = call_event(ViewState(), call_id="c1", peer=ALICE, state="active")
    state = ev(state, "call.stats", {"call_id": "c1", "playout_delay": 0.25})
    call = shown_call(state)
    assert call is not None
    assert call.quality.playout_delay_ms == 250.0


def test_calls_result_replaces_calls_and_keeps_mute() -> None:
    state = call_event(ViewState(), call_id="c1", peer=ALICE, state="active")
    state = res(state, "call.mute", None, muted=True)
    state = res(
        state,
        "calls",
        [
            {"call_id": "c1", "peer": ALICE, "direction": "out", "state": "active", "started": 9.0},
            {"call_id": "c3", "peer": BOB, "direction": "in", "state": "ringing", "started": None},
        ],
    )
    assert [c.call_id for c in state.calls] == ["c1", "c3"]
    assert state.calls[0].muted
    call = incoming_call(state)
    assert call is not None
    assert call.call_id == "c3"


def test_losing_the_node_clears_calls_and_says_so() -> None:
    state = set_connected(ViewState(), True)
    state = call_event(state, call_id="c1", peer=ALICE, state="active")
    state = set_connected(state, False)
    assert not state.connected
    assert state.calls == ()
    assert state.notice_is_error
    assert "anonsip run" in state.notice


# -- safety numbers and errors -------------------------------------------------------------


def test_safety_number_is_kept_per_contact_address() -> None:
    state = with_contacts(contact(ALICE, "alice"))
    state = res(state, "safety_number", {"safety_number": "11111 22222"}, peer="alice")
    assert state.safety_numbers == {ALICE: "11111 22222"}


def test_error_is_one_line() -> None:
    state = apply_error(ViewState(), "send", "no such\ncontact:   mallory")
    assert state.notice == "send: no such contact: mallory"
    assert state.notice_is_error


# -- robustness: the node's data never crashes the view ------------------------------------

json_like = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
field_names = st.sampled_from(
    [
        "address",
        "nick",
        "state",
        "presence",
        "unread",
        "message_id",
        "peer",
        "direction",
        "call_id",
        "text",
        "time",
        "tor",
        "stats",
        "started",
        "verified",
        "muted",
        "mos",
    ]
)
maps = st.dictionaries(field_names, json_like, max_size=8)


@given(
    st.lists(
        st.tuples(
            st.sampled_from(["status", "message", "request", "contact", "call", "call.stats", "?"]),
            maps,
        ),
        max_size=6,
    )
)
def test_arbitrary_events_never_raise(events: list[tuple[str, dict[str, Any]]]) -> None:
    state = open_conversation(with_contacts(contact(ALICE, "alice")), ALICE)
    for name, data in events:
        state = ev(state, name, dict(data, peer=data.get("peer", ALICE)))
        assert isinstance(state, ViewState)


@given(
    st.sampled_from(
        [
            "status",
            "identity",
            "contacts.list",
            "contacts.add",
            "history",
            "send",
            "requests",
            "calls",
            "call",
            "safety_number",
            "accept",
            "answer",
            "call.mute",
        ]
    ),
    json_like,
    maps,
)
def test_arbitrary_results_never_raise(op: str, result: Any, args: dict[str, Any]) -> None:
    state = open_conversation(with_contacts(contact(ALICE, "alice")), ALICE)
    state = apply_result(state, op, args, result, now=0.0)
    assert isinstance(state, ViewState)


def test_unknown_event_or_non_map_changes_nothing() -> None:
    state = with_contacts(contact(ALICE, "alice"))
    assert ev(state, "weather", {"sun": True}) is state
    assert ev(state, "contact", ["not", "a", "map"]) is state
    assert res(state, "contacts.list", "nope") is state
    assert dataclasses.replace(state) == state
