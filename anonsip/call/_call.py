"""The state machine of one call's signalling: RFC 3261 INVITE dialogs, sans-IO.

It follows a user agent's view of RFC 3261: INVITE / 180 / 200 / ACK
(section 13), BYE (15), CANCEL before the final response (9; 487 for the
INVITE, and the CANCEL-crosses-200 race ends in ACK then BYE), 486 / 603 /
480 failures, re-INVITE for hold and resume with RFC 3264 directions,
491 Request Pending on glare with the section 14.1 random backoff, and
blind transfer with REFER (RFC 3515) and sipfrag NOTIFY progress. The
machine knows no SIP syntax: it consumes and produces abstract
``SignalEvent``s which the node maps to SIP requests and responses, and the
transaction layer (retransmissions, ACK for non-2xx, Timer B) lives there.

Inputs: ``user_*`` calls, ``received(event)``, ``timer(now)``. Outputs: a
list of ``CallEvent`` from every input. Time and randomness are injected
(``clock``, ``rng``). ``_TRANSITIONS`` is the one table of legal
(state, input) pairs; each handler returns the next state.
"""

from __future__ import annotations

import enum
import random
from collections.abc import Callable
from dataclasses import dataclass

from anonsip._errors import LocalError
from anonsip.call._sdp import (
    Direction,
    MediaPreferences,
    SessionDescription,
    negotiate_answer,
)

__all__ = [
    "Ack",
    "Bye",
    "Call",
    "CallEvent",
    "CallState",
    "Cancel",
    "EndReason",
    "Ended",
    "IncomingCall",
    "Invite",
    "Method",
    "MuteChanged",
    "Notify",
    "Refer",
    "RemoteRinging",
    "Response",
    "Send",
    "SignalEvent",
    "StartMedia",
    "StopMedia",
    "TransferProgress",
    "TransferRequested",
    "UpdateMedia",
]

# -- signalling events (what the node maps to and from SIP) ------------------


class Method(enum.Enum):
    INVITE = "INVITE"
    ACK = "ACK"
    BYE = "BYE"
    CANCEL = "CANCEL"
    REFER = "REFER"
    NOTIFY = "NOTIFY"


@dataclass(frozen=True, kw_only=True)
class SignalEvent:
    """A SIP request or response of this call, without syntax."""


@dataclass(frozen=True, kw_only=True)
class Invite(SignalEvent):
    offer: SessionDescription
    reinvite: bool = False  # inside the dialog (hold/resume) or a new call


@dataclass(frozen=True, kw_only=True)
class Ack(SignalEvent):
    pass


@dataclass(frozen=True, kw_only=True)
class Bye(SignalEvent):
    pass


@dataclass(frozen=True, kw_only=True)
class Cancel(SignalEvent):
    pass


@dataclass(frozen=True, kw_only=True)
class Refer(SignalEvent):
    target: str  # whom the transferee should call (a pseudonym address)


@dataclass(frozen=True, kw_only=True)
class Notify(SignalEvent):
    """Transfer progress as a message/sipfrag status line (RFC 3515 2.4.5)."""

    status: int
    reason: str = ""


REASONS = {
    180: "Ringing",
    200: "OK",
    202: "Accepted",
    480: "Temporarily Unavailable",
    481: "Call/Transaction Does Not Exist",
    486: "Busy Here",
    487: "Request Terminated",
    488: "Not Acceptable Here",
    491: "Request Pending",
    500: "Server Internal Error",
    603: "Decline",
}


@dataclass(frozen=True, kw_only=True)
class Response(SignalEvent):
    status: int
    method: Method
    answer: SessionDescription | None = None
    reason: str = ""

    def __post_init__(self) -> None:
        if not 100 <= self.status <= 699:
            raise LocalError(f"impossible SIP status {self.status}")
        if not self.reason:
            object.__setattr__(self, "reason", REASONS.get(self.status, ""))


