"""Requests the node sends, built on a ``SipEndpoint`` or a ``Dialog``.

MESSAGE (RFC 3428: a text/plain body; a 200 or 202 is the delivery
receipt), OPTIONS (RFC 3261 11), INVITE with an SDP offer (RFC 3261 13,
RFC 3264), BYE (15), SUBSCRIBE / NOTIFY for presence (RFC 6665, RFC 3856,
PIDF bodies from ``_pidf``), REFER (RFC 3515). ACK and CANCEL are made by
the endpoint itself (``SipEndpoint.cancel``, automatic 2xx ACK).
"""

from __future__ import annotations

from anonsip.sip._dialog import Dialog
from anonsip.sip._endpoint import SipEndpoint
from anonsip.sip._errors import SipParseError
from anonsip.sip._headers import NameAddr, Uri
from anonsip.sip._message import Request
from anonsip.sip._pidf import PIDF_CONTENT_TYPE

TEXT_PLAIN = "text/plain;charset=utf-8"
SDP = "application/sdp"
MAX_MESSAGE_TEXT = 16384


def message_request(endpoint: SipEndpoint, text: str) -> Request:
    """An instant message (RFC 3428 section 4)."""
    body = text.encode("utf-8")
    return endpoint.create_request("MESSAGE", headers=(("Content-Type", TEXT_PLAIN),), body=body)


def message_text(request: Request) -> str:
    """The text of a received MESSAGE; ``SipParseError`` (415) for anything but UTF-8 text."""
    ctype = request.content_type
    if ctype is None or ctype.essence != "text/plain":
        raise SipParseError("MESSAGE body is not text/plain", status_code=415, request=request)
    charset = (ctype.param("charset") or "utf-8").lower()
    if charset not in ("utf-8", "us-ascii"):
        raise SipParseError(f"unsupported charset {charset!r}", status_code=415, request=request)
    if len(request.body) > MAX_MESSAGE_TEXT:
        raise SipParseError("message text too long", status_code=413, request=request)
    try:
        return request.body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise SipParseError("MESSAGE body is not UTF-8", request=request) from exc


def options_request(endpoint: SipEndpoint) -> Request:
    """A capability / liveness probe (RFC 3261 section 11)."""
    return endpoint.create_request("OPTIONS", headers=(("Accept", SDP),))


def invite_request(endpoint: SipEndpoint, sdp: bytes) -> Request:
    """A call offer carrying an SDP body (RFC 3261 13.2.1)."""
    return endpoint.create_request("INVITE", headers=(("Content-Type", SDP),), body=sdp)


def reinvite_request(endpoint: SipEndpoint, dialog: Dialog, sdp: bytes) -> Request:
    """A re-INVITE in an established call (RFC 3261 14.1)."""
    return endpoint.create_in_dialog(dialog, "INVITE", headers=(("Content-Type", SDP),), body=sdp)


def bye_request(endpoint: SipEndpoint, dialog: Dialog) -> Request:
    """Hang up (RFC 3261 15.1.1)."""
    return endpoint.create_in_dialog(dialog, "BYE")


def subscribe_request(
    endpoint: SipEndpoint, *, expires: int = 3600, dialog: Dialog | None = None
) -> Request:
    """Subscribe to (or, with ``dialog``, refresh / with 0 end) presence (RFC 3856, RFC 6665)."""
    headers = (
        ("Event", "presence"),
        ("Expires", str(expires)),
        ("Accept", PIDF_CONTENT_TYPE),
    )
    if dialog is None:
        return endpoint.create_request("SUBSCRIBE", headers=headers)
    return endpoint.create_in_dialog(dialog, "SUBSCRIBE", headers=headers)


def notify_request(
    endpoint: SipEndpoint,
    dialog: Dialog,
    *,
    pidf: bytes | None,
    expires: int | None = None,
    reason: str | None = None,
) -> Request:
    """A presence NOTIFY (RFC 6665 4.2.2); ``expires=None`` ends the subscription."""
    state = "terminated" if expires is None else f"active;expires={expires}"
    if expires is None and reason is not None:
        state += f";reason={reason}"
    headers: list[tuple[str, str]] = [("Event", "presence"), ("Subscription-State", state)]
    if pidf is not None:
        headers.append(("Content-Type", PIDF_CONTENT_TYPE))
    return endpoint.create_in_dialog(dialog, "NOTIFY", headers=tuple(headers), body=pidf or b"")


def refer_request(endpoint: SipEndpoint, dialog: Dialog, target: Uri) -> Request:
    """Ask the peer to call ``target`` (RFC 3515 2.4)."""
    return endpoint.create_in_dialog(
        dialog, "REFER", headers=(("Refer-To", str(NameAddr(uri=target))),)
    )
