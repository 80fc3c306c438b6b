"""SIP transactions: the four state machines of RFC 3261 section 17.

A transaction is one request and its responses. The machines are those of
RFC 3261 figures 5-8 (INVITE client 17.1.1, non-INVITE client 17.1.2,
INVITE server 17.2.1, non-INVITE server 17.2.2), adapted to the transport
anonsip has: one reliable, ordered, already-encrypted stream per peer.

* Nothing is ever retransmitted, so Timers A, E and G never fire.
* Timer B / F (64*T1) stay, as the transaction timeout.
* Timers D, I, J and K are zero on reliable transports (RFC 3261 17.1.1.2,
  17.1.2.2, 17.2.1, 17.2.2): the machine passes through Completed or
  Confirmed within the same step that entered it.
* Timer H (64*T1) bounds how long an INVITE server waits for the ACK of a
  failure response.
* After a CANCEL, an INVITE client in Proceeding waits at most 64*T1 for a
  final response (RFC 3261 9.1), then times out.

Every state change is one row of ``TRANSITIONS``; ``Transaction._fire`` is
the only code that assigns ``state``. The clock is whatever ``now`` the
driver passes; ``deadline`` says when ``on_timer`` must next be called.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from anonsip.sip._errors import SipUsageError
from anonsip.sip._message import Message, Request, Response


class Kind(enum.Enum):
    INVITE_CLIENT = "invite-client"
    NON_INVITE_CLIENT = "non-invite-client"
    INVITE_SERVER = "invite-server"
    NON_INVITE_SERVER = "non-invite-server"


class State(enum.Enum):
    CALLING = "Calling"
    TRYING = "Trying"
    PROCEEDING = "Proceeding"
    COMPLETED = "Completed"
    CONFIRMED = "Confirmed"
    TERMINATED = "Terminated"


class Input(enum.Enum):
    PROVISIONAL = "1xx"  # received (client) or sent by the TU (server)
    SUCCESS = "2xx"
    FAILURE = "300-699"
    REQUEST = "request retransmission"  # server only
    ACK = "ACK"  # INVITE server only
    TIMEOUT = "Timer B/F/H"
    CLEANUP = "Timer D/I/J/K"
    TRANSPORT_ERROR = "transport error"


_IC, _NIC, _IS, _NIS = Kind
_S = State
_I = Input

TRANSITIONS: dict[tuple[Kind, State, Input], State] = {
    # INVITE client, RFC 3261 figure 5
    (_IC, _S.CALLING, _I.PROVISIONAL): _S.PROCEEDING,
    (_IC, _S.CALLING, _I.SUCCESS): _S.TERMINATED,
    (_IC, _S.CALLING, _I.FAILURE): _S.COMPLETED,
    (_IC, _S.CALLING, _I.TIMEOUT): _S.TERMINATED,
    (_IC, _S.CALLING, _I.TRANSPORT_ERROR): _S.TERMINATED,
    (_IC, _S.PROCEEDING, _I.PROVISIONAL): _S.PROCEEDING,
    (_IC, _S.PROCEEDING, _I.SUCCESS): _S.TERMINATED,
    (_IC, _S.PROCEEDING, _I.FAILURE): _S.COMPLETED,
    (_IC, _S.PROCEEDING, _I.TIMEOUT): _S.TERMINATED,  # only armed by a CANCEL (9.1)
    (_IC, _S.PROCEEDING, _I.TRANSPORT_ERROR): _S.TERMINATED,
    (_IC, _S.COMPLETED, _I.FAILURE): _S.COMPLETED,
    (_IC, _S.COMPLETED, _I.CLEANUP): _S.TERMINATED,  # Timer D
    (_IC, _S.COMPLETED, _I.TRANSPORT_ERROR): _S.TERMINATED,
    # non-INVITE client, RFC 3261 figure 6
    (_NIC, _S.TRYING, _I.PROVISIONAL): _S.PROCEEDING,
    (_NIC, _S.TRYING, _I.SUCCESS): _S.COMPLETED,
    (_NIC, _S.TRYING, _I.FAILURE): _S.COMPLETED,
    (_NIC, _S.TRYING, _I.TIMEOUT): _S.TERMINATED,  # Timer F
    (_NIC, _S.TRYING, _I.TRANSPORT_ERROR): _S.TERMINATED,
    (_NIC, _S.PROCEEDING, _I.PROVISIONAL): _S.PROCEEDING,
    (_NIC, _S.PROCEEDING, _I.SUCCESS): _S.COMPLETED,
    (_NIC, _S.PROCEEDING, _I.FAILURE): _S.COMPLETED,
    (_NIC, _S.PROCEEDING, _I.TIMEOUT): _S.TERMINATED,  # Timer F
    (_NIC, _S.PROCEEDING, _I.TRANSPORT_ERROR): _S.TERMINATED,
    (_NIC, _S.COMPLETED, _I.CLEANUP): _S.TERMINATED,  # Timer K
    # INVITE server, RFC 3261 figure 7
    (_IS, _S.PROCEEDING, _I.REQUEST): _S.PROCEEDING,
    (_IS, _S.PROCEEDING, _I.PROVISIONAL): _S.PROCEEDING,
    (_IS, _S.PROCEEDING, _I.SUCCESS): _S.TERMINATED,
    (_IS, _S.PROCEEDING, _I.FAILURE): _S.COMPLETED,
    (_IS, _S.PROCEEDING, _I.TRANSPORT_ERROR): _S.TERMINATED,
    (_IS, _S.COMPLETED, _I.REQUEST): _S.COMPLETED,
    (_IS, _S.COMPLETED, _I.ACK): _S.CONFIRMED,
    (_IS, _S.COMPLETED, _I.TIMEOUT): _S.TERMINATED,  # Timer H
    (_IS, _S.COMPLETED, _I.TRANSPORT_ERROR): _S.TERMINATED,
    (_IS, _S.CONFIRMED, _I.ACK): _S.CONFIRMED,
    (_IS, _S.CONFIRMED, _I.CLEANUP): _S.TERMINATED,  # Timer I
    # non-INVITE server, RFC 3261 figure 8
    (_NIS, _S.TRYING, _I.REQUEST): _S.TRYING,
    (_NIS, _S.TRYING, _I.PROVISIONAL): _S.PROCEEDING,
    (_NIS, _S.TRYING, _I.SUCCESS): _S.COMPLETED,
    (_NIS, _S.TRYING, _I.FAILURE): _S.COMPLETED,
    (_NIS, _S.TRYING, _I.TRANSPORT_ERROR): _S.TERMINATED,
    (_NIS, _S.PROCEEDING, _I.REQUEST): _S.PROCEEDING,
    (_NIS, _S.PROCEEDING, _I.PROVISIONAL): _S.PROCEEDING,
    (_NIS, _S.PROCEEDING, _I.SUCCESS): _S.COMPLETED,
    (_NIS, _S.PROCEEDING, _I.FAILURE): _S.COMPLETED,
    (_NIS, _S.PROCEEDING, _I.TRANSPORT_ERROR): _S.TERMINATED,
    (_NIS, _S.COMPLETED, _I.REQUEST): _S.COMPLETED,
    (_NIS, _S.COMPLETED, _I.CLEANUP): _S.TERMINATED,  # Timer J
}

# Timers armed on entering a state: (T1 multiples, input fired). ``None``
# cancels the running timer; a state absent here keeps it (Timer F runs on
# from Trying into Proceeding).
ENTRY_TIMERS: dict[tuple[Kind, State], tuple[int, Input] | None] = {
    (_IC, _S.CALLING): (64, _I.TIMEOUT),  # Timer B
    (_IC, _S.PROCEEDING): None,
    (_IC, _S.COMPLETED): (0, _I.CLEANUP),  # Timer D, zero when reliable
    (_NIC, _S.TRYING): (64, _I.TIMEOUT),  # Timer F
    (_NIC, _S.COMPLETED): (0, _I.CLEANUP),  # Timer K
    (_IS, _S.PROCEEDING): None,
    (_IS, _S.COMPLETED): (64, _I.TIMEOUT),  # Timer H
    (_IS, _S.CONFIRMED): (0, _I.CLEANUP),  # Timer I
    (_NIS, _S.TRYING): None,
    (_NIS, _S.COMPLETED): (0, _I.CLEANUP),  # Timer J
}

INITIAL = {
    _IC: _S.CALLING,
    _NIC: _S.TRYING,
    _IS: _S.PROCEEDING,
    _NIS: _S.TRYING,
}


@dataclass(frozen=True, kw_only=True)
class Action:
    """Something a transaction asks its owner to do."""


@dataclass(frozen=True, kw_only=True)
class Send(Action):
    message: Message


@dataclass(frozen=True, kw_only=True)
class Deliver(Action):
    """Pass a response up to the transaction user (client transactions)."""

    response: Response


@dataclass(frozen=True, kw_only=True)
class TimedOut(Action):
    """Timer B, F or H fired, or the post-CANCEL wait ran out."""


@dataclass(frozen=True, kw_only=True)
class TransportFailed(Action):
    pass


def _classify(status_code: int) -> Input:
    if status_code < 200:
        return Input.PROVISIONAL
    if status_code < 300:
        return Input.SUCCESS
    return Input.FAILURE


class Transaction:
    """One of the four RFC 3261 section 17 machines, chosen by ``kind``."""

    def __init__(self, kind: Kind, request: Request, *, t1: float = 0.5) -> None:
        is_invite = request.method == "INVITE"
        if is_invite != (kind in (Kind.INVITE_CLIENT, Kind.INVITE_SERVER)):
            raise SipUsageError(f"{kind.value} transaction cannot carry {request.method}")
        self.kind = kind
        self.request = request
        self.t1 = t1
        self.state = INITIAL[kind]
        self.branch = request.top_via.branch or ""
        self.last_response: Response | None = None
        self.timer: tuple[float, Input] | None = None
        self.cancel_requested = False
        self.ack: Request | None = None

    @property
    def is_client(self) -> bool:
        return self.kind in (Kind.INVITE_CLIENT, Kind.NON_INVITE_CLIENT)

    @property
    def terminated(self) -> bool:
        return self.state is State.TERMINATED

    @property
    def deadline(self) -> float | None:
        return None if self.timer is None else self.timer[0]

    def start(self, now: float) -> list[Action]:
        """Begin: a client sends its request; both arm their first timer."""
        self._arm(self.state, now)
        return [Send(message=self.request)] if self.is_client else []

    # -- inputs ---------------------------------------------------------

    def receive_response(self, response: Response, now: float) -> list[Action]:
        """A response matched to this client transaction (RFC 3261 17.1.3)."""
        if not self.is_client:
            raise SipUsageError("a server transaction does not receive responses")
        event = _classify(response.status_code)
        if (self.kind, self.state, event) not in TRANSITIONS:
            return []  # a stray or late response: absorbed (17.1.1.2, 17.1.2.2)
        actions: list[Action] = []
        if self.state is State.COMPLETED:
            # A retransmitted failure: repeat the ACK, tell no one (17.1.1.2).
            if self.ack is not None:
                actions.append(Send(message=self.ack))
            self._fire(event, now)
            return actions
        actions.append(Deliver(response=response))
        if self.kind is Kind.INVITE_CLIENT and event is Input.FAILURE:
            self.ack = self._ack_for(response)
            actions.append(Send(message=self.ack))
        self._fire(event, now)
        return actions

    def receive_request(self, request: Request, now: float) -> list[Action]:
        """A retransmitted request, or the ACK of a failure, for this server transaction."""
        if self.is_client:
            raise SipUsageError("a client transaction does not receive requests")
        event = Input.ACK if request.method == "ACK" else Input.REQUEST
        if (self.kind, self.state, event) not in TRANSITIONS:
            return []
        self._fire(event, now)
        if event is Input.REQUEST and self.last_response is not None:
            return [Send(message=self.last_response)]
        return []

    def send_response(self, response: Response, now: float) -> list[Action]:
        """The transaction user answers (RFC 3261 17.2.1, 17.2.2)."""
        if self.is_client:
            raise SipUsageError("a client transaction does not send responses")
        event = _classify(response.status_code)
        if (self.kind, self.state, event) not in TRANSITIONS:
            raise SipUsageError(
                f"cannot send {response.status_code} in state {self.state.value}"
                f" of a {self.kind.value} transaction"
            )
        self.last_response = response
        self._fire(event, now)
        return [Send(message=response)]

    def on_timer(self, now: float) -> list[Action]:
        if self.timer is None or now < self.timer[0]:
            return []
        event = self.timer[1]
        self.timer = None
        self._fire(event, now)
        return [TimedOut()] if event is Input.TIMEOUT else []

    def transport_error(self, now: float) -> list[Action]:
        if (self.kind, self.state, Input.TRANSPORT_ERROR) not in TRANSITIONS:
            return []
        self._fire(Input.TRANSPORT_ERROR, now)
        return [TransportFailed()]

    def arm_cancel_timer(self, now: float) -> None:
        """After sending CANCEL: wait at most 64*T1 for the final response (9.1)."""
        self.cancel_requested = True
        if self.state is State.PROCEEDING:
            self.timer = (now + 64 * self.t1, Input.TIMEOUT)

    # -- the one place state changes ------------------------------------

    def _fire(self, event: Input, now: float) -> None:
        new = TRANSITIONS[(self.kind, self.state, event)]
        old, self.state = self.state, new
        if new is not old:
            self._arm(new, now)
        if new is State.TERMINATED:
            self.timer = None

    def _arm(self, state: State, now: float) -> None:
        key = (self.kind, state)
        if key not in ENTRY_TIMERS:
            return
        entry = ENTRY_TIMERS[key]
        if entry is None:
            self.timer = None
            return
        multiple, event = entry
        if multiple == 0:
            self.timer = None
            self._fire(event, now)  # reliable transport: the timer is zero
            return
        self.timer = (now + multiple * self.t1, event)

    def _ack_for(self, response: Response) -> Request:
        """The ACK a client transaction sends for a failure (RFC 3261 17.1.1.3)."""
        req = self.request
        headers: list[tuple[str, str]] = [("Via", str(req.top_via))]
        for name in ("Max-Forwards", "From", "Call-ID"):
            value = req.get(name)
            if value is not None:
                headers.append((name, value))
        to = response.get("To")
        if to is not None:
            headers.append(("To", to))
        headers.append(("CSeq", f"{req.cseq.number} ACK"))
        headers.extend(("Route", v) for v in req.get_all("Route"))
        return Request(method="ACK", uri=req.uri, headers=tuple(headers))
