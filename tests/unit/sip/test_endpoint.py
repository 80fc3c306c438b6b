"""Transactions and dialogs as pairs: two SipEndpoints over an in-memory link.

Every test runs twice, with Alice or Bob speaking first, on a fake clock.
"""

from __future__ import annotations

from typing import TypeVar

import pytest

from anonsip.sip import (
    AckReceived,
    Availability,
    DialogState,
    InviteCancelled,
    MessageRejected,
    Presence,
    Request,
    RequestReceived,
    ResponseReceived,
    SipEndpoint,
    SipEvent,
    SipParseError,
    SipUsageError,
    TransactionTimedOut,
    TransportFailed,
    Uri,
    bye_request,
    encode_pidf,
    invite_request,
    message_request,
    message_text,
    notify_request,
    options_request,
    parse_pidf,
    refer_request,
    reinvite_request,
    subscribe_request,
)
from tests.unit.sip.helpers import T1, EndpointPair

SDP = b"v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"


@pytest.fixture(params=["alice-first", "bob-first"])
def roles(request: pytest.FixtureRequest) -> tuple[EndpointPair, SipEndpoint, SipEndpoint]:
    pair = EndpointPair()
    if request.param == "alice-first":
        return pair, pair.alice, pair.bob
    return pair, pair.bob, pair.alice


Roles = tuple[EndpointPair, SipEndpoint, SipEndpoint]


E = TypeVar("E", bound=SipEvent)


def only(events: list[SipEvent], kind: type[E]) -> list[E]:
    return [e for e in events if isinstance(e, kind)]


def quiet(endpoint: SipEndpoint) -> bool:
    stats = endpoint.statistics()
    return stats["client_transactions"] == 0 and stats["server_transactions"] == 0


def test_message_and_delivery_receipt(roles: Roles) -> None:
    pair, caller, callee = roles
    request = message_request(caller, "héllo, 世界")
    caller.send_request(request, pair.now)
    seen = pair.flush()
    (received,) = only(pair.events_of(seen, callee), RequestReceived)
    assert message_text(received.request) == "héllo, 世界"
    assert received.request.from_.uri.aor() == caller.local_aor
    assert received.dialog is None
    callee.respond(received.request, 200)
    seen = pair.flush()
    (answer,) = only(pair.events_of(seen, caller), ResponseReceived)
    assert answer.response.status_code == 200
    assert answer.request == request
    assert answer.response.to.tag is not None
    assert quiet(caller)
    assert quiet(callee)
    assert caller.next_deadline() is None


def test_non_invite_provisional_then_final(roles: Roles) -> None:
    pair, caller, callee = roles
    caller.send_request(options_request(caller), pair.now)
    (received,) = only(pair.events_of(pair.flush(), callee), RequestReceived)
    assert callee.unanswered(received.request)
    assert not caller.unanswered(received.request)  # not a request it received
    callee.respond(received.request, 100)
    callee.respond(received.request, 183)
    assert callee.unanswered(received.request)  # provisional answers leave it open
    early = pair.events_of(pair.advance(20 * T1), caller)
    callee.respond(received.request, 200)
    assert not callee.unanswered(received.request)
    seen = early + pair.events_of(pair.flush(), caller)
    codes = [e.response.status_code for e in only(seen, ResponseReceived)]
    assert codes == [100, 183, 200]
    with pytest.raises(SipUsageError):
        callee.respond(received.request, 200)
    assert quiet(caller)
    assert quiet(callee)


def test_timer_f_times_out_a_non_invite(roles: Roles) -> None:
    pair, caller, callee = roles
    request = message_request(caller, "anyone?")
    caller.send_request(request, pair.now)
    (received,) = only(pair.events_of(pair.flush(), callee), RequestReceived)
    assert caller.next_deadline() == pytest.approx(64 * T1)
    assert only(pair.events_of(pair.advance(64 * T1 - 0.01), caller), TransactionTimedOut) == []
    (timeout,) = only(pair.events_of(pair.advance(0.02), caller), TransactionTimedOut)
    assert timeout.request == request
    assert timeout.client
    assert quiet(caller)
    # A late answer finds no transaction and is only reported.
    callee.respond(received.request, 200)
    late = pair.events_of(pair.flush(), caller)
    assert only(late, ResponseReceived) == []
    assert len(only(late, MessageRejected)) == 1


