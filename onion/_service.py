"""Ephemeral v3 onion services via ADD_ONION / DEL_ONION (control-spec 3.27, 3.38).

``publish_service`` maps a virtual onion port to a fresh trio listener,
serves ``handler(stream)`` for each connection in a nursery, and learns
publication from ``HS_DESC UPLOADED`` events (control-spec 4.1.25). The
service is not detached: it dies with the control connection, and leaving
the block removes it with DEL_ONION.

The listener (the service's local end, where tor delivers each stream) is
a Unix socket in a fresh directory of mode 0700 (ADD_ONION
``Port=VIRT,unix:PATH``, which every tor we accept supports), so no other
local user can connect to it and learn or talk to what we serve. A TCP
listener on 127.0.0.1 (open to every local user) is used only when asked
for: a tor attached to that runs as another user cannot reach our
private directory.
"""

from __future__ import annotations

import logging
import shutil
import socket as stdlib_socket
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager, suppress
from pathlib import Path

import trio

from onion._control import ControlConnection
from onion._control_proto import parse_args
from onion._errors import (
    ControlClosed,
    ControlCommandError,
    ControlProtocolError,
    OnionError,
    unwrapped_errors,
)
from onion._keys import OnionKey

__all__ = ["DEFAULT_MAX_CONNECTIONS", "OnionService", "StreamHandler", "publish_service"]

log = logging.getLogger(__name__)

StreamHandler = Callable[[trio.SocketStream], Awaitable[None]]
DEFAULT_MAX_CONNECTIONS = 256
DEFAULT_PUBLISH_TIMEOUT = 60.0
LISTEN_BACKLOG = 128
SOCKET_NAME = "s"


class OnionService:
    """A published onion service: its address, its key and its publication state.

    ``target`` is where tor delivers its streams, as ADD_ONION was told:
    ``unix:PATH`` (``socket_path``) or ``127.0.0.1:PORT`` (``local_port``).
    """

    def __init__(self, *, key: OnionKey, address: str, virtual_port: int, target: str) -> None:
        self.key = key
        self.address = address
        self.virtual_port = virtual_port
        self.target = target
        self.uploads = 0
        self._published = trio.Event()

    @property
    def hostname(self) -> str:
        return f"{self.address}.onion"

    @property
    def socket_path(self) -> Path | None:
        """The Unix socket tor connects to, if the local end is one."""
        return Path(self.target[5:]) if self.target.startswith("unix:") else None

    @property
    def local_port(self) -> int | None:
        """The loopback TCP port tor connects to, if the local end is one."""
        return None if self.target.startswith("unix:") else int(self.target.rpartition(":")[2])

    async def wait_published(self, timeout: float = DEFAULT_PUBLISH_TIMEOUT) -> None:
        """Wait until tor uploaded the descriptor to at least one HSDir."""
        with trio.fail_after(timeout):
            await self._published.wait()

    def _on_uploaded(self) -> None:
        self.uploads += 1
        self._published.set()

    def __repr__(self) -> str:
        return f"<OnionService {self.address}:{self.virtual_port} uploads={self.uploads}>"


@asynccontextmanager
async def publish_service(
    control: ControlConnection,
    handler: StreamHandler,
    *,
    virtual_port: int = 80,
    key: OnionKey | None = None,
    max_connections: int = DEFAULT_MAX_CONNECTIONS,
    unix_socket: bool = True,
) -> AsyncIterator[OnionService]:
    """Publish an onion service for the body of the ``async with``.

    With ``key=None`` tor makes a new ED25519-V3 key; ``service.key.blob`` is
    then the secret to persist for the same address next time. The local
    end is a private Unix socket unless ``unix_socket=False`` (see the
    module docstring).
    """
    async with (
        _local_end(unix_socket) as (listeners, target),
        _published(
            control, handler, listeners, target, virtual_port, key, max_connections
        ) as service,
    ):
        yield service


