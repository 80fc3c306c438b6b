"""Two call machines joined by an in-memory link (pairs, not mocks)."""

from __future__ import annotations

import random
from collections.abc import Callable

import pytest

from anonsip import LocalError
from anonsip.call import (
    Ack,
    Bye,
    Call,
    CallEvent,
    CallState,
    Cancel,
    Direction,
    Ended,
    EndReason,
    IncomingCall,
    Invite,
    Method,
    MuteChanged,
    Notify,
    Refer,
    RemoteRinging,
    Response,
    Send,
    SessionDescription,
    StartMedia,
    StopMedia,
    TransferProgress,
    TransferRequested,
    UpdateMedia,
    _call,
)

S = CallState


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Pair:
    """Calls ``a`` and ``b``; messages wait in a queue per direction until delivered."""

    def __init__(
        self, *, ring_timeout_s: float = 60.0, b_ring_timeout_s: float | None = None
    ) -> None:
        self.clock = Clock()
        self.a = Call(
            clock=self.clock, rng=random.Random(1), ring_timeout_s=ring_timeout_s, glare_owner=True
        )
        self.b = Call(
            clock=self.clock,
            rng=random.Random(2),
            ring_timeout_s=b_ring_timeout_s or ring_timeout_s,
        )
        self.wire: dict[Call, list[object]] = {self.a: [], self.b: []}  # queued TO that call
        self.events: dict[Call, list[CallEvent]] = {self.a: [], self.b: []}
        self.sent: dict[Call, list[object]] = {self.a: [], self.b: []}

    def other(self, call: Call) -> Call:
        return self.b if call is self.a else self.a

    def do(self, call: Call, events: list[CallEvent]) -> list[CallEvent]:
        for event in events:
            if isinstance(event, Send):
                self.wire[self.other(call)].append(event.message)
                self.sent[call].append(event.message)
            else:
                self.events[call].append(event)
        return events

    def deliver_one(self, to: Call) -> None:
        message = self.wire[to].pop(0)
        self.do(to, to.received(message))  # type: ignore[arg-type]  # wire holds SignalEvents

    def flush(self) -> None:
        while self.wire[self.a] or self.wire[self.b]:
            for call in (self.a, self.b):
                if self.wire[call]:
                    self.deliver_one(call)

    def tick(self, seconds: float) -> None:
        self.clock.now += seconds
        for call in (self.a, self.b):
            self.do(call, call.timer(self.clock.now))

    def of(self, call: Call, kind: type) -> list[CallEvent]:
        return [e for e in self.events[call] if isinstance(e, kind)]

    def connect(self) -> None:
        self.do(self.a, self.a.user_call())
        self.flush()
        self.do(self.b, self.b.user_answer())
        self.flush()
        assert (self.a.state, self.b.state) == (S.ESTABLISHED, S.ESTABLISHED)


def statuses(messages: list[object]) -> list[int]:
    return [m.status for m in messages if isinstance(m, Response)]


# -- scenarios (each is also run by the coverage test at the end) ---------------


def basic_call_a_hangs_up() -> Pair:
    p = Pair()
    p.do(p.a, p.a.user_call())
    assert p.a.state is S.CALLING
    assert isinstance(p.wire[p.b][0], Invite)
    p.flush()
    assert p.b.state is S.INCOMING
    assert p.a.state is S.RINGBACK
    assert p.of(p.a, RemoteRinging)
    (incoming,) = p.of(p.b, IncomingCall)
    assert incoming.offer.direction is Direction.SENDRECV
    p.do(p.b, p.b.user_answer())
    assert p.b.state is S.ANSWERED
    (start_b,) = p.of(p.b, StartMedia)
    p.flush()
    (start_a,) = p.of(p.a, StartMedia)
    assert start_a == StartMedia(
        sample_rate=16000,
        frame_ms=20,
        bitrate=24000,
        direction=Direction.SENDRECV,
        caller=True,
        paths=2,
    )
    assert start_b == StartMedia(
        sample_rate=16000,
        frame_ms=20,
        bitrate=24000,
        direction=Direction.SENDRECV,
        caller=False,
        paths=2,
    )
    assert [type(m) for m in p.sent[p.a]] == [Invite, Ack]
    p.do(p.a, p.a.user_hangup())
    assert p.a.state is S.TERMINATING
    p.flush()
    assert p.of(p.a, Ended) == [Ended(reason=EndReason.HUNG_UP)]
    assert p.of(p.b, Ended) == [Ended(reason=EndReason.REMOTE_HUNG_UP)]
    # The side that hung up stops at once; the other plays what it still holds.
    assert p.of(p.a, StopMedia) == [StopMedia(play_out=False)]
    assert p.of(p.b, StopMedia) == [StopMedia(play_out=True)]
    assert statuses(p.sent[p.b]) == [180, 200, 200]
    return p


