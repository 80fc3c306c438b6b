"""Trio adapter for the SOCKS5 core: open a stream to an onion service through tor.

Each attempt drives ``SocksClient`` over a fresh TCP connection to tor's
SocksPort, reading exactly the bytes the core asks for, so the returned
``trio.SocketStream`` starts at the service's first byte. The whole open
has one deadline: a peer that went offline while its descriptor is still on
the HSDirs otherwise hangs for about 120 s.
"""

from __future__ import annotations

import logging

import trio

from onion._errors import OnionNotFound, OnionTimeout, SocksProtocolError
from onion._keys import normalize_onion_address
from onion._socks import SocksClient

__all__ = ["DEFAULT_CONNECT_TIMEOUT", "open_onion_stream"]

log = logging.getLogger(__name__)

DEFAULT_CONNECT_TIMEOUT = 30.0
DEFAULT_NOT_FOUND_RETRY = 4.0
FIRST_RETRY_DELAY = 0.2
MAX_RETRY_DELAY = 1.0


async def open_onion_stream(
    socks_host: str,
    socks_port: int,
    address: str,
    port: int,
    *,
    isolation: str | None = None,
    timeout: float = DEFAULT_CONNECT_TIMEOUT,
    not_found_retry: float = DEFAULT_NOT_FOUND_RETRY,
    timeout_retry: float = 0.0,
) -> trio.SocketStream:
    """A stream to ``address:port`` (v3 onion) via tor's SOCKS port.

    ``isolation`` names a stream-isolation group: streams with different
    names never share a circuit (tor's IsolateSOCKSAuth). For the first
    ``not_found_retry`` seconds a "descriptor not found" (0xF0) is retried,
    because a service published a moment ago may not be on every HSDir yet;
    for the first ``timeout_retry`` seconds (none by default) so is a circuit
    or an introduction that timed out (0x06, 0xF7), which a network that has
    just started gives while it builds its first circuits.
    Raises ``OnionNotFound``, ``OnionUnreachable`` or ``OnionTimeout``.
    """
    bare = normalize_onion_address(address)
    host = f"{bare}.onion"
    deadline = trio.current_time() + timeout
    retry_until = trio.current_time() + not_found_retry
    timeouts_until = trio.current_time() + timeout_retry
    delay = FIRST_RETRY_DELAY
    try:
        with trio.fail_at(deadline):
            while True:
                try:
                    return await _connect_once(socks_host, socks_port, host, port, isolation)
                except OnionNotFound:
                    if trio.current_time() + delay > min(retry_until, deadline):
                        raise
                    log.debug("%s not found yet; retrying in %.1f s", host, delay)
                except OnionTimeout:  # tor's reply (the whole open's deadline is below)
                    if trio.current_time() + delay > min(timeouts_until, deadline):
                        raise
                    log.debug("a circuit to %s timed out; retrying in %.1f s", host, delay)
                # A retry backoff, not a readiness wait: tor has no event for
                # "the HSDir this client asks now has the descriptor".
                await trio.sleep(delay)
                delay = min(delay * 2, MAX_RETRY_DELAY)
    except trio.TooSlowError:
        raise OnionTimeout(
            f"cannot reach {host}:{port}: no answer within {timeout:.0f} s "
            "(the peer is probably offline)"
        ) from None


async def _connect_once(
    socks_host: str, socks_port: int, host: str, port: int, isolation: str | None
) -> trio.SocketStream:
    client = SocksClient(host, port, username=isolation, password=isolation)
    stream = await trio.open_tcp_stream(socks_host, socks_port)
    try:
        await stream.send_all(client.start())
        while client.bytes_needed:
            try:
                data = await stream.receive_some(client.bytes_needed)
            except trio.BrokenResourceError as exc:
                raise SocksProtocolError("tor's SOCKS port dropped the connection") from exc
            reply = client.receive_data(data)
            if reply:
                await stream.send_all(reply)
    except BaseException:
        await trio.aclose_forcefully(stream)
        raise
    return stream