# -- what the machine asks of the node and the UI ----------------------------


@dataclass(frozen=True, kw_only=True)
class CallEvent:
    """An output of the call machine."""


@dataclass(frozen=True, kw_only=True)
class Send(CallEvent):
    message: SignalEvent


@dataclass(frozen=True, kw_only=True)
class IncomingCall(CallEvent):
    offer: SessionDescription


@dataclass(frozen=True, kw_only=True)
class RemoteRinging(CallEvent):
    pass


@dataclass(frozen=True, kw_only=True)
class StartMedia(CallEvent):
    """Both sides agree; open the media stream with these parameters."""

    sample_rate: int
    frame_ms: int
    bitrate: int
    direction: Direction  # from this side's point of view
    caller: bool  # picks the media key direction
    paths: int = 1  # onion streams to carry it on


@dataclass(frozen=True, kw_only=True)
class UpdateMedia(CallEvent):
    direction: Direction


@dataclass(frozen=True, kw_only=True)
class StopMedia(CallEvent):
    # The peer hung up (its BYE came): what it said and we have not played
    # yet still plays, briefly, instead of being cut off.
    play_out: bool = False


@dataclass(frozen=True, kw_only=True)
class MuteChanged(CallEvent):
    muted: bool


@dataclass(frozen=True, kw_only=True)
class TransferRequested(CallEvent):
    """The peer asks us to call ``target`` (blind transfer); report with transfer_progress."""

    target: str


@dataclass(frozen=True, kw_only=True)
class TransferProgress(CallEvent):
    status: int
    reason: str = ""


class EndReason(enum.Enum):
    HUNG_UP = "hung-up"  # this side hung up
    REMOTE_HUNG_UP = "remote-hung-up"
    CANCELLED = "cancelled"  # this side gave up before an answer
    REMOTE_CANCELLED = "remote-cancelled"
    DECLINED = "declined"  # 603 either way
    BUSY = "busy"  # 486 either way
    NO_ANSWER = "no-answer"  # ring timeout (480)
    NOT_ACCEPTABLE = "not-acceptable"  # 488: no common media
    FAILED = "failed"  # another final failure
    TRANSFERRED = "transferred"


@dataclass(frozen=True, kw_only=True)
class Ended(CallEvent):
    reason: EndReason
    status: int | None = None


class CallState(enum.Enum):
    IDLE = "idle"
    CALLING = "calling"  # INVITE sent, nothing back yet
    RINGBACK = "ringback"  # 180 received
    GLARE_BACKOFF = "glare-backoff"  # our INVITE crossed theirs: wait, then retry
    INCOMING = "incoming"  # INVITE received, 180 sent
    ANSWERED = "answered"  # 200 sent, waiting for ACK
    ESTABLISHED = "established"
    REINVITING = "reinviting"  # our re-INVITE (hold/resume) is pending
    REINVITE_BACKOFF = "reinvite-backoff"  # re-INVITE glare: retry after a backoff
    CANCELLING = "cancelling"  # CANCEL sent, waiting for 487 (or a racing 200)
    TERMINATING = "terminating"  # BYE sent, waiting for its 200
    ENDED = "ended"


_S = CallState
_MEDIA_STATES = {_S.ANSWERED, _S.ESTABLISHED, _S.REINVITING, _S.REINVITE_BACKOFF}

