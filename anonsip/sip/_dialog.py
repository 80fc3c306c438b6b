"""SIP dialogs (RFC 3261 section 12), for INVITE sessions and subscriptions (RFC 6665 4.1.2).

A dialog is the peer-to-peer relationship a 1xx/2xx to INVITE or a 2xx to
SUBSCRIBE (or REFER, RFC 3515) sets up. It is identified by Call-ID, local
tag and remote tag, and owns the local and remote CSeq counters and the
remote target. Routes are ignored: every anonsip request goes straight down
the one secure channel to the peer, so the route set is always empty.

States follow RFC 3261 12.1 and 12.3: Early (a provisional with a To tag),
Confirmed (a 2xx), Terminated (a failure to the dialog-creating request, or
BYE). ``DIALOG_TRANSITIONS`` is the one table; ``_fire`` the one setter.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from anonsip.sip._errors import SipParseError, SipUsageError
from anonsip.sip._headers import MAX_CSEQ, NameAddr, Uri, Via
from anonsip.sip._message import Request, Response

TARGET_REFRESH = frozenset({"INVITE", "UPDATE", "SUBSCRIBE", "NOTIFY", "REFER"})


class DialogState(enum.Enum):
    EARLY = "early"
    CONFIRMED = "confirmed"
    TERMINATED = "terminated"


class DialogInput(enum.Enum):
    PROVISIONAL = "1xx with To tag"
    SUCCESS = "2xx"
    FAILURE = "failure to the creating request"
    END = "BYE, or the subscription ended"


DIALOG_TRANSITIONS: dict[tuple[DialogState, DialogInput], DialogState] = {
    (DialogState.EARLY, DialogInput.PROVISIONAL): DialogState.EARLY,
    (DialogState.EARLY, DialogInput.SUCCESS): DialogState.CONFIRMED,
    (DialogState.EARLY, DialogInput.FAILURE): DialogState.TERMINATED,
    (DialogState.EARLY, DialogInput.END): DialogState.TERMINATED,
    (DialogState.CONFIRMED, DialogInput.PROVISIONAL): DialogState.CONFIRMED,
    (DialogState.CONFIRMED, DialogInput.SUCCESS): DialogState.CONFIRMED,
    # A failed re-INVITE leaves the dialog up (RFC 3261 14.1).
    (DialogState.CONFIRMED, DialogInput.FAILURE): DialogState.CONFIRMED,
    (DialogState.CONFIRMED, DialogInput.END): DialogState.TERMINATED,
    (DialogState.TERMINATED, DialogInput.END): DialogState.TERMINATED,
}


@dataclass(frozen=True, kw_only=True)
class DialogId:
    """RFC 3261 12: Call-ID, local tag, remote tag (as seen from this side)."""

    call_id: str
    local_tag: str
    remote_tag: str


def _remote_target(message: Request | Response, fallback: Uri) -> Uri:
    contacts = message.contact
    return contacts[0].uri if contacts else fallback


class Dialog:
    """One dialog's state; ``SipEndpoint`` keeps these in a bounded table."""

    def __init__(
        self,
        *,
        call_id: str,
        local_tag: str,
        remote_tag: str,
        local_uri: NameAddr,
        remote_uri: NameAddr,
        local_target: Uri,
        remote_target: Uri,
        local_seq: int,
        remote_seq: int | None,
        usage: str,
        state: DialogState,
    ) -> None:
        self.call_id = call_id
        self.local_tag = local_tag
        self.remote_tag = remote_tag
        self.local_uri = local_uri
        self.remote_uri = remote_uri
        self.local_target = local_target
        self.remote_target = remote_target
        self.local_seq = local_seq
        self.remote_seq = remote_seq
        self.usage = usage
        self.state = state

    @property
    def id(self) -> DialogId:
        return DialogId(call_id=self.call_id, local_tag=self.local_tag, remote_tag=self.remote_tag)

    def __repr__(self) -> str:
        return f"<Dialog {self.usage} {self.state.value} call-id={self.call_id!r}>"

    @classmethod
    def from_uac(cls, request: Request, response: Response, local_target: Uri) -> Dialog:
        """The dialog a 1xx/2xx with a To tag creates at the caller (RFC 3261 12.1.2)."""
        to = response.to
        frm = request.from_
        if to.tag is None or frm.tag is None:
            raise SipParseError("a dialog-creating response needs tags in From and To")
        return cls(
            call_id=request.call_id,
            local_tag=frm.tag,
            remote_tag=to.tag,
            local_uri=frm,
            remote_uri=to,
            local_target=local_target,
            remote_target=_remote_target(response, to.uri),
            local_seq=request.cseq.number,
            remote_seq=None,
            usage=request.method,
            state=DialogState.EARLY if response.is_provisional else DialogState.CONFIRMED,
        )

    @classmethod
    def from_uas(cls, request: Request, response: Response, local_target: Uri) -> Dialog:
        """The dialog a 1xx/2xx creates at the callee (RFC 3261 12.1.1)."""
        to = response.to
        frm = request.from_
        if to.tag is None or frm.tag is None:
            raise SipParseError("a dialog-creating request needs a From tag")
        return cls(
            call_id=request.call_id,
            local_tag=to.tag,
            remote_tag=frm.tag,
            local_uri=to,
            remote_uri=frm,
            local_target=local_target,
            remote_target=_remote_target(request, frm.uri),
            local_seq=0,
            remote_seq=request.cseq.number,
            usage=request.method,
            state=DialogState.EARLY if response.is_provisional else DialogState.CONFIRMED,
        )

    # -- the one place state changes ------------------------------------

    def _fire(self, event: DialogInput) -> None:
        key = (self.state, event)
        if key in DIALOG_TRANSITIONS:
            self.state = DIALOG_TRANSITIONS[key]

    def on_response(self, response: Response) -> None:
        """A response to a request in (or creating) this dialog."""
        if response.is_provisional:
            self._fire(DialogInput.PROVISIONAL)
        elif response.is_success:
            self._fire(DialogInput.SUCCESS)
            if response.cseq.method in TARGET_REFRESH:
                self.remote_target = _remote_target(response, self.remote_target)
        else:
            self._fire(DialogInput.FAILURE)

    def end(self) -> None:
        self._fire(DialogInput.END)

    # -- requests -------------------------------------------------------

    def check_request(self, request: Request) -> int | None:
        """Accept a request from the peer in this dialog (RFC 3261 12.2.2).

        Returns the error status to answer with (500 for a CSeq going
        backwards), or ``None`` after updating the remote CSeq and target.
        """
        number = request.cseq.number
        if request.method in ("ACK", "CANCEL"):
            return None
        if self.remote_seq is not None and number <= self.remote_seq:
            return 500
        self.remote_seq = number
        if request.method in TARGET_REFRESH:
            self.remote_target = _remote_target(request, self.remote_target)
        return None

    def create_request(
        self,
        method: str,
        *,
        via: Via,
        headers: tuple[tuple[str, str], ...] = (),
        body: bytes = b"",
        max_forwards: int = 70,
    ) -> Request:
        """A request inside this dialog (RFC 3261 12.2.1.1); ACK and CANCEL excluded."""
        if method in ("ACK", "CANCEL"):
            raise SipUsageError(f"{method} is not built with create_request; see create_ack")
        if self.state is DialogState.TERMINATED:
            raise SipUsageError("the dialog has ended")
        if self.local_seq >= MAX_CSEQ:
            raise SipUsageError("the dialog's CSeq space is used up")
        self.local_seq += 1
        return self._request(method, self.local_seq, via, headers, body, max_forwards)

    def create_ack(self, invite: Request, *, via: Via) -> Request:
        """The ACK for a 2xx to ``invite`` (RFC 3261 13.2.2.4): same CSeq number."""
        return self._request("ACK", invite.cseq.number, via, (), b"", 70)

    def _request(
        self,
        method: str,
        number: int,
        via: Via,
        headers: tuple[tuple[str, str], ...],
        body: bytes,
        max_forwards: int,
    ) -> Request:
        base: list[tuple[str, str]] = [
            ("Via", str(via)),
            ("Max-Forwards", str(max_forwards)),
            ("From", str(self.local_uri.with_tag(self.local_tag))),
            ("To", str(self.remote_uri.with_tag(self.remote_tag))),
            ("Call-ID", self.call_id),
            ("CSeq", f"{number} {method}"),
        ]
        if method in TARGET_REFRESH:
            base.append(("Contact", f"<{self.local_target}>"))
        return Request(method=method, uri=self.remote_target, headers=(*base, *headers), body=body)
