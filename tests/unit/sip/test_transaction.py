"""The four RFC 3261 section 17 machines, row by row of the transition table."""

from __future__ import annotations

import itertools

import pytest

from anonsip.sip import Request, Response, SipUsageError, Uri, make_response
from anonsip.sip._transaction import (
    ENTRY_TIMERS,
    INITIAL,
    TRANSITIONS,
    Deliver,
    Input,
    Kind,
    Send,
    State,
    TimedOut,
    Transaction,
    TransportFailed,
)

T1 = 0.5
CODES = {Input.PROVISIONAL: 180, Input.SUCCESS: 200, Input.FAILURE: 486}


def request(method: str) -> Request:
    return Request(
        method=method,
        uri=Uri(user="bob", host="anonsip.invalid"),
        headers=(
            ("Via", "SIP/2.0/TCP anonsip.invalid;branch=z9hG4bKrow"),
            ("Max-Forwards", "70"),
            ("From", "<sip:alice@anonsip.invalid>;tag=a"),
            ("To", "<sip:bob@anonsip.invalid>"),
            ("Call-ID", "row"),
            ("CSeq", f"5 {method}"),
        ),
    )


def new(kind: Kind) -> Transaction:
    method = "INVITE" if kind in (Kind.INVITE_CLIENT, Kind.INVITE_SERVER) else "MESSAGE"
    return Transaction(kind, request(method), t1=T1)


def apply(tx: Transaction, event: Input, now: float) -> list[object]:
    if event in CODES:
        response = make_response(tx.request, CODES[event], to_tag="b")
        if tx.is_client:
            return list(tx.receive_response(response, now))
        return list(tx.send_response(response, now))
    if event is Input.REQUEST:
        return list(tx.receive_request(tx.request, now))
    if event is Input.ACK:
        ack = Request(method="ACK", uri=tx.request.uri, headers=tx.request.headers[:5])
        return list(tx.receive_request(ack.with_header("CSeq", "5 ACK"), now))
    if event in (Input.TIMEOUT, Input.CLEANUP):
        tx.timer = (now, event)
        return list(tx.on_timer(now))
    return list(tx.transport_error(now))


def settled(kind: Kind, source: State, target: State) -> State:
    """Where a row ends on a reliable transport: zero timers fire in the same step."""
    entry = ENTRY_TIMERS.get((kind, target))
    if target is not source and entry is not None and entry[0] == 0:
        return TRANSITIONS[(kind, target, entry[1])]
    return target


@pytest.mark.parametrize(
    ("kind", "source", "event"),
    sorted(TRANSITIONS, key=lambda k: (k[0].value, k[1].value, k[2].value)),
    ids=lambda v: getattr(v, "value", str(v)),
)
def test_every_transition(kind: Kind, source: State, event: Input) -> None:
    tx = new(kind)
    tx.start(0.0)
    # Test-only: Completed/Confirmed are left in the same step on a reliable
    # transport, so the machine is placed in the row's source state directly.
    tx.state = source
    apply(tx, event, 1.0)
    assert tx.state is settled(kind, source, TRANSITIONS[(kind, source, event)])
    if tx.state is State.TERMINATED:
        assert tx.deadline is None


@pytest.mark.parametrize(("kind", "event"), list(itertools.product(Kind, Input)))
def test_inputs_outside_the_table_change_nothing(kind: Kind, event: Input) -> None:
    for state in State:
        if (kind, state, event) in TRANSITIONS:
            continue
        tx = new(kind)
        tx.state = state
        if event in (Input.TIMEOUT, Input.CLEANUP):
            # Only the table arms timers, so none is running here.
            assert tx.on_timer(1e9) == []
        elif (not tx.is_client and event in CODES) or (
            tx.is_client and event in (Input.REQUEST, Input.ACK)
        ):
            with pytest.raises(SipUsageError):
                apply(tx, event, 1.0)
        else:
            assert apply(tx, event, 1.0) == []
        assert tx.state is state


