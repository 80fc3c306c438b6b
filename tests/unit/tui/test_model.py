"""The view model as a reducer: the schema's views (encoded as the node sends them) in,
ViewState out."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from anonsip.control import (
    AcceptArgs,
    AddressArgs,
    Args,
    CallDirection,
    CallState,
    CallStatsView,
    CallView,
    ContactState,
    ContactView,
    DhtView,
    HistoryArgs,
    MessageDirection,
    MessageState,
    MessageView,
    NoArgs,
    PeerArgs,
    PresenceSetArgs,
    PresenceStatus,
    PresenceView,
    RegistrationView,
    RequestView,
    SafetyNumberView,
    SendArgs,
    StatusView,
    TorView,
    View,
)
from tui._model import (
    MAX_CALL_NOTES,
    MAX_MESSAGES,
    MAX_REQUESTS,
    ViewState,
    address_form,
    apply_error,
    apply_event,
    apply_result,
    clear_notice,
    close_conversation,
    contact_presence,
    display_name,
    find_contact,
    incoming_call,
    move_selection,
    open_conversation,
    restart_hint,
    select_contact,
    set_connected,
    set_notice,
    shown_call,
    transfer_request,
)

ALICE = "asip1alice0000000000000000000000"
BOB = "asip1bob000000000000000000000000"
CAROL = "asip1carol00000000000000000000000"

STATUS = StatusView(
    tor=TorView(progress=45, phase="Loading relay descriptors"),
    onion_address="abc.onion",
    dht=DhtView(routing_table=12, records=3),
    registration=RegistrationView(state="registered", period=1, seq=7, expires=1000.0),
    outbox=2,
    presence=PresenceView(status=PresenceStatus.AWAY),
    restart="anonsip --home /h tui --testnet /t",
)


def contact(address: str, nick: str, **extra: Any) -> ContactView:
    extra.setdefault("presence", PresenceStatus.AVAILABLE)
    return ContactView(address=address, nick=nick, **extra)


def connected() -> ViewState:
    return set_connected(ViewState(), True)


def with_contacts(*contacts: ContactView) -> ViewState:
    return res(connected(), "contacts.list", [c.encode() for c in contacts])


def ev(state: ViewState, event: str, data: View | Any, now: float = 0.0) -> ViewState:
    return apply_event(state, event, data.encode() if isinstance(data, View) else data, now=now)


def res(
    state: ViewState, op: str, result: Any, args: Args | None = None, now: float = 0.0
) -> ViewState:
    if isinstance(result, View):
        result = result.encode()
    return apply_result(state, op, args or NoArgs(), result, now=now)


def message(
    mid: str, direction: str, text: str, state: str, time: float = 1.0, peer: str = ALICE
) -> MessageView:
    return MessageView(
        peer=peer,
        message_id=mid,
        direction=MessageDirection(direction),
        text=text,
        time=time,
        state=MessageState(state),
    )


# -- status ---------------------------------------------------------------------


def test_status_result_is_the_status_view() -> None:
    state = res(ViewState(), "status", STATUS)
    assert state.status == STATUS


def test_status_event_replaces_it() -> None:
    state = res(ViewState(), "status", STATUS)
    done = dataclasses.replace(STATUS, tor=TorView(progress=100, phase="Done"))
    state = ev(state, "status", done)
    assert state.status is not None
    assert (state.status.tor.progress, state.status.tor.phase) == (100, "Done")


def test_presence_set_updates_own_presence() -> None:
    state = res(ViewState(), "status", STATUS)
    state = res(state, "presence.set", None, PresenceSetArgs(status="busy", note="call me"))
    assert state.status is not None
    assert state.status.presence == PresenceView(status=PresenceStatus.BUSY, note="call me")


def test_the_restart_hint_is_the_nodes_own_command() -> None:
    assert restart_hint(res(ViewState(), "status", STATUS)) == STATUS.restart
    assert "anonsip" in restart_hint(ViewState())


def test_losing_the_node_says_how_to_restart_it_and_forgets_presence() -> None:
    state = res(with_contacts(contact(ALICE, "alice")), "status", STATUS)
    state = ev(state, "call", CallView(call_id="c1", peer=ALICE, state=CallState.ACTIVE))
    assert contact_presence(state, state.contacts[0]).status is PresenceStatus.AVAILABLE
    state = set_connected(state, False)
    assert not state.connected
    assert state.calls == ()
    assert state.notice is not None
    assert state.notice.error
    assert STATUS.restart in state.notice.text
    assert contact_presence(state, state.contacts[0]).status is PresenceStatus.UNKNOWN


# -- contacts ---------------------------------------------------------------------


def test_contacts_sorted_accepted_first_then_by_name_and_first_selected() -> None:
    state = with_contacts(
        contact(CAROL, "carol", state=ContactState.REQUESTED),
        contact(BOB, "Bob"),
        contact(ALICE, "alice"),
    )
    assert [c.nick for c in state.contacts] == ["alice", "Bob", "carol"]
    assert state.selected == ALICE


def test_a_contact_event_replaces_the_contact_whole() -> None:
    state = with_contacts(contact(ALICE, "alice", unread=2, verified=True))
    state = ev(state, "contact", contact(ALICE, "Alice A.", unread=2, verified=False, queued=3))
    (alice,) = state.contacts
    assert (alice.nick, alice.verified, alice.queued) == ("Alice A.", False, 3)


def test_presence_events_are_kept_and_contact_updates_do_not_reset_them() -> None:
    state = with_contacts(contact(ALICE, "alice"))
    state = ev(state, "presence", PresenceView(address=ALICE, status=PresenceStatus.BUSY, note="x"))
    # A contact update carrying no presence knowledge (an "unknown")...
    state = ev(state, "contact", ContactView(address=ALICE, nick="alice", verified=True))
    presence = contact_presence(state, state.contacts[0])
    assert (presence.status, presence.note) == (PresenceStatus.BUSY, "x")
    # ...nor a fresh list.
    state = res(state, "contacts.list", [ContactView(address=ALICE, nick="alice").encode()])
    assert contact_presence(state, state.contacts[0]).status is PresenceStatus.BUSY


def test_presence_of_someone_not_a_contact_is_not_kept() -> None:
    state = with_contacts(contact(ALICE, "alice"))
    state = ev(state, "presence", PresenceView(address=BOB, status=PresenceStatus.AWAY))
    assert BOB not in state.presence


def test_a_new_contact_brings_its_presence() -> None:
    state = with_contacts(contact(ALICE, "alice"))
    state = ev(state, "contact", contact(BOB, "bob", presence=PresenceStatus.BUSY))
    assert [c.address for c in state.contacts] == [ALICE, BOB]
    assert contact_presence(state, state.contacts[1]).status is PresenceStatus.BUSY


def test_a_removed_contact_goes_with_its_conversation_and_presence() -> None:
    state = open_conversation(with_contacts(contact(ALICE, "alice")), ALICE)
    state = ev(state, "contact", ContactView(address=ALICE, state=ContactState.REMOVED))
    assert state.contacts == ()
    assert state.conversation is None
    assert state.selected is None
    assert state.presence == {}


def test_remove_reply_removes_the_contact() -> None:
    state = open_conversation(with_contacts(contact(ALICE, "alice")), ALICE)
    state = res(state, "contacts.remove", None, PeerArgs(peer="ALICE"))
    assert state.contacts == ()
    assert state.conversation is None


def test_verify_result_marks_verified() -> None:
    state = with_contacts(contact(ALICE, "alice"))
    state = res(state, "contacts.verify", contact(ALICE, "alice", verified=True))
    assert state.contacts[0].verified


@pytest.mark.parametrize(
    "peer", [ALICE, "alice", "ALICE", "Alice", f"sip:{ALICE}@anonsip.invalid", ALICE.upper()]
)
def test_find_contact_by_address_uri_or_nick_in_any_case(peer: str) -> None:
    state = with_contacts(contact(ALICE, "alice"), contact(BOB, "bob"))
    found = find_contact(state, peer)
    assert found is not None
    assert found.address == ALICE


def test_find_contact_prefers_the_exact_nick_and_refuses_an_ambiguous_case() -> None:
    state = with_contacts(contact(ALICE, "Sam"), contact(BOB, "sam"))
    assert find_contact(state, "sam").address == BOB  # type: ignore[union-attr]
    assert find_contact(state, "SAM") is None
    assert find_contact(state, "mallory") is None


def test_address_form() -> None:
    assert address_form(f" SIP:{ALICE.upper()}@anonsip.invalid ") == ALICE
    assert address_form("Bob") == "Bob"


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


def test_open_conversation_by_any_case_clears_unread_and_selects() -> None:
    state = with_contacts(contact(ALICE, "alice"), contact(BOB, "bob", unread=3))
    state = open_conversation(state, "BOB")
    assert state.conversation is not None
    assert state.conversation.peer == BOB
    assert state.selected == BOB
    assert [c.unread for c in state.contacts] == [0, 0]


def test_history_fills_the_open_conversation() -> None:
    state = open_conversation(with_contacts(contact(ALICE, "alice")), ALICE)
    history = [message("1", "in", "hi", "received"), message("2", "out", "yo", "delivered")]
    state = res(state, "history", [m.encode() for m in history], HistoryArgs(peer=ALICE))
    assert state.conversation is not None
    assert state.conversation.loaded
    assert state.conversation.messages == tuple(history)


def test_history_for_a_conversation_no_longer_open_is_dropped() -> None:
    state = open_conversation(with_contacts(contact(ALICE, "alice"), contact(BOB, "bob")), BOB)
    history = [message("1", "in", "hi", "received").encode()]
    state = res(state, "history", history, HistoryArgs(peer=ALICE))
    assert state.conversation is not None
    assert state.conversation.messages == ()


def test_history_keeps_events_that_came_first() -> None:
    state = open_conversation(with_contacts(contact(ALICE, "alice")), ALICE)
    state = ev(state, "message", message("3", "in", "new", "received", 5.0))
    history = [message("1", "in", "old", "received").encode()]
    state = res(state, "history", history, HistoryArgs(peer=ALICE))
    assert state.conversation is not None
    assert [m.text for m in state.conversation.messages] == ["old", "new"]


def test_a_sent_message_arrives_by_the_message_event_only() -> None:
    state = open_conversation(with_contacts(contact(ALICE, "alice")), ALICE)
    reply = message("m1", "out", "hey", "queued")
    after_reply = res(state, "send", reply, SendArgs(peer="alice", text="hey"))
    assert after_reply is state  # the reply adds nothing...
    state = ev(state, "message", reply)  # ...the event does
    for word in ("sent", "delivered"):
        state = ev(state, "message", message("m1", "out", "hey", word))
    state = res(state, "send", reply, SendArgs(peer="alice", text="hey"))  # a late reply
    assert state.conversation is not None
    assert [(m.text, m.state) for m in state.conversation.messages] == [
        ("hey", MessageState.DELIVERED)
    ]


@given(st.permutations(["queued", "request", "sent", "in_mailbox", "delivered"]))
def test_final_state_is_the_most_advanced_whatever_the_order(order: list[str]) -> None:
    state = open_conversation(with_contacts(contact(ALICE, "alice")), ALICE)
    for word in order:
        state = ev(state, "message", message("m1", "out", "x", word))
    assert state.conversation is not None
    assert state.conversation.messages[0].state is MessageState.DELIVERED


def test_a_request_stays_a_request_until_the_node_says_otherwise() -> None:
    state = open_conversation(with_contacts(contact(ALICE, "alice")), ALICE)
    state = ev(state, "message", message("m1", "out", "x", "queued"))
    state = ev(state, "message", message("m1", "out", "x", "request"))
    state = ev(state, "message", message("m1", "out", "x", "queued"))  # stale news
    assert state.conversation is not None
    assert state.conversation.messages[0].state is MessageState.REQUEST


def test_message_for_another_contact_counts_as_unread() -> None:
    state = open_conversation(with_contacts(contact(ALICE, "alice"), contact(BOB, "bob")), ALICE)
    state = ev(state, "message", message("1", "in", "psst", "received", peer=BOB))
    state = ev(state, "message", message("2", "in", "psst", "received", peer=BOB))
    state = ev(state, "message", message("3", "out", "mine", "sent", peer=BOB))
    assert {c.nick: c.unread for c in state.contacts} == {"alice": 0, "bob": 2}
    assert state.conversation is not None
    assert state.conversation.messages == ()


def test_contact_event_does_not_mark_the_open_conversation_unread() -> None:
    state = open_conversation(with_contacts(contact(ALICE, "alice")), ALICE)
    state = ev(state, "contact", contact(ALICE, "alice", unread=4))
    assert state.contacts[0].unread == 0


def test_read_result_clears_unread() -> None:
    state = with_contacts(contact(ALICE, "alice", unread=4))
    state = res(state, "read", None, PeerArgs(peer="alice"))
    assert state.contacts[0].unread == 0


def test_conversation_is_bounded() -> None:
    state = open_conversation(with_contacts(contact(ALICE, "alice")), ALICE)
    history = [
        message(str(i), "in", f"m{i}", "received").encode() for i in range(MAX_MESSAGES + 50)
    ]
    state = res(state, "history", history, HistoryArgs(peer=ALICE))
    state = ev(state, "message", message("new", "in", "last", "received"))
    assert state.conversation is not None
    assert len(state.conversation.messages) == MAX_MESSAGES
    assert state.conversation.messages[-1].text == "last"


def test_close_conversation() -> None:
    state = open_conversation(with_contacts(contact(ALICE, "alice")), ALICE)
    assert close_conversation(state).conversation is None


# -- contact requests -------------------------------------------------------------------


def request(address: str, text: str, time: float = 1.0) -> RequestView:
    return RequestView(address=address, text=text, time=time)


def test_requests_and_request_events_deduplicate() -> None:
    state = res(ViewState(), "requests", [request(ALICE, "hi").encode()])
    state = ev(state, "request", request(BOB, "me too", 2.0))
    state = ev(state, "request", request(ALICE, "again", 3.0))
    assert [(r.address, r.text) for r in state.requests] == [(BOB, "me too"), (ALICE, "again")]


def test_accepting_a_request_names_the_new_contact() -> None:
    state = res(connected(), "requests", [request(ALICE, "hi").encode()])
    state = res(state, "accept", contact(ALICE, "Alice"), AcceptArgs(address=ALICE, nick="Alice"))
    assert state.requests == ()
    assert [c.nick for c in state.contacts] == ["Alice"]


@pytest.mark.parametrize("op", ["decline", "block"])
def test_declining_or_blocking_a_request_removes_it(op: str) -> None:
    state = res(ViewState(), "requests", [request(ALICE, "hi").encode()])
    state = res(state, op, None, AddressArgs(address=ALICE))
    assert state.requests == ()


def test_requests_are_bounded() -> None:
    state = ViewState()
    for i in range(MAX_REQUESTS + 10):
        state = ev(state, "request", request(f"asip1x{i}", ""))
    assert len(state.requests) == MAX_REQUESTS
    assert state.requests[-1].address == f"asip1x{MAX_REQUESTS + 9}"


# -- calls ------------------------------------------------------------------------------


def call(call_id: str = "c1", peer: str = ALICE, **fields: Any) -> CallView:
    return CallView(call_id=call_id, peer=peer, **fields)


def test_incoming_call_prompt_then_answered_starts_timer() -> None:
    state = with_contacts(contact(ALICE, "alice"))
    state = ev(state, "call", call(direction=CallDirection.IN, state=CallState.RINGING))
    ringing = incoming_call(state)
    assert ringing is not None
    assert ringing.call_id == "c1"
    assert shown_call(state) is None
    state = ev(state, "call", call(direction=CallDirection.IN, state=CallState.ACTIVE), 100.0)
    assert incoming_call(state) is None
    active = shown_call(state)
    assert active is not None
    assert active.started == 100.0  # the node gave no start: the UI counts from now
    state = ev(
        state, "call", call(direction=CallDirection.IN, state=CallState.ACTIVE, muted=True), 102.0
    )
    active = shown_call(state)
    assert active is not None
    assert (active.started, active.muted) == (100.0, True)


def test_outgoing_call_reply_then_events_then_ended_with_a_line() -> None:
    state = open_conversation(with_contacts(contact(BOB, "bob")), BOB)
    state = res(state, "call", call(peer=BOB))
    shown = shown_call(state)
    assert shown is not None
    assert (shown.state, shown.direction, shown.started) == (
        CallState.CALLING,
        CallDirection.OUT,
        None,
    )
    state = ev(state, "call", call(peer=BOB, state=CallState.ACTIVE, started=50.0))
    stats = CallStatsView(call_id="c1", duration_s=151.4)
    state = ev(state, "call", call(peer=BOB, state=CallState.ENDED, reason="hung-up", stats=stats))
    assert state.calls == ()
    assert state.notice is not None
    assert "bob" in state.notice.text
    assert "hung up" in state.notice.text
    assert [(n.peer, n.text) for n in state.call_notes] == [(BOB, "call, 2:31")]


@pytest.mark.parametrize(
    ("direction", "reason", "line", "missed"),
    [
        (CallDirection.IN, "remote-cancelled", "missed call", True),
        (CallDirection.IN, "no-answer", "missed call", True),
        (CallDirection.IN, "declined", "declined call", False),
        (CallDirection.OUT, "declined", "call declined", False),
        (CallDirection.OUT, "no-answer", "call not answered", False),
        (CallDirection.OUT, "unreachable", "call failed: not reachable", False),
        (CallDirection.OUT, "not-acceptable", "call failed (not-acceptable)", False),
    ],
)
def test_calls_that_were_not_answered_leave_a_line(
    direction: CallDirection, reason: str, line: str, missed: bool
) -> None:
    state = ev(connected(), "call", call(direction=direction, state=CallState.RINGING))
    state = ev(state, "call", call(direction=direction, state=CallState.ENDED, reason=reason))
    (note,) = state.call_notes
    assert (note.text, note.missed) == (line, missed)


def test_an_answered_call_without_figures_is_timed_by_the_ui() -> None:
    state = ev(connected(), "call", call(state=CallState.ACTIVE), now=10.0)
    state = ev(state, "call", call(state=CallState.ENDED, reason="hung-up"), now=75.0)
    assert state.call_notes[0].text == "call, 1:05"


def test_call_notes_are_bounded() -> None:
    state = connected()
    for i in range(MAX_CALL_NOTES + 5):
        state = ev(state, "call", call(call_id=f"c{i}", state=CallState.ENDED, reason="busy"))
    assert len(state.call_notes) == MAX_CALL_NOTES


def test_call_event_before_call_reply_is_not_duplicated_nor_rolled_back() -> None:
    state = ev(ViewState(), "call", call(peer=BOB, state=CallState.RINGING))
    state = res(state, "call", call(peer=BOB, state=CallState.CALLING))
    assert len(state.calls) == 1
    assert state.calls[0].state is CallState.RINGING


def test_call_stats_keep_the_latest_figures() -> None:
    state = ev(ViewState(), "call", call(state=CallState.ACTIVE))
    state = ev(state, "call.stats", CallStatsView(call_id="c1", playout_delay_ms=180.0, mos=4.1))
    state = ev(state, "call", call(state=CallState.HELD, held=True))  # no figures in it
    shown = shown_call(state)
    assert shown is not None
    assert shown.stats is not None
    assert (shown.stats.playout_delay_ms, shown.stats.mos) == (180.0, 4.1)
    assert shown.held


def test_a_transfer_asked_by_the_peer_is_a_prompt() -> None:
    state = ev(ViewState(), "call", call(state=CallState.ACTIVE, transfer_to=CAROL))
    asking = transfer_request(state)
    assert asking is not None
    assert asking.transfer_to == CAROL
    state = ev(state, "call", call(state=CallState.ACTIVE))
    assert transfer_request(state) is None


def test_calls_result_replaces_calls_and_keeps_what_only_the_ui_knew() -> None:
    state = ev(ViewState(), "call", call(state=CallState.ACTIVE), now=9.0)
    state = res(
        state,
        "calls",
        [
            call(state=CallState.ACTIVE).encode(),
            call("c3", BOB, direction=CallDirection.IN, state=CallState.RINGING).encode(),
        ],
    )
    assert [c.call_id for c in state.calls] == ["c1", "c3"]
    assert state.calls[0].started == 9.0
    ringing = incoming_call(state)
    assert ringing is not None
    assert ringing.call_id == "c3"


# -- safety numbers, notices and errors ----------------------------------------------------


def test_safety_number_is_kept_per_contact_address() -> None:
    state = with_contacts(contact(ALICE, "alice"))
    number = SafetyNumberView(safety_number="11111 22222")
    state = res(state, "safety_number", number, PeerArgs(peer="Alice"))
    assert state.safety_numbers == {ALICE: "11111 22222"}


def test_an_error_is_the_nodes_message_whole_without_the_operation_name() -> None:
    state = apply_error(ViewState(), "contacts.add", "no such\ncontact:   mallory, and more")
    assert state.notice is not None
    assert state.notice.text == "no such contact: mallory, and more"
    assert state.notice.error
    state = apply_error(ViewState(), "contacts.add", "")
    assert state.notice is not None
    assert state.notice.text == "Could not add or rename a contact."


def test_a_notice_clears_only_itself() -> None:
    state = set_notice(ViewState(), "first")
    assert state.notice is not None
    first = state.notice.serial
    state = set_notice(state, "second")
    assert clear_notice(state, first) is state
    assert clear_notice(state, first + 1).notice is None
    assert clear_notice(state).notice is None


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
        "status",
        "unread",
        "queued",
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
        "transfer_to",
        "duration_s",
        "restart",
    ]
)
maps = st.dictionaries(field_names, json_like, max_size=8)


@given(
    st.lists(
        st.tuples(
            st.sampled_from(
                ["status", "message", "request", "contact", "presence", "call", "call.stats", "?"]
            ),
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
            "contacts.verify",
            "history",
            "send",
            "requests",
            "calls",
            "call",
            "safety_number",
            "accept",
            "audio.devices",
        ]
    ),
    json_like,
)
def test_arbitrary_results_never_raise(op: str, result: Any) -> None:
    state = open_conversation(with_contacts(contact(ALICE, "alice")), ALICE)
    args: dict[str, Args] = {
        "history": HistoryArgs(peer=ALICE),
        "send": SendArgs(peer=ALICE, text="x"),
        "safety_number": PeerArgs(peer=ALICE),
        "accept": AcceptArgs(address=ALICE),
    }
    state = apply_result(state, op, args.get(op, NoArgs()), result, now=0.0)
    assert isinstance(state, ViewState)


def test_unknown_event_or_unreadable_data_changes_nothing() -> None:
    state = with_contacts(contact(ALICE, "alice"))
    assert ev(state, "weather", {"sun": True}) is state
    assert ev(state, "contact", ["not", "a", "map"]) is state
    assert ev(state, "contact", {"nick": "no address"}) is state
    assert res(state, "contacts.list", "nope") is state
    assert res(state, "status", ["not", "a", "map"]) is state


def test_a_call_kept_in_history_reads_as_its_line() -> None:
    from anonsip.control import MessageDirection, MessageKind, MessageView
    from tui._model import history_call_note

    def kept(direction: MessageDirection, text: str, duration: float) -> MessageView:
        return MessageView(
            peer="asip1peer",
            message_id="c1",
            direction=direction,
            text=text,
            time=1000.0,
            kind=MessageKind.CALL,
            duration_s=duration,
        )

    assert history_call_note(kept(MessageDirection.OUT, "hung-up", 151.2)).text == "call, 2:31"
    missed = history_call_note(kept(MessageDirection.IN, "missed", 0.0))
    assert (missed.text, missed.missed, missed.call_id) == ("missed call", True, "c1")
    assert history_call_note(kept(MessageDirection.IN, "declined", 0.0)).text == "declined call"
    assert history_call_note(kept(MessageDirection.OUT, "busy", 0.0)).text == "call: busy"
