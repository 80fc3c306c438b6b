"""Control-socket clients: the same ``ControlCodec`` under trio and under asyncio.

``TrioControlClient`` serves the CLI; ``AsyncioControlClient`` serves the
prompt_toolkit UI, which runs on asyncio. Both multiplex calls by request id
on one connection and, after ``subscribe()``, deliver events through
``events()``. Their local event queue is bounded: a caller that stops reading
events loses the connection (``ControlConnectionClosed``) rather than memory.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
from collections.abc import AsyncIterator
from typing import Any, Final

import trio

from anonsip._errors import AnonsipError, RemoteProtocolError
from anonsip.control._errors import ControlConnectionClosed, NodeError, NodeNotRunning
from anonsip.control._protocol import ControlCodec, Event, Reply, Request, Role, encode

__all__ = ["AsyncioControlClient", "TrioControlClient"]

_RECEIVE_SIZE: Final = 65536
DEFAULT_EVENT_QUEUE: Final = 256


def _home(path: str | os.PathLike[str]) -> str:
    return os.path.dirname(os.path.abspath(os.fspath(path))) or "."


def _result(reply: Reply) -> Any:
    if reply.ok:
        return reply.result
    assert reply.error is not None
    raise NodeError(reply.error.kind, reply.error.message)


_CLEAN_EOF = "the node closed the control connection"
_OVERFLOW = "events were not read fast enough; the control connection was dropped"


class TrioControlClient:
    """A control connection under trio: ``async with TrioControlClient.connect(path) as c``."""

    def __init__(self, stream: trio.SocketStream, event_queue: int) -> None:
        self._stream = stream
        self._ids = itertools.count(1)
        self._send_lock = trio.Lock()
        self._pending: dict[int, tuple[trio.Event, list[Reply]]] = {}
        self._events_send, self._events_receive = trio.open_memory_channel[Event](event_queue)
        self._closed: AnonsipError | None = None
        self._clean_eof = False

    @classmethod
    @contextlib.asynccontextmanager
    async def connect(
        cls, path: str | os.PathLike[str], *, event_queue: int = DEFAULT_EVENT_QUEUE
    ) -> AsyncIterator[TrioControlClient]:
        try:
            stream = await trio.open_unix_socket(os.fspath(path))
        except (FileNotFoundError, ConnectionRefusedError) as exc:
            raise NodeNotRunning(_home(path)) from exc
        async with stream, trio.open_nursery() as nursery:
            client = cls(stream, event_queue)
            nursery.start_soon(client._read_loop)
            try:
                yield client
            finally:
                client._events_send.close()
                nursery.cancel_scope.cancel()

    async def call(self, op: str, /, **args: Any) -> Any:
        """Run ``op`` on the node and return its result; raise ``NodeError`` if it failed."""
        if self._closed is not None:
            raise self._closed
        ident = next(self._ids)
        done, box = trio.Event(), list[Reply]()
        self._pending[ident] = (done, box)
        try:
            data = encode(Request(id=ident, op=op, args=args))
            async with self._send_lock:
                try:
                    await self._stream.send_all(data)
                except (trio.BrokenResourceError, trio.ClosedResourceError) as exc:
                    raise ControlConnectionClosed("the control connection is broken") from exc
            await done.wait()
        finally:
            self._pending.pop(ident, None)
        if not box:
            assert self._closed is not None
            raise self._closed
        return _result(box[0])

    async def subscribe(self) -> None:
        """Ask the node to push events on this connection (read them with ``events()``)."""
        await self.call("subscribe")

    def events(self) -> AsyncIterator[Event]:
        """Events in arrival order; ends when the node closes the connection.

        An iterator object rather than an async generator, so breaking out of
        ``async for`` leaves nothing to finalise.
        """
        return self

    def __aiter__(self) -> AsyncIterator[Event]:
        return self

    async def __anext__(self) -> Event:
        try:
            return await self._events_receive.receive()
        except trio.EndOfChannel:
            if self._closed is not None and not self._clean_eof:
                raise self._closed from None
            raise StopAsyncIteration from None

    async def _read_loop(self) -> None:
        codec = ControlCodec(Role.CLIENT)
        try:
            while True:
                try:
                    data = await self._stream.receive_some(_RECEIVE_SIZE)
                except (trio.BrokenResourceError, trio.ClosedResourceError):
                    data = b""
                codec.receive_data(data)
                while (frame := codec.next_frame()) is not None:
                    if isinstance(frame, Reply):
                        waiter = self._pending.get(frame.id)
                        if waiter is not None:  # else the caller was cancelled
                            waiter[1].append(frame)
                            waiter[0].set()
                    else:
                        assert isinstance(frame, Event)
                        try:
                            self._events_send.send_nowait(frame)
                        except trio.WouldBlock:
                            self._close(ControlConnectionClosed(_OVERFLOW))
                            return
                        except trio.ClosedResourceError:
                            # connect() is closing: data that arrived with its cancel.
                            return
                if not data:
                    self._clean_eof = True
                    self._close(ControlConnectionClosed(_CLEAN_EOF))
                    return
        except RemoteProtocolError as exc:
            self._close(exc)

    def _close(self, why: AnonsipError) -> None:
        self._closed = why
        self._events_send.close()
        for done, _ in self._pending.values():
            done.set()


class AsyncioControlClient:
    """The same client for asyncio: ``async with AsyncioControlClient.connect(path) as c``."""

    def __init__(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, event_queue: int
    ) -> None:
        self._reader = reader
        self._writer = writer
        self._ids = itertools.count(1)
        self._send_lock = asyncio.Lock()
        self._pending: dict[int, asyncio.Future[Reply]] = {}
        self._events: asyncio.Queue[Event | None] = asyncio.Queue(event_queue + 1)
        self._event_limit = event_queue
        self._events_done = False
        self._closed: AnonsipError | None = None
        self._clean_eof = False

    @classmethod
    @contextlib.asynccontextmanager
    async def connect(
        cls, path: str | os.PathLike[str], *, event_queue: int = DEFAULT_EVENT_QUEUE
    ) -> AsyncIterator[AsyncioControlClient]:
        try:
            reader, writer = await asyncio.open_unix_connection(os.fspath(path))
        except (FileNotFoundError, ConnectionRefusedError) as exc:
            raise NodeNotRunning(_home(path)) from exc
        client = cls(reader, writer, event_queue)
        task = asyncio.create_task(client._read_loop())
        try:
            yield client
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()

    async def call(self, op: str, /, **args: Any) -> Any:
        """Run ``op`` on the node and return its result; raise ``NodeError`` if it failed."""
        if self._closed is not None:
            raise self._closed
        ident = next(self._ids)
        future: asyncio.Future[Reply] = asyncio.get_running_loop().create_future()
        self._pending[ident] = future
        try:
            data = encode(Request(id=ident, op=op, args=args))
            async with self._send_lock:
                try:
                    self._writer.write(data)
                    await self._writer.drain()
                except OSError as exc:
                    raise ControlConnectionClosed("the control connection is broken") from exc
            reply = await future
        finally:
            self._pending.pop(ident, None)
        return _result(reply)

    async def subscribe(self) -> None:
        await self.call("subscribe")

    def events(self) -> AsyncIterator[Event]:
        """Events in arrival order; ends when the node closes the connection."""
        return self

    def __aiter__(self) -> AsyncIterator[Event]:
        return self

    async def __anext__(self) -> Event:
        if self._events_done:
            event = None
        else:
            event = await self._events.get()
        if event is not None:
            return event
        self._events_done = True
        if self._closed is not None and not self._clean_eof:
            raise self._closed
        raise StopAsyncIteration

    async def _read_loop(self) -> None:
        codec = ControlCodec(Role.CLIENT)
        try:
            while True:
                try:
                    data = await self._reader.read(_RECEIVE_SIZE)
                except OSError:
                    data = b""
                codec.receive_data(data)
                while (frame := codec.next_frame()) is not None:
                    if isinstance(frame, Reply):
                        future = self._pending.get(frame.id)
                        if future is not None and not future.done():
                            future.set_result(frame)
                    else:
                        assert isinstance(frame, Event)
                        if self._events.qsize() >= self._event_limit:
                            self._close(ControlConnectionClosed(_OVERFLOW))
                            return
                        self._events.put_nowait(frame)
                if not data:
                    self._clean_eof = True
                    self._close(ControlConnectionClosed(_CLEAN_EOF))
                    return
        except RemoteProtocolError as exc:
            self._close(exc)

    def _close(self, why: AnonsipError) -> None:
        self._closed = why
        self._events.put_nowait(None)  # the queue keeps one slot for this
        for future in self._pending.values():
            if not future.done():
                future.set_exception(why)
        self._writer.close()