# The one table: (state, input) -> handler. Inputs are user actions, the
# timer, or received events classified by ``_classify``.
_TRANSITIONS: dict[tuple[CallState, str], str] = {
    (_S.IDLE, "call"): "_send_invite",
    (_S.IDLE, "INVITE"): "_incoming",
    (_S.CALLING, "180"): "_ringing",
    (_S.CALLING, "2xx/INVITE"): "_answered_by_peer",
    (_S.CALLING, "491/INVITE"): "_glare_backoff",
    (_S.CALLING, "fail/INVITE"): "_call_failed",
    (_S.CALLING, "INVITE"): "_reject_glare",
    (_S.CALLING, "hangup"): "_cancel",
    (_S.CALLING, "timer"): "_ring_timeout_out",
    (_S.RINGBACK, "180"): "_stay",
    (_S.RINGBACK, "2xx/INVITE"): "_answered_by_peer",
    (_S.RINGBACK, "fail/INVITE"): "_call_failed",
    (_S.RINGBACK, "491/INVITE"): "_glare_backoff",
    (_S.RINGBACK, "INVITE"): "_reject_glare",
    (_S.RINGBACK, "hangup"): "_cancel",
    (_S.RINGBACK, "timer"): "_ring_timeout_out",
    (_S.GLARE_BACKOFF, "timer"): "_retry_invite",
    (_S.GLARE_BACKOFF, "INVITE"): "_incoming",
    (_S.GLARE_BACKOFF, "hangup"): "_give_up",
    (_S.INCOMING, "answer"): "_answer",
    (_S.INCOMING, "decline"): "_decline",
    (_S.INCOMING, "hangup"): "_decline",
    (_S.INCOMING, "CANCEL"): "_cancelled_by_peer",
    (_S.INCOMING, "timer"): "_ring_timeout_in",
    (_S.ANSWERED, "ACK"): "_acked",
    (_S.ANSWERED, "CANCEL"): "_cancel_too_late",
    (_S.ANSWERED, "BYE"): "_bye_received",
    (_S.ANSWERED, "hangup"): "_hangup_before_ack",
    (_S.ANSWERED, "timer"): "_ack_timeout",
    (_S.ESTABLISHED, "hangup"): "_send_bye",
    (_S.ESTABLISHED, "BYE"): "_bye_received",
    (_S.ESTABLISHED, "hold"): "_send_reinvite",
    (_S.ESTABLISHED, "resume"): "_send_reinvite",
    (_S.ESTABLISHED, "reINVITE"): "_answer_reinvite",
    (_S.ESTABLISHED, "ACK"): "_stay",
    (_S.ESTABLISHED, "CANCEL"): "_cancel_too_late",
    (_S.ESTABLISHED, "2xx/INVITE"): "_stay",
    (_S.ESTABLISHED, "transfer"): "_send_refer",
    (_S.ESTABLISHED, "REFER"): "_refer_received",
    (_S.ESTABLISHED, "progress"): "_send_notify",
    (_S.ESTABLISHED, "NOTIFY"): "_notify_received",
    (_S.ESTABLISHED, "2xx/REFER"): "_stay",
    (_S.ESTABLISHED, "fail/REFER"): "_refer_failed",
    (_S.ESTABLISHED, "2xx/NOTIFY"): "_stay",
    (_S.REINVITING, "2xx/INVITE"): "_reinvite_answered",
    (_S.REINVITING, "491/INVITE"): "_reinvite_backoff",
    (_S.REINVITING, "fail/INVITE"): "_reinvite_failed",
    (_S.REINVITING, "reINVITE"): "_reject_glare",
    (_S.REINVITING, "BYE"): "_bye_received",
    (_S.REINVITING, "hangup"): "_send_bye",
    (_S.REINVITING, "ACK"): "_stay",
    (_S.REINVITING, "NOTIFY"): "_notify_received",
    (_S.REINVITING, "progress"): "_send_notify",
    (_S.REINVITE_BACKOFF, "timer"): "_retry_reinvite",
    (_S.REINVITE_BACKOFF, "reINVITE"): "_answer_reinvite",
    (_S.REINVITE_BACKOFF, "ACK"): "_stay",
    (_S.REINVITE_BACKOFF, "BYE"): "_bye_received",
    (_S.REINVITE_BACKOFF, "hangup"): "_send_bye",
    (_S.REINVITE_BACKOFF, "hold"): "_want_hold",
    (_S.REINVITE_BACKOFF, "resume"): "_want_resume",
    (_S.CANCELLING, "487/INVITE"): "_cancel_done",
    (_S.CANCELLING, "fail/INVITE"): "_cancel_done",
    (_S.CANCELLING, "2xx/CANCEL"): "_stay",
    (_S.CANCELLING, "180"): "_stay",
    (_S.CANCELLING, "2xx/INVITE"): "_answered_while_cancelling",
    (_S.CANCELLING, "timer"): "_cancel_done",
    (_S.TERMINATING, "2xx/BYE"): "_bye_done",
    (_S.TERMINATING, "fail/BYE"): "_bye_done",
    (_S.TERMINATING, "BYE"): "_bye_crossed",
    (_S.TERMINATING, "timer"): "_bye_done",
    (_S.TERMINATING, "2xx/INVITE"): "_stay",
    (_S.TERMINATING, "ACK"): "_stay",
}