def callee_hangs_up() -> Pair:
    p = Pair()
    p.connect()
    p.do(p.b, p.b.user_hangup())
    p.flush()
    assert p.of(p.a, Ended) == [Ended(reason=EndReason.REMOTE_HUNG_UP)]
    assert p.of(p.b, Ended) == [Ended(reason=EndReason.HUNG_UP)]
    return p


def declined() -> Pair:
    p = Pair()
    p.do(p.a, p.a.user_call())
    p.flush()
    p.do(p.b, p.b.user_decline())
    p.flush()
    assert p.of(p.a, Ended) == [Ended(reason=EndReason.DECLINED, status=603)]
    assert p.of(p.b, Ended) == [Ended(reason=EndReason.DECLINED, status=603)]
    return p


def busy() -> Pair:
    p = Pair()
    p.do(p.a, p.a.user_call())
    p.flush()
    p.do(p.b, p.b.user_decline(busy=True))
    p.flush()
    assert p.of(p.a, Ended) == [Ended(reason=EndReason.BUSY, status=486)]
    return p


def callee_hangup_while_ringing_is_decline() -> Pair:
    p = Pair()
    p.do(p.a, p.a.user_call())
    p.flush()
    p.do(p.b, p.b.user_hangup())
    p.flush()
    assert p.of(p.a, Ended) == [Ended(reason=EndReason.DECLINED, status=603)]
    return p


def cancel_before_answer() -> Pair:
    p = Pair()
    p.do(p.a, p.a.user_call())
    p.flush()
    p.do(p.a, p.a.user_hangup())
    assert p.a.state is S.CANCELLING
    p.flush()
    assert p.of(p.a, Ended) == [Ended(reason=EndReason.CANCELLED, status=487)]
    assert p.of(p.b, Ended) == [Ended(reason=EndReason.REMOTE_CANCELLED, status=487)]
    assert statuses(p.sent[p.b]) == [180, 200, 487]
    assert not p.of(p.a, StartMedia)
    return p


def cancel_before_ringing() -> Pair:
    p = Pair()
    p.do(p.a, p.a.user_call())
    p.do(p.a, p.a.user_hangup())  # INVITE and CANCEL both in flight
    p.flush()
    assert p.of(p.a, Ended) == [Ended(reason=EndReason.CANCELLED, status=487)]
    return p


def cancel_crosses_200() -> Pair:
    p = Pair()
    p.do(p.a, p.a.user_call())
    p.flush()
    p.do(p.a, p.a.user_hangup())  # CANCEL in flight to b
    p.do(p.b, p.b.user_answer())  # 200 OK in flight to a
    p.flush()
    # The CANCEL changed nothing at b; a acknowledged the 200 and hung up.
    assert [type(m) for m in p.sent[p.a]] == [Invite, Cancel, Ack, Bye]
    assert statuses(p.sent[p.b]) == [180, 200, 200, 200]  # 180, INVITE, CANCEL, BYE
    assert p.of(p.b, Ended) == [Ended(reason=EndReason.REMOTE_HUNG_UP)]
    assert p.of(p.a, Ended) == [Ended(reason=EndReason.CANCELLED)]
    assert not p.of(p.a, StartMedia)
    return p


def ring_timeout_incoming() -> Pair:
    p = Pair(ring_timeout_s=90, b_ring_timeout_s=30)
    p.do(p.a, p.a.user_call())
    p.flush()
    p.tick(29)
    assert p.b.state is S.INCOMING
    p.tick(2)
    p.flush()
    assert p.of(p.a, Ended) == [Ended(reason=EndReason.NO_ANSWER, status=480)]
    assert p.of(p.b, Ended) == [Ended(reason=EndReason.NO_ANSWER, status=480)]
    return p


