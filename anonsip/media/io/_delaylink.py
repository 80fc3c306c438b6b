"""A trio stream wrapper that delays what is sent by a ``TorLikeDelay`` trace.

For tests and the bench: run the media loop over memory streams or local
TCP as if it crossed a Tor circuit (in order, bursts and stalls, nothing
lost). The forwarding task lives in the nursery of the ``async with``
object; bytes are released at their modelled arrival times.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from types import TracebackType

import trio

from anonsip.media._delaymodel import TorLikeDelay

__all__ = ["DelayedStream"]

_MAX_IN_FLIGHT = 4096  # chunks; a stalled link holds at most this many


class DelayedStream(trio.abc.Stream):
    """``async with DelayedStream(inner, delay) as stream``: delays sends, not receives."""

    def __init__(
        self,
        inner: trio.abc.Stream,
        delay: TorLikeDelay,
        *,
        clock: Callable[[], float] = trio.current_time,
    ) -> None:
        self._inner = inner
        self._delay = delay
        self._clock = clock
        self._send, self._pending = trio.open_memory_channel[tuple[float, bytes]](_MAX_IN_FLIGHT)
        self._lifetime: AbstractAsyncContextManager[DelayedStream] = self._run()
        self._start = 0.0
        self._error: BaseException | None = None

    async def __aenter__(self) -> DelayedStream:
        return await self._lifetime.__aenter__()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self._lifetime.__aexit__(exc_type, exc, tb)

    @asynccontextmanager
    async def _run(self) -> AsyncIterator[DelayedStream]:
        async with trio.open_nursery() as nursery:
            self._start = self._clock()
            nursery.start_soon(self._forward)
            try:
                yield self
            finally:
                # Closing the channel lets the forwarder release what is in flight.
                await self._send.aclose()

    async def _forward(self) -> None:
        async with self._pending:
            async for release, data in self._pending:
                await trio.sleep_until(release)
                try:
                    await self._inner.send_all(data)
                except (trio.BrokenResourceError, trio.ClosedResourceError) as exc:
                    self._error = exc
                    return

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        if self._error is not None:
            raise trio.BrokenResourceError("the delayed link broke") from self._error
        now_ms = (self._clock() - self._start) * 1000
        arrival_ms = self._delay.arrival(now_ms)
        await self._send.send((self._start + arrival_ms / 1000, bytes(data)))

    async def wait_send_all_might_not_block(self) -> None:
        await trio.lowlevel.checkpoint()

    async def receive_some(self, max_bytes: int | None = None) -> bytes | bytearray:
        return await self._inner.receive_some(max_bytes)

    async def aclose(self) -> None:
        await self._send.aclose()
        await self._inner.aclose()