def _call(pair: EndpointPair, caller: SipEndpoint, callee: SipEndpoint) -> tuple[Request, Request]:
    invite = invite_request(caller, SDP)
    caller.send_request(invite, pair.now)
    (received,) = only(pair.events_of(pair.flush(), callee), RequestReceived)
    assert received.request.body == SDP
    return invite, received.request


def test_invite_ringing_answer_ack_bye(roles: Roles) -> None:
    pair, caller, callee = roles
    invite, incoming = _call(pair, caller, callee)
    callee.respond(incoming, 180)
    (ringing,) = only(pair.events_of(pair.flush(), caller), ResponseReceived)
    assert ringing.response.status_code == 180
    assert ringing.dialog is not None
    assert ringing.dialog.state is DialogState.EARLY
    assert caller.next_deadline() is None  # Timer B stops in Proceeding
    callee.respond(incoming, 200, headers=(("Content-Type", "application/sdp"),), body=SDP)
    seen = pair.flush()
    (ok,) = only(pair.events_of(seen, caller), ResponseReceived)
    assert ok.response.body == SDP
    assert ok.dialog is ringing.dialog
    assert ok.dialog.state is DialogState.CONFIRMED
    (ack,) = only(pair.events_of(seen, callee), AckReceived)
    assert ack.request.cseq.number == invite.cseq.number
    assert ack.request.top_via.branch != invite.top_via.branch  # a new transaction (13.2.2.4)
    assert ack.dialog.state is DialogState.CONFIRMED
    assert ack.dialog.id.call_id == ok.dialog.id.call_id
    assert ack.dialog.id.local_tag == ok.dialog.id.remote_tag
    assert quiet(caller)
    assert quiet(callee)
    # Re-INVITE in the dialog, then BYE from the callee's side.
    reinvite = reinvite_request(caller, ok.dialog, SDP)
    assert reinvite.cseq.number == invite.cseq.number + 1
    caller.send_request(reinvite, pair.now)
    (again,) = only(pair.events_of(pair.flush(), callee), RequestReceived)
    assert again.dialog is ack.dialog
    callee.respond(again.request, 200)
    assert len(only(pair.events_of(pair.flush(), callee), AckReceived)) == 1
    bye = bye_request(callee, ack.dialog)
    callee.send_request(bye, pair.now)
    (got_bye,) = only(pair.events_of(pair.flush(), caller), RequestReceived)
    assert got_bye.request.method == "BYE"
    assert got_bye.dialog is ok.dialog
    caller.respond(got_bye.request, 200)
    (bye_ok,) = only(pair.events_of(pair.flush(), callee), ResponseReceived)
    assert bye_ok.response.status_code == 200
    assert caller.statistics()["dialogs"] == 0
    assert callee.statistics()["dialogs"] == 0
    assert quiet(caller)
    assert quiet(callee)


def test_invite_rejected_is_acked_in_the_transaction(roles: Roles) -> None:
    pair, caller, callee = roles
    _, incoming = _call(pair, caller, callee)
    callee.respond(incoming, 180)
    pair.flush()
    callee.respond(incoming, 486)
    assert callee.next_deadline() == pytest.approx(64 * T1)  # Timer H
    seen = pair.flush()
    (busy,) = only(pair.events_of(seen, caller), ResponseReceived)
    assert busy.response.status_code == 486
    assert only(pair.events_of(seen, callee), AckReceived) == []  # absorbed by the transaction
    assert caller.statistics()["dialogs"] == 0
    assert callee.statistics()["dialogs"] == 0
    assert quiet(caller)
    assert quiet(callee)


def test_timer_h_when_the_ack_never_comes(roles: Roles) -> None:
    pair, caller, callee = roles
    _, incoming = _call(pair, caller, callee)
    callee.respond(incoming, 603)
    pair.push(pair.take(callee), caller)
    assert len(pair.take(caller)) == 1  # the ACK, lost on the way
    assert only(pair.events_of(pair.advance(64 * T1 - 0.01), callee), TransactionTimedOut) == []
    (timeout,) = only(pair.events_of(pair.advance(0.02), callee), TransactionTimedOut)
    assert not timeout.client
    assert timeout.request == incoming
    assert quiet(callee)