def ring_timeout_outgoing() -> Pair:
    p = Pair(ring_timeout_s=30, b_ring_timeout_s=90)
    p.do(p.a, p.a.user_call())
    p.flush()
    p.tick(31)
    assert p.a.state is S.CANCELLING
    p.flush()
    assert p.of(p.a, Ended) == [Ended(reason=EndReason.NO_ANSWER, status=487)]
    assert p.of(p.b, Ended) == [Ended(reason=EndReason.REMOTE_CANCELLED, status=487)]
    return p


def ring_timeout_no_response_at_all() -> Pair:
    p = Pair(ring_timeout_s=30)
    p.do(p.a, p.a.user_call())
    p.wire[p.b].clear()  # the INVITE never arrives
    p.tick(31)
    p.wire[p.b].clear()  # nor the CANCEL
    p.tick(_call.TIMER_B_S + 1)
    assert p.of(p.a, Ended) == [Ended(reason=EndReason.NO_ANSWER)]
    return p


def late_provisional_while_cancelling() -> Pair:
    p = Pair()
    p.do(p.a, p.a.user_call())
    p.deliver_one(p.b)  # b rings, 180 in flight
    p.do(p.a, p.a.user_hangup())
    p.flush()
    assert p.of(p.a, Ended) == [Ended(reason=EndReason.CANCELLED, status=487)]
    return p


def hold_and_resume() -> Pair:
    p = Pair()
    p.connect()
    p.do(p.a, p.a.user_hold())
    assert p.a.state is S.REINVITING
    p.flush()
    assert p.of(p.a, UpdateMedia)[-1] == UpdateMedia(direction=Direction.SENDONLY)
    assert p.of(p.b, UpdateMedia)[-1] == UpdateMedia(direction=Direction.RECVONLY)
    assert p.a.local_hold
    assert p.b.remote_hold
    assert p.a.user_hold() == []  # already on hold
    # b holds too: both inactive.
    p.do(p.b, p.b.user_hold())
    p.flush()
    assert p.of(p.b, UpdateMedia)[-1] == UpdateMedia(direction=Direction.INACTIVE)
    assert p.of(p.a, UpdateMedia)[-1] == UpdateMedia(direction=Direction.INACTIVE)
    p.do(p.a, p.a.user_resume())
    p.flush()
    assert p.of(p.a, UpdateMedia)[-1] == UpdateMedia(direction=Direction.RECVONLY)
    assert p.of(p.b, UpdateMedia)[-1] == UpdateMedia(direction=Direction.SENDONLY)
    p.do(p.b, p.b.user_resume())
    p.flush()
    assert p.of(p.a, UpdateMedia)[-1] == UpdateMedia(direction=Direction.SENDRECV)
    assert p.of(p.b, UpdateMedia)[-1] == UpdateMedia(direction=Direction.SENDRECV)
    assert (p.a.state, p.b.state) == (S.ESTABLISHED, S.ESTABLISHED)
    return p


def reinvite_glare() -> Pair:
    p = Pair()
    p.connect()
    p.do(p.a, p.a.user_hold())
    p.do(p.b, p.b.user_hold())  # both re-INVITEs cross
    p.flush()
    assert statuses(p.sent[p.a])[-1] == 491
    assert statuses(p.sent[p.b])[-1] == 491
    assert (p.a.state, p.b.state) == (S.REINVITE_BACKOFF, S.REINVITE_BACKOFF)
    assert p.a.deadline is not None
    assert p.b.deadline is not None
    # RFC 3261 14.1: the Call-ID owner (the caller) waits 2.1-4 s, the other 0-2 s.
    assert 2.1 <= p.a.deadline - p.clock.now <= 4.0
    assert 0.0 <= p.b.deadline - p.clock.now <= 2.0
    p.tick(p.b.deadline - p.clock.now)
    p.flush()
    assert p.a.state is S.REINVITE_BACKOFF
    assert p.a.remote_hold
    p.tick(p.a.deadline - p.clock.now)
    p.flush()
    assert p.a.local_hold
    assert p.b.local_hold
    assert p.of(p.a, UpdateMedia)[-1] == UpdateMedia(direction=Direction.INACTIVE)
    assert p.of(p.b, UpdateMedia)[-1] == UpdateMedia(direction=Direction.INACTIVE)
    return p


