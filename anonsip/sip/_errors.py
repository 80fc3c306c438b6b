"""Errors of the SIP layer (RFC 3261).

``SipParseError`` is what a peer's bytes earn: it is a ``RemoteProtocolError``
and, when the message got far enough to be answered, says which error
response RFC 3261 asks for (section 8.2, 21.4) and carries what was parsed.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from anonsip._errors import LocalError, RemoteProtocolError

if TYPE_CHECKING:
    from anonsip.sip._message import PartialRequest, Request


class SipParseError(RemoteProtocolError):
    """A peer sent SIP we refuse.

    ``status_code`` is the response RFC 3261 asks for (400, 413, 416, 505,
    513) or ``None`` when no response may be sent (a broken response, or a
    request too mangled to answer). ``request`` is the request as far as it
    was parsed, enough for :func:`make_error_response`, or ``None``.
    ``fatal`` is true when the stream lost its framing: nothing after this
    point can be parsed and the connection should be closed.
    """

    def __init__(
        self,
        message: str,
        *,
        status_code: int | None = 400,
        request: Request | PartialRequest | None = None,
        fatal: bool = False,
    ) -> None:
        super().__init__(message)
        self.status_code: int | None = status_code
        self.request: Request | PartialRequest | None = request
        self.fatal = fatal


class SipUsageError(LocalError):
    """This side built or sent a SIP message wrongly (a bug, not the peer's fault)."""
