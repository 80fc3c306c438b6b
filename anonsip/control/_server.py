"""The node's control socket: a trio adapter over ``ControlCodec`` (docs/control-api.md).

``ControlServer`` listens on a Unix socket in the node's home, reads
``Request`` frames, runs the handler the node registered for each ``op`` and
writes a ``Reply``. A connection that sent ``subscribe`` also receives every
``Event`` passed to ``publish``; each connection has a bounded outgoing
queue and one that cannot keep up is disconnected instead of buffered.
"""

from __future__ import annotations

import errno
import logging
import os
import socket as stdlib_socket
import stat
from collections.abc import Awaitable, Callable, Mapping
from contextlib import AsyncExitStack
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Final, Self

import trio

from anonsip._errors import AnonsipError, LocalError, RemoteProtocolError
from anonsip.control._protocol import ControlCodec, ErrorInfo, Event, Reply, Request, Role, encode

__all__ = ["ControlServer", "ControlServerStatistics", "Handler"]

logger = logging.getLogger(__name__)

Handler = Callable[[Mapping[str, Any]], Awaitable[Any]]
"""An operation: receives the request's ``args`` and returns the msgpack-able result."""

_RECEIVE_SIZE: Final = 65536
_MAX_SUN_PATH: Final = 107  # sockaddr_un.sun_path is 108 bytes including the NUL
_PROBE_TIMEOUT: Final = 1.0


@dataclass(frozen=True, kw_only=True)
class ControlServerStatistics:
    connections: int
    subscribers: int


class _Connection:
    def __init__(self, stream: trio.SocketStream, queue_size: int, max_in_flight: int) -> None:
        self.stream = stream
        self.send, self.receive = trio.open_memory_channel[bytes](queue_size)
        self.scope = trio.CancelScope()
        self.read_scope = trio.CancelScope()
        self.in_flight = trio.Semaphore(max_in_flight)


def _private_directory(directory: str) -> None:
    info = os.stat(directory)
    if info.st_uid != os.getuid() or info.st_mode & 0o077:
        raise LocalError(
            f"{directory} is accessible to other users; the control socket needs a private "
            f"directory: run chmod 700 {directory}"
        )


async def _remove_stale_socket(path: str) -> None:
    """Delete a socket file left by a node that died, refuse if one still answers."""
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(info.st_mode):
        raise LocalError(f"{path} exists and is not a socket; move it away and start again")
    probe = trio.socket.socket(stdlib_socket.AF_UNIX, stdlib_socket.SOCK_STREAM)
    try:
        with trio.move_on_after(_PROBE_TIMEOUT):
            try:
                await probe.connect(path)
            except (ConnectionRefusedError, FileNotFoundError):
                logger.info("removing stale control socket %s", path)
                os.unlink(path)
                return
        # It accepted, or it is alive but too busy to accept within the timeout.
        raise LocalError(f"a node is already running in {os.path.dirname(path)}")
    finally:
        probe.close()