def reinvite_glare_wish_undone() -> Pair:
    p = Pair()
    p.connect()
    p.do(p.a, p.a.user_hold())
    p.do(p.b, p.b.user_hold())
    p.flush()
    p.do(p.a, p.a.user_resume())  # changed its mind during the backoff
    p.do(p.a, p.a.user_hold())
    p.do(p.a, p.a.user_resume())
    p.tick(5)
    p.flush()
    assert p.a.state is S.ESTABLISHED
    assert not p.a.local_hold
    assert p.b.local_hold
    return p


def reinvite_rejected_keeps_call() -> Pair:
    p = Pair()
    p.connect()
    p.do(p.a, p.a.user_hold())
    p.wire[p.b].clear()
    p.do(p.a, p.a.received(Response(status=500, method=Method.INVITE)))
    assert p.a.state is S.ESTABLISHED
    assert not p.a.local_hold
    return p


def hangup_during_reinvite_and_backoff() -> Pair:
    p = Pair()
    p.connect()
    p.do(p.a, p.a.user_hold())
    p.do(p.b, p.b.user_hold())
    p.flush()
    p.do(p.b, p.b.user_hangup())  # from the backoff
    p.flush()
    assert p.of(p.a, Ended) == [Ended(reason=EndReason.REMOTE_HUNG_UP)]
    q = Pair()
    q.connect()
    q.do(q.a, q.a.user_hold())
    q.do(q.a, q.a.user_hangup())  # while the re-INVITE is pending
    q.flush()
    assert q.of(q.b, Ended) == [Ended(reason=EndReason.REMOTE_HUNG_UP)]
    return p


def bye_while_reinviting() -> Pair:
    p = Pair()
    p.connect()
    p.do(p.a, p.a.user_hold())
    p.do(p.b, p.b.user_hangup())  # BYE crosses the re-INVITE
    p.flush()
    assert p.of(p.a, Ended) == [Ended(reason=EndReason.REMOTE_HUNG_UP)]
    assert p.of(p.b, Ended) == [Ended(reason=EndReason.HUNG_UP)]
    return p


def bye_in_backoff() -> Pair:
    p = Pair()
    p.connect()
    p.do(p.a, p.a.user_hold())
    p.do(p.b, p.b.user_hold())
    p.flush()
    p.tick(p.b.deadline - p.clock.now)  # type: ignore[operator]  # deadline is set while held
    p.do(p.b, p.b.user_hangup())
    p.flush()
    assert p.of(p.a, Ended) == [Ended(reason=EndReason.REMOTE_HUNG_UP)]
    return p


def crossing_byes() -> Pair:
    p = Pair()
    p.connect()
    p.do(p.a, p.a.user_hangup())
    p.do(p.b, p.b.user_hangup())
    p.flush()
    assert p.of(p.a, Ended) == [Ended(reason=EndReason.HUNG_UP)]
    assert p.of(p.b, Ended) == [Ended(reason=EndReason.HUNG_UP)]
    return p


def bye_unanswered_times_out() -> Pair:
    p = Pair()
    p.connect()
    p.do(p.a, p.a.user_hangup())
    p.wire[p.b].clear()
    p.tick(_call.TIMER_B_S + 1)
    assert p.of(p.a, Ended) == [Ended(reason=EndReason.HUNG_UP)]
    return p


def callee_hangs_up_before_ack() -> Pair:
    p = Pair()
    p.do(p.a, p.a.user_call())
    p.flush()
    p.do(p.b, p.b.user_answer())
    p.do(p.b, p.b.user_hangup())  # the ACK has not come yet
    assert p.b.state is S.ANSWERED
    assert not [m for m in p.sent[p.b] if isinstance(m, Bye)]
    p.flush()
    assert [type(m) for m in p.sent[p.b] if not isinstance(m, Response)] == [Bye]
    assert p.of(p.a, Ended) == [Ended(reason=EndReason.REMOTE_HUNG_UP)]
    return p