def test_invite_client_failure_sends_the_ack_and_terminates() -> None:
    tx = new(Kind.INVITE_CLIENT)
    (send,) = tx.start(0.0)
    assert isinstance(send, Send)
    assert tx.deadline == 64 * T1  # Timer B
    response = make_response(tx.request, 486, to_tag="callee")
    actions = tx.receive_response(response, 1.0)
    assert isinstance(actions[0], Deliver)
    assert isinstance(actions[1], Send)
    ack = actions[1].message
    assert isinstance(ack, Request)
    assert ack.method == "ACK"
    assert ack.cseq.number == 5
    assert ack.to.tag == "callee"
    assert ack.top_via == tx.request.top_via
    assert tx.terminated


def test_timer_b_and_f() -> None:
    for kind in (Kind.INVITE_CLIENT, Kind.NON_INVITE_CLIENT):
        tx = new(kind)
        tx.start(10.0)
        assert tx.on_timer(10.0 + 64 * T1 - 0.001) == []
        assert tx.state is INITIAL[kind]
        assert [type(a) for a in tx.on_timer(10.0 + 64 * T1)] == [TimedOut]
        assert tx.terminated


def test_timer_f_survives_a_provisional_but_b_does_not() -> None:
    nic = new(Kind.NON_INVITE_CLIENT)
    nic.start(0.0)
    nic.receive_response(make_response(nic.request, 100), 1.0)
    assert nic.state is State.PROCEEDING
    assert nic.deadline == 64 * T1
    ic = new(Kind.INVITE_CLIENT)
    ic.start(0.0)
    ic.receive_response(make_response(ic.request, 180, to_tag="x"), 1.0)
    assert ic.state is State.PROCEEDING
    assert ic.deadline is None
    ic.arm_cancel_timer(2.0)
    assert ic.deadline == 2.0 + 64 * T1


def test_servers_resend_their_last_response_on_a_retransmission() -> None:
    for kind in (Kind.INVITE_SERVER, Kind.NON_INVITE_SERVER):
        tx = new(kind)
        tx.start(0.0)
        assert tx.receive_request(tx.request, 0.5) == []  # nothing sent yet
        provisional = make_response(tx.request, 180, to_tag="b")
        tx.send_response(provisional, 1.0)
        (again,) = tx.receive_request(tx.request, 1.5)
        assert isinstance(again, Send)
        assert again.message == provisional


def test_invite_server_timer_h_and_ack() -> None:
    tx = new(Kind.INVITE_SERVER)
    tx.start(0.0)
    tx.send_response(make_response(tx.request, 480, to_tag="b"), 1.0)
    assert tx.state is State.COMPLETED
    assert tx.deadline == 1.0 + 64 * T1  # Timer H
    ack = Request(method="ACK", uri=tx.request.uri, headers=tx.request.headers[:5])
    tx.receive_request(ack.with_header("CSeq", "5 ACK"), 2.0)
    assert tx.terminated  # Confirmed, then Timer I = 0
    lost = new(Kind.INVITE_SERVER)
    lost.start(0.0)
    lost.send_response(make_response(lost.request, 480, to_tag="b"), 1.0)
    assert [type(a) for a in lost.on_timer(1.0 + 64 * T1)] == [TimedOut]
    assert lost.terminated


def test_transport_error_terminates_every_live_state() -> None:
    tx = new(Kind.NON_INVITE_CLIENT)
    tx.start(0.0)
    assert [type(a) for a in tx.transport_error(1.0)] == [TransportFailed]
    assert tx.terminated
    assert tx.transport_error(2.0) == []


def test_wrong_kind_for_the_method_is_a_usage_error() -> None:
    with pytest.raises(SipUsageError):
        Transaction(Kind.INVITE_CLIENT, request("MESSAGE"))
    with pytest.raises(SipUsageError):
        Transaction(Kind.NON_INVITE_SERVER, request("INVITE"))
    server = new(Kind.NON_INVITE_SERVER)
    with pytest.raises(SipUsageError):
        server.receive_response(Response(status_code=200), 0.0)
    client = new(Kind.NON_INVITE_CLIENT)
    with pytest.raises(SipUsageError):
        client.send_response(Response(status_code=200), 0.0)
