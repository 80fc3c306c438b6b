"""Ephemeral v3 onion services via ADD_ONION / DEL_ONION (control-spec 3.27, 3.38).

``publish_service`` maps a virtual onion port to a fresh trio listener on
127.0.0.1:0, serves ``handler(stream)`` for each connection in a nursery,
and learns publication from ``HS_DESC UPLOADED`` events (control-spec
4.1.25). The service is not detached: it dies with the control connection,
and leaving the block removes it with DEL_ONION.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager, suppress

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


class OnionService:
    """A published onion service: its address, its key and its publication state."""

    def __init__(self, *, key: OnionKey, address: str, virtual_port: int, local_port: int) -> None:
        self.key = key
        self.address = address
        self.virtual_port = virtual_port
        self.local_port = local_port
        self.uploads = 0
        self._published = trio.Event()

    @property
    def hostname(self) -> str:
        return f"{self.address}.onion"

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
) -> AsyncIterator[OnionService]:
    """Publish an onion service for the body of the ``async with``.

    With ``key=None`` tor makes a new ED25519-V3 key; ``service.key.blob`` is
    then the secret to persist for the same address next time.
    """
    listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
    local_port = listeners[0].socket.getsockname()[1]
    with unwrapped_errors():
        async with trio.open_nursery() as nursery:
            address_box: list[str] = []
            uploaded: list[OnionService] = []
            await nursery.start(_watch_uploads, control, address_box, uploaded)
            key_arg = key.blob if key is not None else "NEW:ED25519-V3"
            reply = await control.command(
                "ADD_ONION", key_arg, f"Port={virtual_port},127.0.0.1:{local_port}"
            )
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
                key=key, address=address, virtual_port=virtual_port, local_port=local_port
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
