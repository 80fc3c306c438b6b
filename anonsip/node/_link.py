"""SIP over one secure session: the trio adapter for ``anonsip.sip.SipEndpoint``.

A ``PeerLink`` owns one ``Session`` and one sans-IO ``SipEndpoint`` (RFC
3261 transaction layer and UA core). It feeds received channel messages to
the endpoint, sends what the endpoint queues (in order, under one lock),
drives the endpoint's timers from trio's clock, hands incoming requests to
the node, and lets callers await the final response to a request they send.
When the session ends, every pending request fails with ``LinkBroken``.
"""

from __future__ import annotations

import collections
import logging
import math
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

import trio

from anonsip._errors import AnonsipError, RemoteProtocolError
from anonsip.node._session import Session, SessionBroken, SessionClosed
from anonsip.sip import (
    AckReceived,
    InviteCancelled,
    MessageRejected,
    Request,
    RequestReceived,
    Response,
    ResponseReceived,
    SipEndpoint,
    SipEvent,
    SipParseError,
    TransactionTimedOut,
    TransportFailed,
)

log = logging.getLogger(__name__)


class LinkBroken(AnonsipError):
    """The session to the peer ended before the request was answered."""


class RequestTimedOut(AnonsipError):
    """The peer did not answer in time (RFC 3261 Timer B/F)."""


IncomingHandler = Callable[["PeerLink", SipEvent], Awaitable[None]]
ORDERED_METHODS = frozenset({"MESSAGE"})  # handled in arrival order, one at a time
MAX_IN_ORDER = 256  # requests waiting their turn; more are refused (503)
ProvisionalHandler = Callable[[Response], None]


@dataclass
class _Pending:
    done: trio.Event = field(default_factory=trio.Event)
    response: Response | None = None
    error: AnonsipError | None = None
    on_provisional: ProvisionalHandler | None = None


