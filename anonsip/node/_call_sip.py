"""A call's SIP on the peer's link: what the call machine sends goes out, answers come back.

The trio side of ``anonsip.call``'s signalling: ``send`` turns a signal
into a request (each its own client transaction, provisional and final
responses fed back to the machine through ``received``), a response to a
request the peer sent, or a CANCEL. A send that fails becomes a response
the machine understands (503, 408), never a lost input.

It also tells the media what the dialog says as soon as it says it: the
caller's first INVITE starts dialling the media paths, the callee's To tag
(in its 180) names them, and the callee expects them from its 180 on, so
the paths are usually open by the time someone answers.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

import trio

from anonsip._errors import AnonsipError, RemoteProtocolError
from anonsip.call import (
    Ack,
    Cancel,
    Method,
    SessionDescription,
    SignalEvent,
    method_of,
    request_for,
    response_parts,
)
from anonsip.call import Response as CallResponse
from anonsip.node._call_leg import CallLeg
from anonsip.node._call_media import CallMedia
from anonsip.node._link import LinkBroken, PeerLink, RequestTimedOut
from anonsip.sip import DialogId, Request
from anonsip.sip import Response as SipResponse

__all__ = ["CallSignals"]

log = logging.getLogger(__name__)

Received = Callable[[CallLeg, SignalEvent], Awaitable[None]]


class CallSignals:
    """Sends the machine's signals; ``received`` feeds the answers back to it."""

    def __init__(self, received: Received, *, media: CallMedia) -> None:
        self._received = received
        self._media = media

    async def send(self, leg: CallLeg, message: SignalEvent) -> None:
        """Carry out one signal the machine sends on the leg's link."""
        link = leg.link
        assert link is not None, "the machine only signals once the link exists"
        try:
            if isinstance(message, CallResponse):
                await self._respond(leg, link, message)
            elif isinstance(message, Ack):
                pass  # the endpoint ACKs a 2xx itself (RFC 3261 13.2.2.4)
            elif isinstance(message, Cancel):
                if leg.invite is not None:
                    await link.cancel(leg.invite)
            else:
                request, method = request_for(
                    link.endpoint, message, call_id=leg.call_id, dialog=leg.dialog
                )
                if method is Method.INVITE and leg.invite is None:
                    leg.invite = request
                    self._media.prepare(leg)
                assert leg.nursery is not None
                leg.nursery.start_soon(self._transact, leg, link, request, method)
        except (AnonsipError, trio.BrokenResourceError) as exc:
            # Sending failed: the link is gone or the dialog ended. A request
            # fails with a response the machine understands; an answer is lost.
            log.info("a call could not send %s: %s", type(message).__name__, exc)
            failed = method_of(message)
            if failed is not None and leg.nursery is not None:
                leg.detail = leg.detail or str(exc)
                leg.nursery.start_soon(self._received, leg, CallResponse(status=503, method=failed))

    async def _respond(self, leg: CallLeg, link: PeerLink, message: CallResponse) -> None:
        if message.method is Method.CANCEL:
            return  # the endpoint answered the CANCEL, and the INVITE with 487 (RFC 3261 9.2)
        request = leg.server_requests.get(message.method)
        if request is None:
            return
        if message.status >= 200:
            del leg.server_requests[message.method]
        if message.method is Method.INVITE and message.status == 487:
            return  # already sent by the endpoint with the CANCEL's 200
        if message.method is Method.INVITE and message.status < 300:
            # Before the 180 (or 200) leaves: the caller names its paths on it.
            self._media.expect(leg, link.endpoint.local_tag(request))
        headers, body = response_parts(message)
        response = await link.respond(
            request, message.status, message.reason or None, headers=headers, body=body
        )
        if message.method is Method.INVITE and message.status < 300:
            leg.dialog = link.endpoint.dialog_of_response(response) or leg.dialog

    async def _transact(
        self, leg: CallLeg, link: PeerLink, request: Request, method: Method
    ) -> None:
        """One client transaction: provisional and final responses go back to the machine."""
        nursery = leg.nursery
        assert nursery is not None

        def provisional(response: SipResponse) -> None:
            if method is Method.INVITE and response.to.tag:
                self._media.name(leg, response.to.tag)
            if response.status_code > 100:
                nursery.start_soon(
                    self._received, leg, CallResponse(status=response.status_code, method=method)
                )

        try:
            response = await link.request(request, on_provisional=provisional)
        except (RequestTimedOut, LinkBroken) as exc:
            leg.detail = leg.detail or str(exc)
            status = 408 if isinstance(exc, RequestTimedOut) else 503
            await self._received(leg, CallResponse(status=status, method=method))
            return
        answer = None
        if method is Method.INVITE and response.is_success:
            if response.body:
                try:
                    answer = SessionDescription.parse(response.body)
                except RemoteProtocolError as exc:
                    leg.detail = str(exc)  # no answer: the machine hangs up (488)
            if request.to.tag is None:
                leg.dialog = link.endpoint.dialog(
                    DialogId(
                        call_id=request.call_id,
                        local_tag=request.from_.tag or "",
                        remote_tag=response.to.tag or "",
                    )
                )
        await self._received(
            leg, CallResponse(status=response.status_code, method=method, answer=answer)
        )