def test_timer_b_times_out_an_unanswered_invite(roles: Roles) -> None:
    pair, caller, callee = roles
    invite, _ = _call(pair, caller, callee)
    (timeout,) = only(pair.events_of(pair.advance(64 * T1), caller), TransactionTimedOut)
    assert timeout.request == invite
    assert quiet(caller)


def test_cancel_after_ringing(roles: Roles) -> None:
    pair, caller, callee = roles
    invite, incoming = _call(pair, caller, callee)
    callee.respond(incoming, 180)
    pair.flush()
    cancel = caller.cancel(invite, pair.now)
    assert cancel is not None
    assert cancel.top_via == invite.top_via
    assert caller.cancel(invite, pair.now) is None  # once only
    seen = pair.flush()
    (cancelled,) = only(pair.events_of(seen, callee), InviteCancelled)
    assert cancelled.request == incoming
    codes = sorted(
        (e.request.method, e.response.status_code)
        for e in only(pair.events_of(seen, caller), ResponseReceived)
    )
    assert codes == [("CANCEL", 200), ("INVITE", 487)]
    assert caller.statistics()["dialogs"] == 0
    assert callee.statistics()["dialogs"] == 0
    assert quiet(caller)
    assert quiet(callee)
    with pytest.raises(SipUsageError):
        callee.respond(incoming, 200)


def test_cancel_waits_for_a_provisional(roles: Roles) -> None:
    pair, caller, callee = roles
    invite, incoming = _call(pair, caller, callee)
    assert caller.cancel(invite, pair.now) is not None
    assert pair.take(caller) == []  # RFC 3261 9.1: not before a provisional
    callee.respond(incoming, 180)
    pair.push(pair.take(callee), caller)
    (frame,) = pair.take(caller)
    assert frame.startswith(b"CANCEL ")
    pair.push([frame], callee)
    pair.flush()
    assert quiet(caller)
    assert quiet(callee)


def test_cancel_gets_no_answer_then_times_out(roles: Roles) -> None:
    pair, caller, callee = roles
    invite, incoming = _call(pair, caller, callee)
    callee.respond(incoming, 180)
    pair.flush()
    pair.advance(1000.0)  # Proceeding has no timer: ringing may last
    assert caller.statistics()["client_transactions"] == 1
    caller.cancel(invite, pair.now)
    pair.take(caller)  # the CANCEL is lost
    timeouts = only(pair.events_of(pair.advance(64 * T1), caller), TransactionTimedOut)
    assert sorted(t.request.method for t in timeouts) == ["CANCEL", "INVITE"]
    assert quiet(caller)


def test_cancel_racing_a_200(roles: Roles) -> None:
    """RFC 3261 9.1/9.2: the 200 wins; the CANCEL gets 481; the caller hangs up with BYE."""
    pair, caller, callee = roles
    invite, incoming = _call(pair, caller, callee)
    callee.respond(incoming, 180)
    pair.flush()
    callee.respond(incoming, 200, headers=(("Content-Type", "application/sdp"),), body=SDP)
    ok_in_flight = pair.take(callee)
    assert caller.cancel(invite, pair.now) is not None
    cancel_in_flight = pair.take(caller)
    callee_events = pair.push(cancel_in_flight, callee)
    assert only(callee_events, InviteCancelled) == []
    caller_events = pair.push(ok_in_flight + pair.take(callee), caller)
    answers = {
        (e.request.method, e.response.status_code) for e in only(caller_events, ResponseReceived)
    }
    assert answers == {("INVITE", 200), ("CANCEL", 481)}
    (ok,) = [e for e in only(caller_events, ResponseReceived) if e.request.method == "INVITE"]
    assert ok.dialog is not None
    seen = pair.flush()
    assert len(only(pair.events_of(seen, callee), AckReceived)) == 1
    caller.send_request(bye_request(caller, ok.dialog), pair.now)
    (bye,) = only(pair.events_of(pair.flush(), callee), RequestReceived)
    callee.respond(bye.request, 200)
    pair.flush()
    assert caller.statistics()["dialogs"] == 0
    assert callee.statistics()["dialogs"] == 0
    assert quiet(caller)
    assert quiet(callee)


