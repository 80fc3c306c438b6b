"""``Tor``: a handle on one running tor, launched by us or attached to.

It joins the control connection, the SOCKS address and (if we launched it)
the bounded tail of tor's log, and offers the operations the rest of the
project calls: bootstrap progress, ``open_stream`` and ``publish_service``.
"""

from __future__ import annotations

import collections
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager

import trio

from onion._bootstrap import CONNECTED_PROGRESS, BootstrapStatus, parse_bootstrap, through
from onion._bridges import Bridge, describe_bridges
from onion._control import ControlConnection
from onion._errors import BootstrapStuck, unwrapped_errors
from onion._keys import OnionKey
from onion._service import DEFAULT_MAX_CONNECTIONS, OnionService, StreamHandler, publish_service
from onion._streams import DEFAULT_CONNECT_TIMEOUT, DEFAULT_NOT_FOUND_RETRY, open_onion_stream

__all__ = ["LOG_TAIL_LINES", "Tor", "TorLog"]

LOG_TAIL_LINES = 200
MAX_LOG_LINE = 4096
DEFAULT_BOOTSTRAP_TIMEOUT = 120.0


class TorLog:
    """A bounded tail of tor's log lines, fed raw bytes from its stdout."""

    def __init__(self, max_lines: int = LOG_TAIL_LINES) -> None:
        self._lines: collections.deque[str] = collections.deque(maxlen=max_lines)
        self._partial = bytearray()

    def feed(self, data: bytes | bytearray) -> list[str]:
        """Add bytes; return the complete new lines (each cut to a bounded length)."""
        self._partial += data
        new: list[str] = []
        while (end := self._partial.find(b"\n")) >= 0:
            line = bytes(self._partial[:end]).decode("utf-8", "replace").rstrip("\r")
            del self._partial[: end + 1]
            new.append(line[:MAX_LOG_LINE])
        if len(self._partial) > MAX_LOG_LINE:
            new.append(bytes(self._partial[:MAX_LOG_LINE]).decode("utf-8", "replace"))
            self._partial.clear()
        self._lines.extend(new)
        return new

    def tail(self, n: int = 20) -> list[str]:
        return list(self._lines)[-n:]