def ack_never_comes() -> Pair:
    p = Pair()
    p.do(p.a, p.a.user_call())
    p.flush()
    p.do(p.b, p.b.user_answer())
    p.wire[p.a].clear()  # the 200 is lost; no ACK
    p.tick(_call.TIMER_B_S + 1)
    assert p.b.state is S.TERMINATING
    assert isinstance(p.sent[p.b][-1], Bye)
    return p


def bye_before_ack() -> Pair:
    p = Pair()
    p.do(p.a, p.a.user_call())
    p.flush()
    p.do(p.b, p.b.user_answer())
    p.do(p.b, p.b.received(Bye()))
    assert p.of(p.b, Ended) == [Ended(reason=EndReason.REMOTE_HUNG_UP)]
    return p


def initial_invite_glare() -> Pair:
    p = Pair()
    p.do(p.a, p.a.user_call())
    p.do(p.b, p.b.user_call())  # both call each other at once
    p.flush()
    assert (p.a.state, p.b.state) == (S.GLARE_BACKOFF, S.GLARE_BACKOFF)
    assert statuses(p.sent[p.a]) == [491]
    assert statuses(p.sent[p.b]) == [491]
    # b (not the owner) retries first; a takes the call as incoming.
    p.tick(p.b.deadline - p.clock.now)  # type: ignore[operator]  # deadline is set while held
    p.flush()
    assert p.a.state is S.INCOMING
    assert p.b.state is S.RINGBACK
    p.do(p.a, p.a.user_answer())
    p.flush()
    assert (p.a.state, p.b.state) == (S.ESTABLISHED, S.ESTABLISHED)
    assert p.of(p.b, StartMedia)[0].caller
    assert not p.of(p.a, StartMedia)[0].caller
    return p


def give_up_during_glare_backoff() -> Pair:
    p = Pair()
    p.do(p.a, p.a.user_call())
    p.do(p.b, p.b.user_call())
    p.flush()
    p.do(p.a, p.a.user_hangup())
    assert p.of(p.a, Ended) == [Ended(reason=EndReason.CANCELLED)]
    p.tick(5)  # b retries; a's ended machine answers 481 (the node would make a new Call)
    p.flush()
    assert p.of(p.b, Ended) == [Ended(reason=EndReason.FAILED, status=481)]
    return p


def glare_owner_retries_when_alone() -> Pair:
    p = Pair()
    p.do(p.a, p.a.user_call())
    p.do(p.a, p.a.received(Response(status=491, method=Method.INVITE)))
    assert p.a.state is S.GLARE_BACKOFF
    p.wire[p.b].clear()
    p.tick(4.0)
    assert p.a.state is S.CALLING
    assert isinstance(p.wire[p.b][-1], Invite)
    p.flush()
    assert p.b.state is S.INCOMING
    return p


def call_fails_otherwise() -> Pair:
    p = Pair()
    p.do(p.a, p.a.user_call())
    p.wire[p.b].clear()
    p.do(p.a, p.a.received(Response(status=180, method=Method.INVITE)))
    p.do(p.a, p.a.received(Response(status=180, method=Method.INVITE)))
    p.do(p.a, p.a.received(Response(status=404, method=Method.INVITE)))
    assert p.of(p.a, Ended) == [Ended(reason=EndReason.FAILED, status=404)]
    q = Pair()
    q.do(q.a, q.a.user_call())
    q.do(q.a, q.a.received(Response(status=488, method=Method.INVITE)))
    assert q.of(q.a, Ended) == [Ended(reason=EndReason.NOT_ACCEPTABLE, status=488)]
    return p


def answer_without_sdp_is_refused() -> Pair:
    p = Pair()
    p.do(p.a, p.a.user_call())
    p.wire[p.b].clear()
    p.do(p.a, p.a.received(Response(status=200, method=Method.INVITE)))
    assert [type(m) for m in p.sent[p.a]] == [Invite, Ack, Bye]
    p.do(p.a, p.a.received(Response(status=200, method=Method.INVITE)))  # a retransmission
    p.do(p.a, p.a.received(Ack()))
    p.do(p.a, p.a.received(Response(status=481, method=Method.BYE)))
    assert p.of(p.a, Ended) == [Ended(reason=EndReason.NOT_ACCEPTABLE)]
    return p