def test_unknown_method_gets_501_from_the_endpoint(roles: Roles) -> None:
    pair, caller, callee = roles
    caller.send_request(caller.create_request("FROBNICATE"), pair.now)
    caller.send_request(caller.create_request("REGISTER"), pair.now)
    seen = pair.flush()
    assert only(pair.events_of(seen, callee), RequestReceived) == []
    assert len(only(pair.events_of(seen, callee), MessageRejected)) == 2
    answers = {
        e.request.method: e.response for e in only(pair.events_of(seen, caller), ResponseReceived)
    }
    assert answers["FROBNICATE"].status_code == 501
    assert answers["REGISTER"].status_code == 405
    assert "MESSAGE" in (answers["REGISTER"].get("Allow") or "")
    assert quiet(caller)
    assert quiet(callee)


def test_malformed_request_gets_400_and_the_stream_goes_on(roles: Roles) -> None:
    pair, caller, callee = roles
    caller.send_request(message_request(caller, "x"), pair.now)
    (frame,) = pair.take(caller)
    broken = frame.replace(b"Max-Forwards: 70\r\n", b"")
    events = pair.push([broken], callee)
    assert only(events, RequestReceived) == []
    (rejected,) = only(events, MessageRejected)
    assert rejected.status_code == 400
    (answer,) = only(pair.push(pair.take(callee), caller), ResponseReceived)
    assert answer.response.status_code == 400
    caller.send_request(message_request(caller, "fixed"), pair.now)
    (received,) = only(pair.events_of(pair.flush(), callee), RequestReceived)
    assert message_text(received.request) == "fixed"


def test_fatal_garbage_raises_after_answering(roles: Roles) -> None:
    pair, caller, callee = roles
    caller.send_request(message_request(caller, "x"), pair.now)
    (frame,) = pair.take(caller)
    callee.receive_data(frame.replace(b"Content-Length: 1", b"Content-Length: -1"))
    with pytest.raises(SipParseError) as info:
        callee.next_event()
    assert info.value.fatal
    (answer,) = callee.frames_to_send()
    assert answer.startswith(b"SIP/2.0 400 ")
    with pytest.raises(SipParseError):
        callee.next_event()


def test_requests_from_or_to_someone_else_are_refused(roles: Roles) -> None:
    pair, caller, callee = roles
    for old, new, code in (
        (str(caller.local_aor), "sip:mallory@anonsip.invalid", 403),
        (f"To: <{callee.local_aor}>", "To: <sip:carol@anonsip.invalid>", 404),
    ):
        caller.send_request(message_request(caller, "x"), pair.now)
        (frame,) = pair.take(caller)
        if code == 403:
            frame = frame.replace(f"From: <{old}>".encode(), f"From: <{new}>".encode())
        else:
            frame = frame.replace(old.encode(), new.encode())
        events = pair.push([frame], callee)
        assert only(events, RequestReceived) == []
        assert [e.status_code for e in only(events, MessageRejected)] == [code]
        (answer,) = only(pair.push(pair.take(callee), caller), ResponseReceived)
        assert answer.response.status_code == code


def test_unknown_dialog_481_and_cseq_backwards_500(roles: Roles) -> None:
    pair, caller, callee = roles
    _, incoming = _call(pair, caller, callee)
    callee.respond(incoming, 200)
    (ok,) = only(pair.events_of(pair.flush(), caller), ResponseReceived)
    assert ok.dialog is not None
    bye = bye_request(caller, ok.dialog)
    stale = Request(
        method="BYE",
        uri=bye.uri,
        headers=tuple(
            (k, v.replace(f"{bye.cseq.number} BYE", "1 BYE") if k == "CSeq" else v)
            for k, v in bye.headers
        ),
    )
    wrong = bye.with_replaced("To", str(bye.to.with_tag("nosuchtag"))).with_replaced(
        "Via", str(caller.new_via())
    )
    caller.send_request(stale, pair.now)
    caller.send_request(wrong, pair.now)
    seen = pair.flush()
    answers = only(pair.events_of(seen, caller), ResponseReceived)
    codes = sorted(e.response.status_code for e in answers)
    assert codes == [481, 500]
    assert only(pair.events_of(seen, callee), RequestReceived) == []