class ControlServer:
    """Serves the control API on a Unix socket for as long as the ``async with`` block runs.

    ``handlers`` maps each ``op`` to a coroutine function taking the request
    args. An ``AnonsipError`` from a handler becomes an error reply carrying
    its class name and message; any other exception is logged and answered
    with a generic internal error. ``subscribe`` is served by the server
    itself. ``publish`` must be called from the trio thread.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        handlers: Mapping[str, Handler],
        *,
        subscriber_queue: int = 256,
        max_connections: int = 32,
        max_in_flight: int = 8,
        shutdown_grace: float = 1.0,
    ) -> None:
        self.path = os.path.abspath(os.fspath(path))
        self._handlers = dict(handlers)
        self._queue_size = subscriber_queue
        self._max_connections = max_connections
        self._max_in_flight = max_in_flight
        self._grace = shutdown_grace
        self._connections: set[_Connection] = set()
        self._subscribers: set[_Connection] = set()
        self._all_closed = trio.Event()
        self._accept_scope = trio.CancelScope()
        self._stack = AsyncExitStack()
        self._nursery: trio.Nursery | None = None
        self._inode: tuple[int, int] | None = None

    async def __aenter__(self) -> Self:
        directory = os.path.dirname(self.path)
        _private_directory(directory)
        if len(os.fsencode(self.path)) > _MAX_SUN_PATH:
            raise LocalError(
                f"the control socket path {self.path} is too long for a Unix socket; "
                "use a shorter home directory"
            )
        await _remove_stale_socket(self.path)
        sock = trio.socket.socket(stdlib_socket.AF_UNIX, stdlib_socket.SOCK_STREAM)
        try:
            old_umask = os.umask(0o177)  # the socket is born 0600, never world-connectable
            try:
                await sock.bind(self.path)
            finally:
                os.umask(old_umask)
            sock.listen(self._max_connections)
        except BaseException:
            sock.close()
            raise
        info = os.lstat(self.path)
        self._inode = (info.st_dev, info.st_ino)
        listener = trio.SocketListener(sock)
        try:
            self._nursery = await self._stack.enter_async_context(trio.open_nursery())
            self._nursery.start_soon(self._accept_loop, listener)
        except BaseException:
            await listener.aclose()
            self._unlink()
            raise
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool | None:
        assert self._nursery is not None, "ControlServer was not entered"
        try:
            self._accept_scope.cancel()
            for conn in self._connections:
                conn.read_scope.cancel()
            if exc_type is None and self._connections:
                # Let replies already being computed (e.g. to ``shutdown``) reach their callers.
                with trio.move_on_after(self._grace):
                    await self._all_closed.wait()
            self._nursery.cancel_scope.cancel()
            return await self._stack.__aexit__(exc_type, exc, tb)
        finally:
            self._unlink()

    def _unlink(self) -> None:
        try:
            info = os.lstat(self.path)
        except FileNotFoundError:
            return
        if (info.st_dev, info.st_ino) == self._inode:
            os.unlink(self.path)

    def statistics(self) -> ControlServerStatistics:
        return ControlServerStatistics(
            connections=len(self._connections), subscribers=len(self._subscribers)
        )

    def publish(self, event: str, data: Mapping[str, Any]) -> None:
        """Queue an event for every subscriber; drop subscribers whose queue is full."""
        frame = encode(Event(event=event, data=data))
        for conn in list(self._subscribers):
            try:
                conn.send.send_nowait(frame)
            except trio.WouldBlock:
                logger.warning("a control subscriber fell behind; disconnecting it")
                self._drop(conn)
            except (trio.ClosedResourceError, trio.BrokenResourceError):
                self._drop(conn)

    def _drop(self, conn: _Connection) -> None:
        self._subscribers.discard(conn)
        conn.scope.cancel()

    async def _accept_loop(self, listener: trio.SocketListener) -> None:
        assert self._nursery is not None
        async with listener:
            with self._accept_scope:
                while True:
                    try:
                        stream = await listener.accept()
                    except OSError as exc:
                        if exc.errno not in (
                            errno.EMFILE,
                            errno.ENFILE,
                            errno.ENOMEM,
                            errno.ENOBUFS,
                        ):
                            raise
                        logger.warning("control socket cannot accept: %s", exc)
                        await trio.sleep(0.1)  # back off as trio.serve_listeners does
                        continue
                    if len(self._connections) >= self._max_connections:
                        logger.warning("too many control connections; refusing one")
                        await stream.aclose()
                        continue
                    conn = _Connection(stream, self._queue_size, self._max_in_flight)
                    self._connections.add(conn)
                    self._all_closed = trio.Event()
                    self._nursery.start_soon(self._serve, conn)

    async def _serve(self, conn: _Connection) -> None:
        try:
            with conn.scope:
                async with conn.stream, trio.open_nursery() as nursery:
                    nursery.start_soon(self._write_loop, conn)
                    async with conn.send, trio.open_nursery() as handlers:
                        with conn.read_scope:
                            await self._read_loop(conn, handlers)
        finally:
            self._subscribers.discard(conn)
            self._connections.discard(conn)
            if not self._connections:
                self._all_closed.set()

    async def _write_loop(self, conn: _Connection) -> None:
        try:
            async for data in conn.receive:
                await conn.stream.send_all(data)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            conn.scope.cancel()

    async def _read_loop(self, conn: _Connection, handlers: trio.Nursery) -> None:
        codec = ControlCodec(Role.SERVER)
        while True:
            try:
                data = await conn.stream.receive_some(_RECEIVE_SIZE)
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                return
            codec.receive_data(data)
            try:
                while (frame := codec.next_frame()) is not None:
                    assert isinstance(frame, Request)  # a SERVER codec yields only requests
                    await conn.in_flight.acquire()
                    handlers.start_soon(self._dispatch, conn, frame)
            except RemoteProtocolError as exc:
                logger.warning("closing a control connection: %s", exc)
                return
            if not data:
                return

    async def _dispatch(self, conn: _Connection, request: Request) -> None:
        try:
            reply = await self._run(request)
            try:
                data = encode(reply)
            except LocalError:
                logger.exception("control op %s returned a result that cannot be sent", request.op)
                data = encode(_internal_error(request))
            try:
                await conn.send.send(data)
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                return
            if request.op == "subscribe" and reply.ok:
                self._subscribers.add(conn)  # after the reply, so events follow it
        finally:
            conn.in_flight.release()

    async def _run(self, request: Request) -> Reply:
        if request.op == "subscribe":
            return Reply(id=request.id, ok=True, result=None)
        handler = self._handlers.get(request.op)
        if handler is None:
            return Reply(
                id=request.id,
                ok=False,
                error=ErrorInfo(
                    kind="UnknownOperation",
                    message=f"the node has no operation {request.op!r}",
                ),
            )
        try:
            result = await handler(request.args)
        except AnonsipError as exc:
            return Reply(
                id=request.id,
                ok=False,
                error=ErrorInfo(kind=type(exc).__name__, message=str(exc)),
            )
        # The server must outlive any handler bug: log it, answer, carry on.
        except Exception:
            logger.exception("control op %s failed", request.op)
            return _internal_error(request)
        return Reply(id=request.id, ok=True, result=result)


def _internal_error(request: Request) -> Reply:
    return Reply(
        id=request.id,
        ok=False,
        error=ErrorInfo(
            kind="InternalError",
            message=f"the node failed to carry out {request.op!r}; its log has the details",
        ),
    )