def mute_is_local() -> Pair:
    p = Pair()
    with pytest.raises(LocalError, match="no call"):
        p.a.user_mute(True)
    p.connect()
    sent_before = len(p.sent[p.a])
    assert p.a.user_mute(True) == [MuteChanged(muted=True)]
    assert p.a.user_mute(True) == []
    assert p.a.user_mute(False) == [MuteChanged(muted=False)]
    assert len(p.sent[p.a]) == sent_before
    return p


def blind_transfer() -> Pair:
    p = Pair()
    p.connect()
    p.do(p.a, p.a.user_transfer("carol.onion"))
    p.flush()
    assert p.of(p.b, TransferRequested) == [TransferRequested(target="carol.onion")]
    assert statuses(p.sent[p.b])[-1] == 202
    p.do(p.b, p.b.transfer_progress(100, "Trying"))
    p.do(p.b, p.b.transfer_progress(180, "Ringing"))
    p.flush()
    assert [e.status for e in p.of(p.a, TransferProgress)] == [100, 180]
    p.do(p.b, p.b.transfer_progress(200, "OK"))
    p.flush()
    assert [e.status for e in p.of(p.a, TransferProgress)] == [100, 180, 200]
    assert p.of(p.a, Ended) == [Ended(reason=EndReason.TRANSFERRED)]
    assert p.of(p.b, Ended) == [Ended(reason=EndReason.REMOTE_HUNG_UP)]
    with pytest.raises(LocalError):
        p.b.transfer_progress(200)
    return p


def transfer_refused_or_failed() -> Pair:
    p = Pair()
    p.connect()
    p.do(p.a, p.a.user_transfer("carol.onion"))
    p.wire[p.b].clear()
    p.do(p.a, p.a.received(Response(status=603, method=Method.REFER)))
    assert p.of(p.a, TransferProgress) == [TransferProgress(status=603, reason="Decline")]
    assert p.a.state is S.ESTABLISHED
    p.do(p.a, p.a.received(Notify(status=486, reason="Busy Here")))
    assert p.a.state is S.ESTABLISHED
    with pytest.raises(LocalError):
        p.a.user_transfer("")
    return p


def notify_during_reinvite() -> Pair:
    p = Pair()
    p.connect()
    p.do(p.a, p.a.user_transfer("carol.onion"))
    p.flush()
    p.do(p.a, p.a.user_hold())
    p.do(p.b, p.b.transfer_progress(180))
    p.flush()
    assert p.of(p.a, TransferProgress)[-1].status == 180
    p.do(p.a, p.a.user_resume())
    p.do(p.b, p.b.transfer_progress(200))  # while a's resume re-INVITE is out
    p.flush()
    assert p.of(p.a, Ended) == [Ended(reason=EndReason.TRANSFERRED)]
    return p


def unexpected_inputs() -> Pair:
    p = Pair()
    with pytest.raises(LocalError, match="cannot answer while the call is idle"):
        p.a.user_answer()
    with pytest.raises(LocalError):
        p.a.user_hold()
    assert p.a.received(Bye()) == [Send(message=Response(status=481, method=Method.BYE))]
    assert p.a.received(Response(status=200, method=Method.BYE)) == []
    assert p.a.received(Ack()) == []
    assert p.a.timer(10**9) == []
    p.connect()
    offer = SessionDescription(session_id=5, version=1)
    assert p.b.received(Invite(offer=offer)) == [
        Send(message=Response(status=486, method=Method.INVITE))
    ]
    p.do(p.a, p.a.user_hangup())
    p.flush()
    assert p.a.user_hangup() == []
    assert p.a.received(Invite(offer=offer)) == [
        Send(message=Response(status=481, method=Method.INVITE))
    ]
    assert p.a.received(Cancel()) == [Send(message=Response(status=481, method=Method.CANCEL))]
    assert p.a.received(Refer(target="x")) == [
        Send(message=Response(status=481, method=Method.REFER))
    ]
    q = Pair()
    q.do(q.a, q.a.user_call())
    q.flush()
    q.do(q.b, q.b.user_answer())
    # A re-INVITE before the ACK: an offer is still open.
    assert q.b.received(Invite(offer=offer, reinvite=True)) == [
        Send(message=Response(status=491, method=Method.INVITE))
    ]
    assert q.b.received(Cancel()) == [Send(message=Response(status=200, method=Method.CANCEL))]
    return p