class Tor:
    """A running tor we can control and send streams through."""

    def __init__(
        self,
        *,
        control: ControlConnection,
        socks_host: str,
        socks_port: int,
        log: TorLog | None = None,
        pid: int | None = None,
        unix_services: bool = True,
        bridges: tuple[Bridge, ...] = (),
        attached: bool = False,
    ) -> None:
        self.control = control
        self.socks_host = socks_host
        self.socks_port = socks_port
        self.log = log
        self.pid = pid
        # Whether our onion services' local ends may be private Unix sockets: true
        # unless this tor runs as another user, who could not reach them.
        self.unix_services = unix_services
        self.bridges = bridges  # the bridges we configured (an attached tor's are its own)
        self.attached = attached  # a tor someone else runs: we only drive it

    @property
    def version(self) -> str:
        info = self.control.protocol_info
        return info.tor_version if info else ""

    def log_tail(self, n: int = 20) -> list[str]:
        """The last ``n`` lines tor logged (empty for an attached tor)."""
        return self.log.tail(n) if self.log else []

    # --- bootstrap --------------------------------------------------------------

    @property
    def entry(self) -> str:
        """How this tor enters the network, for progress lines: "an obfs4 bridge", or ""."""
        return describe_bridges(self.bridges) if self.bridges else ""

    async def bootstrap_status(self) -> BootstrapStatus:
        info = await self.control.get_info("status/bootstrap-phase")
        status = parse_bootstrap(info.get("status/bootstrap-phase", ""))
        return through(status or BootstrapStatus(progress=0, tag="unknown", summary=""), self.entry)

    @asynccontextmanager
    async def bootstrap_progress(self) -> AsyncIterator[trio.MemoryReceiveChannel[BootstrapStatus]]:
        """A channel of bootstrap steps: the current one, then each change up to 100%.

        The channel ends after the 100% step. Events come from STATUS_CLIENT
        BOOTSTRAP; nothing polls.
        """
        send, receive = trio.open_memory_channel[BootstrapStatus](64)
        with unwrapped_errors():
            async with (
                self.control.events("STATUS_CLIENT") as events,
                trio.open_nursery() as nursery,
            ):

                async def pump() -> None:
                    async with send:
                        current = await self.bootstrap_status()
                        await send.send(current)
                        if current.done:
                            return
                        async for event in events:
                            status = parse_bootstrap(event.args)
                            if status is None:
                                continue
                            await send.send(through(status, self.entry))
                            if status.done:
                                return

                nursery.start_soon(pump)
                try:
                    yield receive
                finally:
                    nursery.cancel_scope.cancel()

    async def wait_bootstrapped(
        self,
        timeout: float = DEFAULT_BOOTSTRAP_TIMEOUT,
        *,
        on_progress: Callable[[BootstrapStatus], None] | None = None,
    ) -> None:
        """Return once tor says 100%; raise ``BootstrapStuck`` after ``timeout`` s."""
        last: BootstrapStatus | None = None
        with trio.move_on_after(timeout) as scope:
            async with self.bootstrap_progress() as progress:
                async for status in progress:
                    last = status
                    if on_progress is not None:
                        on_progress(status)
                    if status.done:
                        return
        if scope.cancelled_caught or last is None or not last.done:
            tail = "\n  ".join(self.log_tail(12)) or "(no log: tor was attached, not launched)"
            where = str(last) if last else "no progress reported"
            unreachable = last is None or last.progress < CONNECTED_PROGRESS
            if unreachable and self.bridges:
                advice = (
                    f"tor could not reach the network through {self.entry}: check the bridge"
                    " lines, or get others (bridges.torproject.org)."
                )
            elif unreachable:
                advice = (
                    "tor could not reach any relay or directory authority: if this network"
                    " blocks Tor, use a bridge."
                )
            else:
                advice = "Check the network (or the private network's state)."
            raise BootstrapStuck(
                f"tor did not finish bootstrapping within {timeout:.0f} s; last step: {where}."
                f" {advice} Last log lines:\n  {tail}",
                unreachable=unreachable,
            )

    async def shared_random_values(self) -> tuple[str, str]:
        """The consensus's shared random values, current and previous, as tor prints them
        (control-spec GETINFO ``sr/current``, ``sr/previous``): base64, empty when absent."""
        info = await self.control.get_info("sr/current", "sr/previous")
        return info.get("sr/current", ""), info.get("sr/previous", "")

    # --- streams and services --------------------------------------------------------

    async def open_stream(
        self,
        onion_address: str,
        port: int,
        *,
        isolation: str | None = None,
        timeout: float = DEFAULT_CONNECT_TIMEOUT,
        not_found_retry: float = DEFAULT_NOT_FOUND_RETRY,
        timeout_retry: float = 0.0,
    ) -> trio.SocketStream:
        """A stream to ``onion_address:port``; see ``open_onion_stream``."""
        return await open_onion_stream(
            self.socks_host,
            self.socks_port,
            onion_address,
            port,
            isolation=isolation,
            timeout=timeout,
            not_found_retry=not_found_retry,
            timeout_retry=timeout_retry,
        )

    def publish_service(
        self,
        handler: StreamHandler,
        *,
        virtual_port: int = 80,
        key: OnionKey | None = None,
        max_connections: int = DEFAULT_MAX_CONNECTIONS,
    ) -> AbstractAsyncContextManager[OnionService]:
        """``async with tor.publish_service(handler) as service``; see ``publish_service``."""
        return publish_service(
            self.control,
            handler,
            virtual_port=virtual_port,
            key=key,
            max_connections=max_connections,
            unix_socket=self.unix_services,
        )