@asynccontextmanager
async def _local_end(unix_socket: bool) -> AsyncIterator[tuple[list[trio.SocketListener], str]]:
    """Listeners for tor's streams and the ADD_ONION target that names them."""
    if not unix_socket:
        listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
        port = listeners[0].socket.getsockname()[1]
        try:
            yield listeners, f"127.0.0.1:{port}"
        finally:
            for listener in listeners:
                await listener.aclose()
        return
    # mkdtemp makes the directory 0700; short, so the path fits sun_path (108 bytes).
    directory = Path(tempfile.mkdtemp(prefix="onion-"))
    try:
        path = directory / SOCKET_NAME
        sock = trio.socket.socket(stdlib_socket.AF_UNIX, stdlib_socket.SOCK_STREAM)
        try:
            await sock.bind(str(path))
            sock.listen(LISTEN_BACKLOG)
        except BaseException:
            sock.close()
            raise
        listener = trio.SocketListener(sock)
        try:
            yield [listener], f"unix:{path}"
        finally:
            await listener.aclose()
    finally:
        shutil.rmtree(directory, ignore_errors=True)


@asynccontextmanager
async def _published(
    control: ControlConnection,
    handler: StreamHandler,
    listeners: list[trio.SocketListener],
    target: str,
    virtual_port: int,
    key: OnionKey | None,
    max_connections: int,
) -> AsyncIterator[OnionService]:
    with unwrapped_errors():
        async with trio.open_nursery() as nursery:
            address_box: list[str] = []
            uploaded: list[OnionService] = []
            await nursery.start(_watch_uploads, control, address_box, uploaded)
            key_arg = key.blob if key is not None else "NEW:ED25519-V3"
            reply = await control.command("ADD_ONION", key_arg, f"Port={virtual_port},{target}")
            values = reply.values()
            address = values.get("ServiceID", "")
            if key is None:
                blob = values.get("PrivateKey")
                if blob is None:
                    raise ControlProtocolError("ADD_ONION NEW returned no PrivateKey")
                key = OnionKey.from_blob(blob)
            if address != key.address:
                raise ControlProtocolError(f"tor made {address!r}, the key says {key.address!r}")
            service = OnionService(
                key=key, address=address, virtual_port=virtual_port, target=target
            )
            address_box.append(address)
            uploaded.append(service)
            limiter = trio.CapacityLimiter(max_connections)
            await nursery.start(trio.serve_listeners, _guarded(handler, limiter), listeners)
            try:
                yield service
            finally:
                with trio.move_on_after(5) as scope:
                    scope.shield = True
                    with suppress(ControlClosed, ControlCommandError):
                        await control.command("DEL_ONION", address)
                nursery.cancel_scope.cancel()


async def _watch_uploads(
    control: ControlConnection,
    address_box: list[str],
    services: list[OnionService],
    *,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    # Subscribed before ADD_ONION so the first UPLOADED event cannot be missed.
    async with control.events("HS_DESC") as events:
        task_status.started()
        async for event in events:
            words, _ = parse_args(event.args)
            if len(words) >= 2 and words[0] == "UPLOADED" and words[1] in address_box:
                for service in services:
                    service._on_uploaded()


def _guarded(
    handler: StreamHandler, limiter: trio.CapacityLimiter
) -> Callable[[trio.SocketStream], Awaitable[None]]:
    async def serve_one(stream: trio.SocketStream) -> None:
        try:
            limiter.acquire_nowait()
        except trio.WouldBlock:
            log.warning("onion service at capacity; refusing a connection")
            await trio.aclose_forcefully(stream)
            return
        try:
            async with stream:
                await handler(stream)
        except (OnionError, trio.BrokenResourceError, trio.ClosedResourceError) as exc:
            # One peer's broken connection must not take the service down.
            log.info("onion connection ended: %s", exc)
        finally:
            limiter.release()

    return serve_one