# Inputs that are legal in every media state without a state change.
_ANY_MEDIA_STATE = {"mute"}
_REQUESTS = {"INVITE", "reINVITE", "ACK", "BYE", "CANCEL", "REFER", "NOTIFY"}
_USER = {"call", "answer", "decline", "hangup", "hold", "resume", "transfer", "progress"}

TIMER_B_S = 32.0  # RFC 3261 Timer B / 64*T1: how long to wait for a final response
GLARE_OWNER_BACKOFF = (2.1, 4.0)  # RFC 3261 14.1, owner of the Call-ID
GLARE_OTHER_BACKOFF = (0.0, 2.0)


def _classify(message: SignalEvent) -> str:
    if isinstance(message, Invite):
        return "reINVITE" if message.reinvite else "INVITE"
    if isinstance(message, Response):
        if message.status < 200:
            return "180" if message.method is Method.INVITE else "1xx"
        method = message.method.value
        if message.status < 300:
            return f"2xx/{method}"
        if message.method is Method.INVITE and message.status in (487, 491):
            return f"{message.status}/INVITE"
        return f"fail/{method}"
    return {Ack: "ACK", Bye: "BYE", Cancel: "CANCEL", Refer: "REFER", Notify: "NOTIFY"}[
        type(message)
    ]


_FAILURE_REASONS = {
    486: EndReason.BUSY,
    600: EndReason.BUSY,
    603: EndReason.DECLINED,
    480: EndReason.NO_ANSWER,
    408: EndReason.NO_ANSWER,
    488: EndReason.NOT_ACCEPTABLE,
    606: EndReason.NOT_ACCEPTABLE,
}


@dataclass
class _Pending:
    """Data an input carries to its handler."""

    message: SignalEvent | None = None
    busy: bool = False
    target: str = ""
    status: int = 0
    reason: str = ""


