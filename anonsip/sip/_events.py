"""Events a ``SipEndpoint`` hands its transaction user (RFC 3261 8, 9, 12, 17).

Frozen, keyword-only dataclasses under one base class, as ``wsproto.events``.
"""

from __future__ import annotations

from dataclasses import dataclass

from anonsip.sip._dialog import Dialog
from anonsip.sip._message import Request, Response


@dataclass(frozen=True, kw_only=True)
class SipEvent:
    """Base class of every endpoint event."""


@dataclass(frozen=True, kw_only=True)
class RequestReceived(SipEvent):
    """A new request the transaction user must answer with ``SipEndpoint.respond``.

    ``dialog`` is the dialog it belongs to, or ``None`` outside any dialog.
    """

    request: Request
    dialog: Dialog | None


@dataclass(frozen=True, kw_only=True)
class AckReceived(SipEvent):
    """The ACK for a 2xx to INVITE (end to end, outside any transaction; RFC 3261 13.3.1.4)."""

    request: Request
    dialog: Dialog


@dataclass(frozen=True, kw_only=True)
class ResponseReceived(SipEvent):
    """A response to a request we sent. A 2xx to INVITE has already been ACKed.

    ``dialog`` is the dialog the response created or belongs to, if any.
    """

    response: Response
    request: Request
    dialog: Dialog | None


@dataclass(frozen=True, kw_only=True)
class InviteCancelled(SipEvent):
    """The peer CANCELled an INVITE we had not answered; 487 was sent for it (RFC 3261 9.2)."""

    request: Request


@dataclass(frozen=True, kw_only=True)
class TransactionTimedOut(SipEvent):
    """No final response in 64*T1 (Timer B/F), or no ACK in 64*T1 (Timer H) for ``request``."""

    request: Request
    client: bool


@dataclass(frozen=True, kw_only=True)
class TransportFailed(SipEvent):
    """The stream broke while ``request`` was pending (RFC 3261 17.1.4)."""

    request: Request


@dataclass(frozen=True, kw_only=True)
class MessageRejected(SipEvent):
    """The endpoint refused a message itself; ``status_code`` is what it answered, if anything."""

    reason: str
    status_code: int | None
