"""The mapping between the call machine's signals and SIP messages (sans-IO).

The call machine (``_call``) speaks in abstract signals: ``Invite``,
``Bye``, ``Refer``, ``Notify``, ``Response``. This module turns the ones it
sends into SIP requests and response parts on a ``SipEndpoint`` (RFC 3261
INVITE/BYE, RFC 3264 re-INVITE for hold, RFC 3515 REFER with its
``message/sipfrag`` NOTIFYs) and the SIP requests that arrive in a call's
dialog back into signals. Everything a peer sent is parsed as hostile and
refused with ``RemoteProtocolError``. No I/O: the node's call service
sends what this builds.
"""

from __future__ import annotations

from anonsip._errors import LocalError, RemoteProtocolError
from anonsip.call._call import Bye, Invite, Method, Notify, Refer, Response, SignalEvent
from anonsip.call._sdp import SessionDescription
from anonsip.identity import Address, InvalidAddress
from anonsip.sip import (
    Dialog,
    Request,
    SipEndpoint,
    Uri,
    bye_request,
    invite_request,
    refer_request,
    reinvite_request,
)

__all__ = [
    "MAX_SIPFRAG",
    "SDP",
    "SIPFRAG",
    "method_of",
    "request_for",
    "response_parts",
    "signal_of",
    "sipfrag_status",
]

MAX_SIPFRAG = 256
SDP = "application/sdp"
SIPFRAG = "message/sipfrag;version=2.0"


def sipfrag_status(body: bytes) -> tuple[int, str]:
    """The status line of a message/sipfrag body (RFC 3420), e.g. ``SIP/2.0 200 OK``."""
    if len(body) > MAX_SIPFRAG:
        raise RemoteProtocolError("the transfer progress is too long")
    line = body.split(b"\r\n", 1)[0].split(b"\n", 1)[0]
    parts = line.decode("ascii", errors="replace").split(" ", 2)
    if len(parts) < 2 or parts[0] != "SIP/2.0" or not parts[1].isdigit() or len(parts[1]) != 3:
        raise RemoteProtocolError("the transfer progress is not a SIP status line")
    status = int(parts[1])
    if not 100 <= status <= 699:
        raise RemoteProtocolError("the transfer progress status is out of range")
    reason = parts[2] if len(parts) == 3 and parts[2].isprintable() else ""
    return status, reason[:64]


def method_of(message: SignalEvent) -> Method | None:
    """The SIP method a signal we send becomes (None: not a request)."""
    if isinstance(message, Invite):
        return Method.INVITE
    if isinstance(message, Bye):
        return Method.BYE
    if isinstance(message, Refer):
        return Method.REFER
    if isinstance(message, Notify):
        return Method.NOTIFY
    return None


def request_for(
    endpoint: SipEndpoint, message: SignalEvent, *, call_id: str, dialog: Dialog | None
) -> tuple[Request, Method]:
    """The SIP request for a signal the machine sends (a new INVITE gets ``call_id``)."""
    if isinstance(message, Invite) and not message.reinvite:
        request = invite_request(endpoint, message.offer.to_bytes())
        return request.with_replaced("Call-ID", call_id), Method.INVITE
    if dialog is None:
        raise LocalError("the call has no dialog yet")
    if isinstance(message, Invite):
        return reinvite_request(endpoint, dialog, message.offer.to_bytes()), Method.INVITE
    if isinstance(message, Bye):
        return bye_request(endpoint, dialog), Method.BYE
    if isinstance(message, Refer):
        target = Uri.parse(Address.parse(message.target).sip_uri)
        return refer_request(endpoint, dialog, target), Method.REFER
    if isinstance(message, Notify):
        final = message.status >= 200
        state = "terminated;reason=noresource" if final else "active;expires=60"
        frag = f"SIP/2.0 {message.status} {message.reason}".strip().encode()
        headers = (("Event", "refer"), ("Subscription-State", state), ("Content-Type", SIPFRAG))
        notify = endpoint.create_in_dialog(dialog, "NOTIFY", headers=headers, body=frag)
        return notify, Method.NOTIFY
    raise LocalError(f"the call machine asked for an unknown message {message!r}")


def response_parts(message: Response) -> tuple[tuple[tuple[str, str], ...], bytes]:
    """The headers and body of the response the machine sends (its SDP answer, if any)."""
    if message.answer is None:
        return (), b""
    return (("Content-Type", SDP),), message.answer.to_bytes()


def signal_of(request: Request) -> tuple[SignalEvent, Method]:
    """The signal for a request that arrived in a call's dialog."""
    method = request.method
    if method == "INVITE":
        offer = SessionDescription.parse(request.body)
        return Invite(offer=offer, reinvite=True), Method.INVITE
    if method == "BYE":
        return Bye(), Method.BYE
    if method == "REFER":
        refer_to = request.refer_to
        if refer_to is None:
            raise RemoteProtocolError("a REFER without Refer-To")
        try:
            target = Address.from_sip_uri(str(refer_to.uri)).text
        except InvalidAddress as exc:
            raise RemoteProtocolError(f"the transfer target is not an address: {exc}") from exc
        return Refer(target=target), Method.REFER
    if method == "NOTIFY":
        status, reason = sipfrag_status(request.body)
        return Notify(status=status, reason=reason), Method.NOTIFY
    raise RemoteProtocolError(f"{method} does not belong to a call")