class Call:
    """One call, from this side. Every input returns the events it caused."""

    def __init__(
        self,
        *,
        clock: Callable[[], float],
        rng: random.Random,
        preferences: MediaPreferences | None = None,
        ring_timeout_s: float = 60.0,
        glare_owner: bool = False,
    ) -> None:
        """``glare_owner`` picks the longer backoff when two first INVITEs cross;
        the node sets it on exactly one side (e.g. the larger public key)."""
        self._clock = clock
        self._rng = rng
        self.preferences = preferences or MediaPreferences()
        self.ring_timeout_s = ring_timeout_s
        self._glare_owner = glare_owner
        self.state = CallState.IDLE
        self.caller = False
        self.deadline: float | None = None
        self.local_hold = False
        self.remote_hold = False
        self.muted = False
        self.ended: Ended | None = None
        self._session_id = rng.randrange(1, 1 << 62)
        self._version = 0
        self._remote: SessionDescription | None = None
        self._local: SessionDescription | None = None
        self._hangup_after_ack = False
        self._end_reason = EndReason.HUNG_UP
        self._transferring = False
        self._pending_hold = False

    # -- inputs ----------------------------------------------------------------

    def user_call(self) -> list[CallEvent]:
        return self._input("call", _Pending())

    def user_answer(self) -> list[CallEvent]:
        return self._input("answer", _Pending())

    def user_decline(self, *, busy: bool = False) -> list[CallEvent]:
        return self._input("decline", _Pending(busy=busy))

    def user_hangup(self) -> list[CallEvent]:
        if self.state is CallState.ENDED:
            return []
        return self._input("hangup", _Pending())

    def user_hold(self) -> list[CallEvent]:
        """Put the peer on hold with a re-INVITE (a=sendonly or a=inactive)."""
        if self._wanted_hold():
            return []
        return self._input("hold", _Pending())

    def user_resume(self) -> list[CallEvent]:
        if not self._wanted_hold():
            return []
        return self._input("resume", _Pending())

    def _wanted_hold(self) -> bool:
        if self.state is CallState.REINVITE_BACKOFF:
            return self._pending_hold
        return self.local_hold

    def user_mute(self, muted: bool) -> list[CallEvent]:
        """Local only: the media keeps flowing as encoded silence, nothing is signalled."""
        if self.state not in _MEDIA_STATES:
            raise LocalError("there is no call in progress to mute")
        if muted == self.muted:
            return []
        self.muted = muted
        return [MuteChanged(muted=muted)]

    def user_transfer(self, target: str) -> list[CallEvent]:
        if not target:
            raise LocalError("a transfer needs a target address")
        return self._input("transfer", _Pending(target=target))

    def transfer_progress(self, status: int, reason: str = "") -> list[CallEvent]:
        """Report how the call to the transfer target goes (transferee side)."""
        if not self._transferring:
            raise LocalError("no transfer was requested on this call")
        return self._input("progress", _Pending(status=status, reason=reason))

    def received(self, message: SignalEvent) -> list[CallEvent]:
        return self._input(_classify(message), _Pending(message=message))

    def timer(self, now: float) -> list[CallEvent]:
        if self.deadline is None or now < self.deadline:
            return []
        self.deadline = None
        return self._input("timer", _Pending())

    # -- dispatch --------------------------------------------------------------

    def _input(self, kind: str, data: _Pending) -> list[CallEvent]:
        handler_name = _TRANSITIONS.get((self.state, kind))
        if handler_name is None:
            return self._not_allowed(kind, data)
        out: list[CallEvent] = []
        handler: Callable[[_Pending, list[CallEvent]], CallState] = getattr(self, handler_name)
        self.state = handler(data, out)
        return out

    def _not_allowed(self, kind: str, data: _Pending) -> list[CallEvent]:
        if kind in _USER:
            raise LocalError(f"cannot {kind} while the call is {self.state.value}")
        if kind in ("INVITE", "reINVITE") and self.state is not CallState.ENDED:
            # A new call on a busy machine, or a re-INVITE before the dialog exists.
            return [
                Send(
                    message=Response(
                        status=491 if kind == "reINVITE" else 486, method=Method.INVITE
                    )
                )
            ]
        if kind in _REQUESTS and kind != "ACK":
            method = Method(kind.removeprefix("re"))
            return [Send(message=Response(status=481, method=method))]
        return []  # a stray response or ACK: the transaction layer's business

    def _end(self, out: list[CallEvent], reason: EndReason, status: int | None = None) -> CallState:
        self.ended = Ended(reason=reason, status=status)
        self.deadline = None
        out.append(self.ended)
        return CallState.ENDED

    def _offer(self) -> SessionDescription:
        self._version += 1
        p = self.preferences
        # RFC 3264 8.4: the holder stops receiving (sendonly); a held side
        # that holds too offers inactive.
        direction = Direction.of(send=not self.remote_hold, receive=not self.local_hold)
        self._local = SessionDescription(
            session_id=self._session_id,
            version=self._version,
            sample_rate=p.sample_rate,
            frame_ms=p.frame_ms,
            bitrate=p.bitrate,
            direction=direction,
            paths=p.paths,
        )
        return self._local

    def _start_media(self, local: SessionDescription, remote: SessionDescription) -> StartMedia:
        return StartMedia(
            sample_rate=min(local.sample_rate, remote.sample_rate),
            frame_ms=remote.frame_ms if self.caller else local.frame_ms,
            bitrate=min(local.bitrate, remote.bitrate),
            direction=Direction.of(
                send=local.direction.sends and remote.direction.receives,
                receive=local.direction.receives and remote.direction.sends,
            ),
            caller=self.caller,
            paths=min(local.paths, remote.paths),
        )

    def _backoff(self, owner: bool) -> float:
        low, high = GLARE_OWNER_BACKOFF if owner else GLARE_OTHER_BACKOFF
        return self._clock() + self._rng.uniform(low, high)

    # -- handlers: outgoing call -----------------------------------------------

    def _stay(self, data: _Pending, out: list[CallEvent]) -> CallState:
        return self.state

    def _send_invite(self, data: _Pending, out: list[CallEvent]) -> CallState:
        self.caller = True
        out.append(Send(message=Invite(offer=self._offer())))
        self.deadline = self._clock() + self.ring_timeout_s
        return CallState.CALLING

    def _ringing(self, data: _Pending, out: list[CallEvent]) -> CallState:
        out.append(RemoteRinging())
        return CallState.RINGBACK

    def _answered_by_peer(self, data: _Pending, out: list[CallEvent]) -> CallState:
        assert isinstance(data.message, Response)
        out.append(Send(message=Ack()))
        answer = data.message.answer
        if answer is None or self._local is None:
            out.append(Send(message=Bye()))
            self._end_reason = EndReason.NOT_ACCEPTABLE
            self.deadline = self._clock() + TIMER_B_S
            return CallState.TERMINATING
        self._remote = answer
        self.remote_hold = not answer.direction.receives
        self.deadline = None
        out.append(self._start_media(self._local, answer))
        return CallState.ESTABLISHED

    def _call_failed(self, data: _Pending, out: list[CallEvent]) -> CallState:
        assert isinstance(data.message, Response)
        status = data.message.status
        return self._end(out, _FAILURE_REASONS.get(status, EndReason.FAILED), status)

    def _reject_glare(self, data: _Pending, out: list[CallEvent]) -> CallState:
        out.append(Send(message=Response(status=491, method=Method.INVITE)))
        return self.state

    def _glare_backoff(self, data: _Pending, out: list[CallEvent]) -> CallState:
        self.deadline = self._backoff(self._glare_owner)
        return CallState.GLARE_BACKOFF

    def _retry_invite(self, data: _Pending, out: list[CallEvent]) -> CallState:
        return self._send_invite(data, out)

    def _give_up(self, data: _Pending, out: list[CallEvent]) -> CallState:
        return self._end(out, EndReason.CANCELLED)

    def _cancel(self, data: _Pending, out: list[CallEvent]) -> CallState:
        out.append(Send(message=Cancel()))
        self._end_reason = EndReason.CANCELLED
        self.deadline = self._clock() + TIMER_B_S
        return CallState.CANCELLING

    def _ring_timeout_out(self, data: _Pending, out: list[CallEvent]) -> CallState:
        state = self._cancel(data, out)
        self._end_reason = EndReason.NO_ANSWER
        return state

    def _cancel_done(self, data: _Pending, out: list[CallEvent]) -> CallState:
        status = data.message.status if isinstance(data.message, Response) else None
        return self._end(out, self._end_reason, status)

    def _answered_while_cancelling(self, data: _Pending, out: list[CallEvent]) -> CallState:
        # RFC 3261 9.1: the 200 won the race against our CANCEL; the call
        # exists now, so acknowledge it and hang up at once.
        out.append(Send(message=Ack()))
        out.append(Send(message=Bye()))
        self.deadline = self._clock() + TIMER_B_S
        return CallState.TERMINATING

    # -- handlers: incoming call -----------------------------------------------

    def _incoming(self, data: _Pending, out: list[CallEvent]) -> CallState:
        assert isinstance(data.message, Invite)
        offer = data.message.offer
        self.caller = False
        self._remote = offer
        self.remote_hold = not offer.direction.receives
        out.append(Send(message=Response(status=180, method=Method.INVITE)))
        out.append(IncomingCall(offer=offer))
        self.deadline = self._clock() + self.ring_timeout_s
        return CallState.INCOMING

    def _answer(self, data: _Pending, out: list[CallEvent]) -> CallState:
        assert self._remote is not None
        self._version += 1
        self._local = negotiate_answer(
            self._remote,
            self.preferences,
            session_id=self._session_id,
            version=self._version,
            local_hold=self.local_hold,
        )
        out.append(Send(message=Response(status=200, method=Method.INVITE, answer=self._local)))
        out.append(self._start_media(self._local, self._remote))
        self.deadline = self._clock() + TIMER_B_S
        return CallState.ANSWERED

    def _decline(self, data: _Pending, out: list[CallEvent]) -> CallState:
        status = 486 if data.busy else 603
        out.append(Send(message=Response(status=status, method=Method.INVITE)))
        return self._end(out, EndReason.BUSY if data.busy else EndReason.DECLINED, status)

    def _cancelled_by_peer(self, data: _Pending, out: list[CallEvent]) -> CallState:
        out.append(Send(message=Response(status=200, method=Method.CANCEL)))
        out.append(Send(message=Response(status=487, method=Method.INVITE)))
        return self._end(out, EndReason.REMOTE_CANCELLED, 487)

    def _ring_timeout_in(self, data: _Pending, out: list[CallEvent]) -> CallState:
        out.append(Send(message=Response(status=480, method=Method.INVITE)))
        return self._end(out, EndReason.NO_ANSWER, 480)

    def _acked(self, data: _Pending, out: list[CallEvent]) -> CallState:
        self.deadline = None
        if self._hangup_after_ack:
            return self._send_bye(data, out)
        return CallState.ESTABLISHED

    def _cancel_too_late(self, data: _Pending, out: list[CallEvent]) -> CallState:
        # RFC 3261 9.2: the INVITE already has its final response; the
        # CANCEL is answered but changes nothing.
        out.append(Send(message=Response(status=200, method=Method.CANCEL)))
        return self.state

    def _hangup_before_ack(self, data: _Pending, out: list[CallEvent]) -> CallState:
        # RFC 3261 15: the callee must not send BYE before the ACK arrives.
        self._hangup_after_ack = True
        return self.state

    def _ack_timeout(self, data: _Pending, out: list[CallEvent]) -> CallState:
        return self._send_bye(data, out)

    # -- handlers: established dialog ------------------------------------------

    def _send_bye(self, data: _Pending, out: list[CallEvent]) -> CallState:
        out.append(Send(message=Bye()))
        out.append(StopMedia())
        self.deadline = self._clock() + TIMER_B_S
        return CallState.TERMINATING

    def _bye_received(self, data: _Pending, out: list[CallEvent]) -> CallState:
        out.append(Send(message=Response(status=200, method=Method.BYE)))
        out.append(StopMedia(play_out=True))
        return self._end(out, EndReason.REMOTE_HUNG_UP)

    def _bye_crossed(self, data: _Pending, out: list[CallEvent]) -> CallState:
        out.append(Send(message=Response(status=200, method=Method.BYE)))
        return self.state

    def _bye_done(self, data: _Pending, out: list[CallEvent]) -> CallState:
        return self._end(out, self._end_reason)

    def _send_reinvite(self, data: _Pending, out: list[CallEvent]) -> CallState:
        self._pending_hold = not self.local_hold
        return self._reinvite_now(out)

    def _reinvite_now(self, out: list[CallEvent]) -> CallState:
        was = self.local_hold
        self.local_hold = self._pending_hold
        offer = self._offer()
        self.local_hold = was  # only an answer makes the change real
        out.append(Send(message=Invite(offer=offer, reinvite=True)))
        return CallState.REINVITING

    def _reinvite_answered(self, data: _Pending, out: list[CallEvent]) -> CallState:
        assert isinstance(data.message, Response)
        out.append(Send(message=Ack()))
        answer = data.message.answer
        if answer is not None and self._local is not None:
            self.local_hold = self._pending_hold
            self.remote_hold = not answer.direction.receives
            self._remote = answer
            out.append(UpdateMedia(direction=self._start_media(self._local, answer).direction))
        return CallState.ESTABLISHED

    def _reinvite_failed(self, data: _Pending, out: list[CallEvent]) -> CallState:
        # RFC 3261 14.1: a failed re-INVITE leaves the session as it was.
        return CallState.ESTABLISHED

    def _reinvite_backoff(self, data: _Pending, out: list[CallEvent]) -> CallState:
        self.deadline = self._backoff(self.caller)
        return CallState.REINVITE_BACKOFF

    def _retry_reinvite(self, data: _Pending, out: list[CallEvent]) -> CallState:
        if self._pending_hold == self.local_hold:
            return CallState.ESTABLISHED  # the wish was undone meanwhile
        return self._reinvite_now(out)

    def _want_hold(self, data: _Pending, out: list[CallEvent]) -> CallState:
        self._pending_hold = True
        return self.state

    def _want_resume(self, data: _Pending, out: list[CallEvent]) -> CallState:
        self._pending_hold = False
        return self.state

    def _answer_reinvite(self, data: _Pending, out: list[CallEvent]) -> CallState:
        assert isinstance(data.message, Invite)
        offer = data.message.offer
        self._remote = offer
        self.remote_hold = not offer.direction.receives
        self._version += 1
        self._local = negotiate_answer(
            offer,
            self.preferences,
            session_id=self._session_id,
            version=self._version,
            local_hold=self.local_hold,
        )
        out.append(Send(message=Response(status=200, method=Method.INVITE, answer=self._local)))
        out.append(UpdateMedia(direction=self._local.direction))
        return self.state

    def _send_refer(self, data: _Pending, out: list[CallEvent]) -> CallState:
        out.append(Send(message=Refer(target=data.target)))
        return self.state

    def _refer_received(self, data: _Pending, out: list[CallEvent]) -> CallState:
        assert isinstance(data.message, Refer)
        self._transferring = True
        out.append(Send(message=Response(status=202, method=Method.REFER)))
        out.append(TransferRequested(target=data.message.target))
        return self.state

    def _send_notify(self, data: _Pending, out: list[CallEvent]) -> CallState:
        out.append(Send(message=Notify(status=data.status, reason=data.reason)))
        if data.status >= 200:
            self._transferring = False
        return self.state

    def _notify_received(self, data: _Pending, out: list[CallEvent]) -> CallState:
        assert isinstance(data.message, Notify)
        status = data.message.status
        out.append(Send(message=Response(status=200, method=Method.NOTIFY)))
        out.append(TransferProgress(status=status, reason=data.message.reason))
        if 200 <= status < 300:
            # Blind transfer succeeded (RFC 5589 6.1): the transferor leaves.
            self._end_reason = EndReason.TRANSFERRED
            return self._send_bye(data, out)
        return self.state

    def _refer_failed(self, data: _Pending, out: list[CallEvent]) -> CallState:
        assert isinstance(data.message, Response)
        out.append(TransferProgress(status=data.message.status, reason=data.message.reason))
        return self.state