def test_presence_subscription_notify_and_refer(roles: Roles) -> None:
    pair, watcher, notifier = roles
    subscribe = subscribe_request(watcher, expires=600)
    watcher.send_request(subscribe, pair.now)
    (incoming,) = only(pair.events_of(pair.flush(), notifier), RequestReceived)
    assert incoming.request.event is not None
    assert incoming.request.event.value == "presence"
    sent = notifier.respond(incoming.request, 202, headers=(("Expires", "600"),))
    (accepted,) = only(pair.events_of(pair.flush(), watcher), ResponseReceived)
    assert accepted.response.status_code == 202
    assert accepted.dialog is not None
    assert accepted.dialog.usage == "SUBSCRIBE"
    dialog = notifier.dialog_of_response(sent)
    assert dialog is not None
    assert dialog.id.remote_tag == accepted.dialog.id.local_tag
    presence = Presence(
        entity=notifier.local_aor, availability=Availability.BUSY, note="in a <meeting> & away"
    )
    notifier.send_request(
        notify_request(notifier, dialog, pidf=encode_pidf(presence), expires=599), pair.now
    )
    (notify,) = only(pair.events_of(pair.flush(), watcher), RequestReceived)
    assert notify.dialog is accepted.dialog
    state = notify.request.subscription_state
    assert state is not None
    assert (state.value, state.param("expires")) == ("active", "599")
    assert parse_pidf(notify.request.body) == presence
    watcher.respond(notify.request, 200)
    pair.flush()
    # REFER inside the subscription's dialog is just another in-dialog request.
    watcher.send_request(
        refer_request(watcher, accepted.dialog, Uri(user="carol", host="anonsip.invalid")),
        pair.now,
    )
    (refer,) = only(pair.events_of(pair.flush(), notifier), RequestReceived)
    assert refer.request.refer_to is not None
    assert refer.request.refer_to.uri.user == "carol"
    notifier.respond(refer.request, 202)
    pair.flush()
    notifier.send_request(notify_request(notifier, dialog, pidf=None, reason="timeout"), pair.now)
    (final,) = only(pair.events_of(pair.flush(), watcher), RequestReceived)
    final_state = final.request.subscription_state
    assert final_state is not None
    assert (final_state.value, final_state.param("reason")) == ("terminated", "timeout")
    watcher.respond(final.request, 200)
    pair.flush()
    watcher.end_dialog(accepted.dialog)
    notifier.end_dialog(dialog)
    assert watcher.statistics()["dialogs"] == 0
    assert notifier.statistics()["dialogs"] == 0
    assert quiet(watcher)
    assert quiet(notifier)


def test_transport_failure_fails_pending_requests(roles: Roles) -> None:
    pair, caller, _ = roles
    request = message_request(caller, "x")
    caller.send_request(request, pair.now)
    caller.transport_closed()
    (failed,) = only(drain_events(caller), TransportFailed)
    assert failed.request == request
    assert quiet(caller)


def test_usage_errors(roles: Roles) -> None:
    pair, caller, _ = roles
    request = message_request(caller, "x")
    caller.send_request(request, pair.now)
    with pytest.raises(SipUsageError):
        caller.send_request(request, pair.now)
    with pytest.raises(SipUsageError):
        caller.send_request(request.with_replaced("Via", "SIP/2.0/TCP h;branch=old"), pair.now)


def test_identifiers_come_from_the_injected_rng() -> None:
    one, two = EndpointPair(seed=3), EndpointPair(seed=3)
    assert message_request(one.alice, "x") == message_request(two.alice, "x")
    assert one.alice.new_branch().startswith("z9hG4bK")
    assert message_request(one.alice, "x") != message_request(one.alice, "x")


def drain_events(endpoint: SipEndpoint) -> list[SipEvent]:
    out = []
    while (event := endpoint.next_event()) is not None:
        out.append(event)
    return out


def test_open_server_transactions_are_bounded(roles: Roles) -> None:
    pair, caller, callee = roles
    callee.max_transactions = 3
    for i in range(4):
        caller.send_request(message_request(caller, str(i)), pair.now)
    seen = pair.flush()
    assert len(only(pair.events_of(seen, callee), RequestReceived)) == 3
    (busy,) = only(pair.events_of(seen, caller), ResponseReceived)
    assert busy.response.status_code == 503
    assert callee.statistics()["server_transactions"] == 3
