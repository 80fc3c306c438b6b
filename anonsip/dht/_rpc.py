"""Trio adapter for DHT RPCs on one stream: framing, the opening handshake, request ids.

An outbound ``Connection`` is a stream we dialled to a contact's onion
service (Tor has authenticated the callee); it answers the callee's
``Challenge`` with a ``Proof`` of our node key, or, for an anonymous client,
with ``Anonymous`` (nothing that identifies us). It then carries our
requests, many at a time, matched to replies by request id; a nursery runs
its ``read_loop``. Nothing here can hang its caller: the handshake has its
own deadline (``RpcTimeout``) and so does every request. Any failure while
sending marks the connection broken (a half-written frame cannot be taken
back), as h11's trio example does.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import trio

from anonsip._errors import AnonsipError, RemoteProtocolError
from anonsip.dht._codec import MAX_REQUEST_ID, FrameDecoder, encode_frame
from anonsip.dht._identity import Contact, NodeIdentity
from anonsip.dht._messages import (
    Anonymous,
    Challenge,
    DeleteResult,
    DepositResult,
    Deposits,
    Envelope,
    Error,
    Message,
    Nodes,
    Pong,
    Proof,
    Reply,
    Request,
    StoreResult,
    Value,
)

__all__ = ["Connection", "MessageStream", "RpcError", "RpcTimeout"]

log = logging.getLogger(__name__)

_RECEIVE_CHUNK = 4096


class RpcError(AnonsipError):
    """A DHT request got no usable answer (peer gone, stream broken, refused)."""


class RpcTimeout(RpcError):
    """A DHT peer did not answer the handshake or a request within its deadline."""


class MessageStream:
    """Whole DHT messages over a byte stream."""

    def __init__(self, stream: trio.abc.Stream) -> None:
        self.stream = stream
        self._decoder = FrameDecoder()
        self._send_lock = trio.Lock()
        self.broken = False

    async def send(self, envelope: Envelope) -> None:
        frame = encode_frame(envelope)
        async with self._send_lock:
            if self.broken:
                raise trio.BrokenResourceError("an earlier send on this stream failed")
            try:
                await self.stream.send_all(frame)
            except BaseException:
                self.broken = True
                raise

    async def receive(self) -> Envelope | None:
        """The next message, or None at end of stream; RemoteProtocolError if malformed."""
        while True:
            envelope = self._decoder.next_message()
            if envelope is not None:
                return envelope
            data = await self.stream.receive_some(_RECEIVE_CHUNK)
            if not data:
                if self._decoder.buffered:
                    raise RemoteProtocolError("the DHT stream ended inside a message")
                return None
            self._decoder.feed(data)


@dataclass(slots=True)
class _Slot:
    event: trio.Event = field(default_factory=trio.Event)
    reply: Reply | None = None
    error: str = ""


class Connection:
    """Our requests to one peer over one stream (after the identity handshake)."""

    def __init__(self, contact: Contact, messages: MessageStream, max_pending: int) -> None:
        self.contact = contact
        self._messages = messages
        self._max_pending = max_pending
        self._pending: dict[int, _Slot] = {}
        self._next_id = 1
        self.closed = False
        self.last_used = trio.current_time()

    @classmethod
    async def open(
        cls,
        stream: trio.abc.Stream,
        *,
        identity: NodeIdentity | None,
        contact: Contact,
        max_pending: int,
        timeout: float,
    ) -> Connection:
        """Answer the callee's challenge as the node ``identity``, or anonymously (None).

        Raises ``RpcTimeout`` if the callee does not challenge us within ``timeout``.
        """
        messages = MessageStream(stream)
        with trio.move_on_after(timeout):
            first = await messages.receive()
            if first is None or not isinstance(first.message, Challenge):
                raise RemoteProtocolError("the DHT peer did not open with an identity challenge")
            answer: Proof | Anonymous
            if identity is None:
                answer = Anonymous()
            else:
                answer = Proof(
                    public_key=identity.public_key,
                    port=identity.port,
                    signature=identity.prove(contact.public_key, first.message.nonce),
                )
            await messages.send(Envelope(request_id=0, message=answer))
            return cls(contact, messages, max_pending)
        raise RpcTimeout("the DHT peer did not complete the handshake in time")

    @property
    def pending(self) -> int:
        return len(self._pending)

    @property
    def usable(self) -> bool:
        return not self.closed and not self._messages.broken

    async def request(self, message: Request, *, timeout: float) -> Reply:
        """Send ``message`` and wait for its reply; ``RpcTimeout`` after ``timeout`` s."""
        if not self.usable:
            raise RpcError("the connection to this DHT peer is closed")
        if len(self._pending) >= self._max_pending:
            raise RpcError("too many requests in flight to this DHT peer")
        request_id = self._next_id
        self._next_id = self._next_id % MAX_REQUEST_ID + 1
        slot = self._pending[request_id] = _Slot()
        self.last_used = trio.current_time()
        try:
            with trio.move_on_after(timeout) as scope:
                try:
                    await self._messages.send(Envelope(request_id=request_id, message=message))
                except (trio.BrokenResourceError, trio.ClosedResourceError) as exc:
                    raise RpcError("the stream to this DHT peer broke") from exc
                await slot.event.wait()
        finally:
            del self._pending[request_id]
        if scope.cancelled_caught:
            raise RpcTimeout("the DHT peer did not answer in time")
        if slot.reply is None:
            raise RpcError(slot.error)
        self.last_used = trio.current_time()
        return slot.reply

    async def read_loop(self) -> None:
        """Deliver replies until the stream ends; then fail whatever is still waiting."""
        reason = "the DHT peer closed the connection"
        try:
            while True:
                envelope = await self._messages.receive()
                if envelope is None:
                    break
                reply = _as_reply(envelope.message)
                slot = self._pending.get(envelope.request_id)
                if slot is None:
                    continue  # a late answer to a request whose deadline passed
                slot.reply = reply
                slot.event.set()
        except RemoteProtocolError as exc:
            reason = f"the DHT peer broke the protocol: {exc}"
            log.debug("closing a DHT connection: %s", exc)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            reason = "the stream to this DHT peer broke"
        finally:
            self.closed = True
            for slot in self._pending.values():
                slot.error = reason
                slot.event.set()
            await trio.aclose_forcefully(self._messages.stream)

    async def aclose(self) -> None:
        self.closed = True
        await trio.aclose_forcefully(self._messages.stream)


def _as_reply(message: Message) -> Reply:
    replies = Pong | Nodes | Value | StoreResult | DepositResult | Deposits | DeleteResult | Error
    if not isinstance(message, replies):
        raise RemoteProtocolError("a DHT peer sent a request on our outbound stream")
    return message


def refusal(reason: str) -> Envelope:
    return Envelope(request_id=0, message=Error(code="refused", reason=reason))