class PeerLink:
    """SIP with one peer pseudonym over one secure session."""

    def __init__(
        self,
        session: Session,
        endpoint: SipEndpoint,
        on_incoming: IncomingHandler,
        *,
        ordered: frozenset[str] = ORDERED_METHODS,
    ) -> None:
        self.session = session
        self.endpoint = endpoint
        self.peer_public_key = session.remote_public_key
        self._on_incoming = on_incoming
        self._ordered_methods = ordered
        self._in_order: collections.deque[RequestReceived] = collections.deque()
        self._in_order_wake = trio.Event()
        self._send_lock = trio.Lock()
        self._pending: dict[tuple[str, str], _Pending] = {}
        self._wake_timer = trio.Event()
        self._closed = trio.Event()
        self._nursery: trio.Nursery | None = None
        self.last_activity = trio.current_time()  # a message either way (idle strangers go)

    @property
    def is_open(self) -> bool:
        return not self._closed.is_set() and self.session.is_open

    async def wait_closed(self) -> None:
        await self._closed.wait()

    # -- running -------------------------------------------------------------

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Serve the link until the session ends; then fail what is pending."""
        try:
            async with trio.open_nursery() as nursery:
                self._nursery = nursery
                nursery.start_soon(self._timers)
                nursery.start_soon(self._in_order_loop)
                task_status.started()
                await self._read_loop()
                nursery.cancel_scope.cancel()
        finally:
            self._closed.set()
            self.endpoint.transport_closed()
            self._drain_events()
            for pending in self._pending.values():
                if not pending.done.is_set():
                    pending.error = LinkBroken("the session to the peer ended")
                    pending.done.set()
            self._pending.clear()
            with trio.CancelScope(shield=True):
                await self.session.aclose()

    async def aclose(self) -> None:
        await self.session.aclose()

    async def _read_loop(self) -> None:
        while True:
            try:
                data = await self.session.receive()
            except SessionClosed:
                return
            except SessionBroken as exc:
                log.info("session with peer broke: %s", exc)
                return
            self.last_activity = trio.current_time()
            self.endpoint.receive_data(data)
            try:
                self._drain_events()
            except SipParseError:
                log.info("peer lost SIP framing; closing the session")
                await self._flush_own()
                return
            if not await self._flush_own():
                return

    def _drain_events(self) -> None:
        while (event := self.endpoint.next_event()) is not None:
            self._handle(event)

    def _handle(self, event: SipEvent) -> None:
        if isinstance(event, ResponseReceived):
            key = (event.request.top_via.branch or "", event.request.method)
            pending = self._pending.get(key)
            if pending is None:
                return
            if event.response.is_provisional:
                if pending.on_provisional is not None:
                    pending.on_provisional(event.response)
                return
            pending.response = event.response
            pending.done.set()
            del self._pending[key]
        elif isinstance(event, TransactionTimedOut | TransportFailed):
            if isinstance(event, TransactionTimedOut) and not event.client:
                return
            key = (event.request.top_via.branch or "", event.request.method)
            pending = self._pending.pop(key, None)
            if pending is not None:
                pending.error = (
                    RequestTimedOut(f"the peer did not answer the {event.request.method}")
                    if isinstance(event, TransactionTimedOut)
                    else LinkBroken("the session to the peer ended")
                )
                pending.done.set()
            if isinstance(event, TransactionTimedOut):
                # On a reliable, ordered session a live peer answers everything, if only
                # with an error: silence means the stream is dead without having said so
                # (a peer whose tor vanished can leave an onion stream half-open for
                # minutes). End the link, so the next request dials afresh.
                log.info(
                    "the peer did not answer a %s in time; closing the session",
                    event.request.method,
                )
                self._break()
        elif (
            isinstance(event, RequestReceived)
            and event.request.method in self._ordered_methods
            and self._nursery is not None
        ):
            # Handled one at a time in arrival order: messages keep their order.
            if len(self._in_order) >= MAX_IN_ORDER:
                self._nursery.start_soon(self._refuse_busy, event.request)
            else:
                self._in_order.append(event)
                self._in_order_wake.set()
        elif isinstance(event, RequestReceived | AckReceived | InviteCancelled):
            if self._nursery is not None:
                self._nursery.start_soon(self._dispatch, event)
        elif isinstance(event, MessageRejected):
            log.info("refused a SIP message from the peer: %s", event.reason)

    async def _in_order_loop(self) -> None:
        while True:
            await self._in_order_wake.wait()
            self._in_order_wake = trio.Event()
            while self._in_order:
                await self._dispatch(self._in_order.popleft())

    def take_in_order(self, accept: Callable[[Request], bool], limit: int) -> list[Request]:
        """Take the requests waiting their turn right behind the one being handled,
        to handle them with it (a burst of messages stored in one commit): at most
        ``limit``, in order, up to the first that ``accept`` refuses, which stays."""
        taken: list[Request] = []
        while self._in_order and len(taken) < limit:
            request = self._in_order[0].request
            if not accept(request):
                break
            taken.append(request)
            self._in_order.popleft()
        return taken

    async def _refuse_busy(self, request: Request) -> None:
        try:
            await self.respond(request, 503, "Service Unavailable")
        except (AnonsipError, trio.BrokenResourceError) as exc:
            log.info("could not refuse a request: %s", exc)

    async def _dispatch(self, event: SipEvent) -> None:
        # except*: a handler with a nursery of its own raises its errors grouped; one
        # that came out whole took the link, then the node, down (twice so far).
        try:
            await self._on_incoming(self, event)
        except* (AnonsipError, trio.BrokenResourceError) as group:
            reasons = "; ".join(str(exc) for exc in group.exceptions)
            log.info("handling a %s failed: %s", type(event).__name__, reasons)

    async def _timers(self) -> None:
        while True:
            deadline = self.endpoint.next_deadline()
            self._wake_timer = trio.Event()
            with trio.move_on_at(math.inf if deadline is None else deadline):
                await self._wake_timer.wait()
                continue
            self.endpoint.on_timer(trio.current_time())
            self._drain_events()
            if not await self._flush_own():
                return

    # -- sending -------------------------------------------------------------

    async def _flush(self) -> None:
        async with self._send_lock:
            frames = self.endpoint.frames_to_send()
            if frames:
                self.last_activity = trio.current_time()
            try:
                await self.session.send_many(frames)  # one write for what is due at once
            except (SessionBroken, SessionClosed) as exc:
                raise LinkBroken(f"the session to the peer ended: {exc}") from exc
            except BaseException:
                # Frames taken from the endpoint cannot go back: a link that
                # lost one would desynchronise its transactions. Break it.
                self._break()
                raise
        self._wake_timer.set()

    async def _flush_own(self) -> bool:
        """Send what the link's own tasks owe (answers the endpoint makes by itself,
        timer output); a broken session ends the link here, as a read that fails
        does. False once it has."""
        try:
            await self._flush()
        except LinkBroken as exc:
            log.info("session with peer broke: %s", exc)
            self._break()
            return False
        return True

    def _break(self) -> None:
        self._closed.set()
        if self._nursery is not None:
            self._nursery.cancel_scope.cancel()

    async def request(
        self,
        request: Request,
        *,
        on_provisional: ProvisionalHandler | None = None,
    ) -> Response:
        """Send ``request`` and wait for its final response.

        Raises ``LinkBroken`` if the session ends first and
        ``RequestTimedOut`` after Timer B/F.
        """
        if not self.is_open:
            raise LinkBroken("the session to the peer is closed")
        key = (request.top_via.branch or "", request.method)
        pending = _Pending(on_provisional=on_provisional)
        self._pending[key] = pending
        try:
            self.endpoint.send_request(request, trio.current_time())
            await self._flush()
            await pending.done.wait()
        finally:
            self._pending.pop(key, None)
        if pending.error is not None:
            raise pending.error
        assert pending.response is not None
        return pending.response

    async def request_many(
        self,
        requests: Sequence[Request],
        *,
        window: int | None = None,
        on_provisional: Callable[[int, Response], None] | None = None,
    ) -> list[Response | AnonsipError]:
        """Send ``requests`` in order without waiting a round trip between them
        (pipelined), at most ``window`` unanswered at once (a sliding window: the
        next goes as soon as the oldest is answered), then wait for all; each result
        is its final response or the error it met. If the session ends part way,
        the answers already in are kept and the rest fail with ``LinkBroken``."""
        if not self.is_open:
            raise LinkBroken("the session to the peer is closed")
        slots: list[tuple[tuple[str, str], _Pending]] = []
        try:
            for index, request in enumerate(requests):
                if window is not None and index >= window:
                    # Our peer answers an ordered session's requests in order: the
                    # oldest one outstanding frees the next slot. What is queued goes
                    # out in one write only when we must wait (answers come in bursts).
                    oldest = slots[index - window][1].done
                    if not oldest.is_set():
                        await self._flush()
                        await oldest.wait()
                if self._closed.is_set():
                    break  # ended while we waited: the rest are not sent
                key = (request.top_via.branch or "", request.method)

                def provisional(response: Response, index: int = index) -> None:
                    if on_provisional is not None:
                        on_provisional(index, response)

                pending = _Pending(on_provisional=provisional)
                self._pending[key] = pending
                slots.append((key, pending))
                self.endpoint.send_request(request, trio.current_time())
            await self._flush()
            for _key, pending in slots:
                await pending.done.wait()
        except LinkBroken:
            self._break()  # the session failed under a send: answers in so far stay
        finally:
            for key, _pending in slots:
                self._pending.pop(key, None)
        results: list[Response | AnonsipError] = []
        for _key, pending in slots:
            if pending.error is not None:
                results.append(pending.error)
            elif pending.response is not None:
                results.append(pending.response)
            else:
                results.append(LinkBroken("the session to the peer ended"))
        broken = LinkBroken("the session to the peer ended before this was sent")
        results.extend(broken for _ in range(len(requests) - len(slots)))
        return results

    async def send_only(self, request: Request) -> None:
        """Start a client transaction without waiting (CANCEL's INVITE, BYE races)."""
        self.endpoint.send_request(request, trio.current_time())
        await self._flush()

    async def respond(
        self,
        request: Request,
        status_code: int,
        reason: str | None = None,
        *,
        headers: tuple[tuple[str, str], ...] = (),
        body: bytes = b"",
        flush: bool = True,
    ) -> Response:
        """Answer ``request``; with ``flush=False`` the answer waits for ``flush()``
        (answers to a burst go out in one write)."""
        try:
            response = self.endpoint.respond(
                request, status_code, reason, headers=headers, body=body, now=trio.current_time()
            )
        except RemoteProtocolError as exc:
            raise LinkBroken(str(exc)) from exc
        if flush:
            await self._flush()
        return response

    async def flush(self) -> None:
        """Send the answers ``respond(flush=False)`` left waiting."""
        await self._flush()

    async def cancel(self, invite: Request) -> None:
        self.endpoint.cancel(invite, trio.current_time())
        await self._flush()