def late_cancel_after_ack() -> Pair:
    p = Pair()
    p.connect()
    assert p.b.received(Cancel()) == [Send(message=Response(status=200, method=Method.CANCEL))]
    assert p.b.state is S.ESTABLISHED
    return p


def glare_after_ringing() -> Pair:
    p = Pair()
    p.do(p.a, p.a.user_call())
    p.deliver_one(p.b)
    p.deliver_one(p.a)  # a hears ringing
    assert p.a.state is S.RINGBACK
    offer = SessionDescription(session_id=5, version=1)
    assert p.a.received(Invite(offer=offer)) == [
        Send(message=Response(status=491, method=Method.INVITE))
    ]
    p.wire[p.b].clear()
    p.do(p.a, p.a.received(Response(status=491, method=Method.INVITE)))
    assert p.a.state is S.GLARE_BACKOFF
    return p


def cancel_refused_with_other_failure() -> Pair:
    p = Pair()
    p.do(p.a, p.a.user_call())
    p.do(p.a, p.a.user_hangup())
    p.wire[p.b].clear()
    p.do(p.a, p.a.received(Response(status=603, method=Method.INVITE)))
    assert p.of(p.a, Ended) == [Ended(reason=EndReason.CANCELLED, status=603)]
    return p


def retransmissions_and_stray_acks() -> Pair:
    p = Pair()
    p.connect()
    answer = SessionDescription(session_id=5, version=1)
    # A retransmitted 200 for the INVITE is the transaction layer's; nothing happens.
    assert p.a.received(Response(status=200, method=Method.INVITE, answer=answer)) == []
    p.do(p.b, p.b.user_transfer("dave.onion"))
    p.flush()
    p.do(p.a, p.a.user_hold())
    assert p.a.received(Ack()) == []  # a stray ACK while our re-INVITE is out
    p.do(p.a, p.a.transfer_progress(100))  # a reports progress while re-INVITING
    p.flush()
    assert p.of(p.b, TransferProgress) == [TransferProgress(status=100)]
    return p


SCENARIOS: list[Callable[[], Pair]] = [
    glare_after_ringing,
    cancel_refused_with_other_failure,
    retransmissions_and_stray_acks,
    basic_call_a_hangs_up,
    callee_hangs_up,
    declined,
    busy,
    callee_hangup_while_ringing_is_decline,
    cancel_before_answer,
    cancel_before_ringing,
    cancel_crosses_200,
    ring_timeout_incoming,
    ring_timeout_outgoing,
    ring_timeout_no_response_at_all,
    late_provisional_while_cancelling,
    hold_and_resume,
    reinvite_glare,
    reinvite_glare_wish_undone,
    reinvite_rejected_keeps_call,
    hangup_during_reinvite_and_backoff,
    bye_while_reinviting,
    bye_in_backoff,
    crossing_byes,
    bye_unanswered_times_out,
    callee_hangs_up_before_ack,
    ack_never_comes,
    bye_before_ack,
    initial_invite_glare,
    give_up_during_glare_backoff,
    glare_owner_retries_when_alone,
    call_fails_otherwise,
    answer_without_sdp_is_refused,
    mute_is_local,
    blind_transfer,
    transfer_refused_or_failed,
    notify_during_reinvite,
    unexpected_inputs,
    late_cancel_after_ack,
]


@pytest.mark.parametrize("scenario", SCENARIOS, ids=lambda f: f.__name__)
def test_scenario(scenario: Callable[[], Pair]) -> None:
    scenario()


def test_every_transition_is_exercised(monkeypatch: pytest.MonkeyPatch) -> None:
    hit: set[tuple[CallState, str]] = set()
    original = Call._input

    def recording(self: Call, kind: str, data: object) -> list[CallEvent]:
        hit.add((self.state, kind))
        return original(self, kind, data)  # type: ignore[arg-type]  # data passes through untouched

    monkeypatch.setattr(Call, "_input", recording)
    for scenario in SCENARIOS:
        scenario()
    missing = sorted(set(_call._TRANSITIONS) - hit, key=str)
    assert missing == [], [(s.value, k) for s, k in missing]
