"""The trio adapter ``open_onion_stream`` against a SOCKS5 server on localhost that
answers as tor does: a list of reply codes, one per connection, then an echo."""

import functools

import pytest
import trio

from onion._errors import OnionNotFound, OnionTimeout
from onion._keys import onion_address_from_public_key
from onion._streams import open_onion_stream

ONION = onion_address_from_public_key(bytes(32))
TTL_EXPIRED, NOT_FOUND, SUCCEEDED = 0x06, 0xF0, 0x00


async def socks_server(replies: list[int], attempts: list[int], stream: trio.SocketStream) -> None:
    """One connection: a no-auth greeting, a CONNECT to a domain, the next reply."""
    async with stream:
        buffered = b""

        async def read(n: int) -> bytes:
            nonlocal buffered
            while len(buffered) < n:
                chunk = await stream.receive_some()
                if not chunk:
                    raise trio.BrokenResourceError
                buffered += chunk
            out, buffered = buffered[:n], buffered[n:]
            return out

        _version, methods = await read(2)
        await read(methods)
        await stream.send_all(b"\x05\x00")
        head = await read(5)  # version, command, reserved, address type, name length
        await read(head[4] + 2)
        code = replies[len(attempts)] if len(attempts) < len(replies) else SUCCEEDED
        attempts.append(code)
        await stream.send_all(bytes([5, code, 0, 1, 0, 0, 0, 0, 0, 0]))
        if code == SUCCEEDED:
            async for chunk in stream:
                await stream.send_all(chunk)


async def open_through(
    nursery: trio.Nursery, replies: list[int], **retries: float
) -> tuple[trio.SocketStream, list[int]]:
    attempts: list[int] = []
    listeners = await nursery.start(
        functools.partial(
            trio.serve_tcp,
            functools.partial(socks_server, replies, attempts),
            0,
            host="127.0.0.1",
        )
    )
    port = listeners[0].socket.getsockname()[1]
    stream = await open_onion_stream("127.0.0.1", port, ONION, 80, timeout=30, **retries)
    return stream, attempts


async def test_a_circuit_that_timed_out_is_tried_again_when_asked() -> None:
    async with trio.open_nursery() as nursery:
        stream, attempts = await open_through(nursery, [TTL_EXPIRED, TTL_EXPIRED], timeout_retry=10)
        async with stream:
            await stream.send_all(b"ping")
            assert await stream.receive_some(4) == b"ping"
        nursery.cancel_scope.cancel()
    assert attempts == [TTL_EXPIRED, TTL_EXPIRED, SUCCEEDED]


async def test_by_default_a_circuit_timeout_is_the_callers_to_handle() -> None:
    async with trio.open_nursery() as nursery:
        with pytest.raises(OnionTimeout, match="TTL expired"):
            await open_through(nursery, [TTL_EXPIRED])
        nursery.cancel_scope.cancel()


async def test_retries_end_when_their_time_is_up() -> None:
    # The real clock: the autojump clock would also jump while a socket waits.
    async with trio.open_nursery() as nursery:
        with pytest.raises(OnionTimeout, match="TTL expired"):
            await open_through(nursery, [TTL_EXPIRED] * 100, timeout_retry=1)
        with pytest.raises(OnionNotFound):
            await open_through(nursery, [NOT_FOUND] * 100, not_found_retry=1)
        nursery.cancel_scope.cancel()
