"""Trio adapter for tor's control port (control-spec.txt).

``ControlConnection`` owns one TCP stream to a ControlPort and a nursery with
a reader task that feeds ``ControlReplyParser``. Commands are sent one at a
time under a lock, so replies pair with commands in order (control-spec 2.1:
tor answers in order). Asynchronous events fan out to subscribers, each with
its own bounded channel; SETEVENTS always names the union of what the
current subscribers asked for.
"""

from __future__ import annotations

import hmac
import logging
import os
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager, suppress
from dataclasses import dataclass
from types import TracebackType

import trio

from onion._control_proto import (
    ControlMessage,
    ControlReplyParser,
    Event,
    Reply,
    format_command,
    parse_args,
    quote,
    safecookie_client_hash,
    safecookie_server_hash,
)
from onion._errors import (
    AuthenticationFailed,
    ControlClosed,
    ControlCommandError,
    ControlProtocolError,
    OnionLocalError,
    unwrapped_errors,
)

__all__ = ["ControlConnection", "ProtocolInfo"]

log = logging.getLogger(__name__)

RECEIVE_SIZE = 65536
DEFAULT_EVENT_BUFFER = 256
COOKIE_LENGTH = 32


@dataclass(frozen=True, kw_only=True)
class ProtocolInfo:
    """What PROTOCOLINFO says: auth methods, cookie file, tor version."""

    auth_methods: frozenset[str]
    cookie_file: str | None
    tor_version: str


class _Subscriber:
    def __init__(self, types: frozenset[str], buffer: int) -> None:
        self.types = types
        self.send, self.receive = trio.open_memory_channel[Event](buffer)
        self.dropped = 0


class ControlConnection:
    """An authenticated control connection; use as ``async with``.

    ``ControlConnection(host, port, password=None)`` connects (``path=`` a
    control socket instead), asks PROTOCOLINFO and authenticates with
    SAFECOOKIE, COOKIE, HASHEDPASSWORD or NULL, whichever tor offers and we
    can satisfy.
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        path: str | None = None,
        password: str | None = None,
        event_buffer: int = DEFAULT_EVENT_BUFFER,
    ) -> None:
        self.host = host
        self.port = port
        self.path = path
        self._password = password
        self._event_buffer = event_buffer
        self._parser = ControlReplyParser()
        self._stream: trio.SocketStream | None = None
        self._lock = trio.Lock()
        self._reply_send, self._reply_receive = trio.open_memory_channel[Reply](1)
        self._subscribers: list[_Subscriber] = []
        self._set_events: frozenset[str] = frozenset()
        self._closed = False
        self._broken = False
        self._ended = trio.Event()
        self._stack: AsyncExitStack | None = None
        self.protocol_info: ProtocolInfo | None = None

    # --- lifetime -------------------------------------------------------------

    async def __aenter__(self) -> ControlConnection:
        stack = AsyncExitStack()
        try:
            if self.path is not None:
                self._stream = await trio.open_unix_socket(self.path)
            else:
                self._stream = await trio.open_tcp_stream(self.host, self.port)
            stack.push_async_callback(self._stream.aclose)
            nursery = await stack.enter_async_context(trio.open_nursery())
            nursery.start_soon(self._read_loop)
            stack.push_async_callback(self._stop_reader, nursery)
            await self._authenticate()
        except BaseException:
            with unwrapped_errors():
                await stack.aclose()
            raise
        self._stack = stack
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool | None:
        assert self._stack is not None
        stack, self._stack = self._stack, None
        with unwrapped_errors():
            return await stack.__aexit__(exc_type, exc, tb)

    async def _stop_reader(self, nursery: trio.Nursery) -> None:
        self._closed = True
        nursery.cancel_scope.cancel()

    async def _read_loop(self) -> None:
        assert self._stream is not None
        try:
            while True:
                try:
                    data = await self._stream.receive_some(RECEIVE_SIZE)
                except trio.BrokenResourceError:
                    data = b""
                except trio.ClosedResourceError:
                    return  # we closed it
                self._parser.receive_data(data)
                while (message := self._parser.next_message()) is not None:
                    self._dispatch(message)
                if not data:
                    self._broken = not self._closed
                    return
        finally:
            self._closed = True
            self._ended.set()
            self._reply_send.close()
            for sub in self._subscribers:
                sub.send.close()

    def _dispatch(self, message: ControlMessage) -> None:
        if isinstance(message, Event):
            for sub in self._subscribers:
                if message.type in sub.types:
                    try:
                        sub.send.send_nowait(message)
                    except trio.WouldBlock:
                        # Bounded: a slow subscriber loses events rather than growing memory.
                        sub.dropped += 1
                    except trio.ClosedResourceError:
                        pass
            return
        assert isinstance(message, Reply)
        try:
            self._reply_send.send_nowait(message)
        except trio.WouldBlock:
            raise ControlProtocolError("tor sent a reply nobody asked for") from None

    # --- commands -------------------------------------------------------------

    async def command(self, *parts: str, check: bool = True) -> Reply:
        """Send one command and return its reply; raise on 4xx/5xx if ``check``."""
        line = format_command(*parts)
        if self._closed or self._stream is None:
            raise ControlClosed("the control connection to tor is closed")
        async with self._lock:
            try:
                await self._stream.send_all(line)
            except (trio.BrokenResourceError, trio.ClosedResourceError) as exc:
                raise ControlClosed("tor closed the control connection") from exc
            try:
                reply = await self._reply_receive.receive()
            except (trio.EndOfChannel, trio.ClosedResourceError) as exc:
                raise ControlClosed("tor closed the control connection") from exc
        if check and not reply.ok:
            raise ControlCommandError(reply.status, reply.text, parts[0])
        return reply

    async def get_info(self, *keys: str) -> dict[str, str]:
        """GETINFO: the values tor reports for ``keys``."""
        reply = await self.command("GETINFO", *keys)
        return reply.values()

    async def get_conf(self, key: str) -> str:
        reply = await self.command("GETCONF", key)
        return reply.values().get(key, "")

    async def signal(self, name: str) -> None:
        await self.command("SIGNAL", name)

    @asynccontextmanager
    async def events(
        self, *types: str, buffer: int | None = None
    ) -> AsyncIterator[trio.MemoryReceiveChannel[Event]]:
        """Subscribe to asynchronous events of ``types`` while inside the block.

        The channel holds at most ``buffer`` events; a subscriber that falls
        further behind loses the newest ones (counted in ``statistics()``).
        """
        sub = _Subscriber(frozenset(t.upper() for t in types), buffer or self._event_buffer)
        self._subscribers.append(sub)
        try:
            await self._update_events()
            yield sub.receive
        finally:
            self._subscribers.remove(sub)
            sub.send.close()
            if not self._closed:
                with trio.move_on_after(5) as scope:
                    scope.shield = True
                    with suppress(ControlClosed):
                        await self._update_events()

    async def _update_events(self) -> None:
        wanted = frozenset().union(*(s.types for s in self._subscribers))
        if wanted != self._set_events:
            await self.command("SETEVENTS", *sorted(wanted))
            self._set_events = wanted

    def statistics(self) -> dict[str, int]:
        return {
            "subscribers": len(self._subscribers),
            "events_dropped": sum(s.dropped for s in self._subscribers),
        }

    async def wait_ended(self) -> None:
        """Return once the connection ended (closed by us, or broken by tor)."""
        await self._ended.wait()

    @property
    def where(self) -> str:
        """The control port or socket, as a user would write it."""
        return self.path if self.path is not None else f"{self.host}:{self.port}"

    @property
    def closed(self) -> bool:
        """True once the connection is closed, by us or by tor."""
        return self._closed

    @property
    def broken(self) -> bool:
        """True if tor closed the connection (it exited or dropped us), not we."""
        return self._broken

    # --- authentication (control-spec 3.5, 3.21, 3.24) -----------------------------

    async def _authenticate(self) -> None:
        info = await self._protocol_info()
        self.protocol_info = info
        methods = info.auth_methods
        if self._password is not None and "HASHEDPASSWORD" in methods:
            await self._auth_command(quote(self._password))
        elif "SAFECOOKIE" in methods and info.cookie_file:
            await self._safecookie(await _read_cookie(info.cookie_file))
        elif "COOKIE" in methods and info.cookie_file:
            cookie = await _read_cookie(info.cookie_file)
            await self._auth_command(cookie.hex())
        elif "NULL" in methods:
            await self._auth_command()
        else:
            offered = ",".join(sorted(methods)) or "none"
            raise AuthenticationFailed(
                f"tor at {self.where} offers authentication {offered}; "
                "pass the control password or run tor with CookieAuthentication 1"
            )

    async def _protocol_info(self) -> ProtocolInfo:
        reply = await self.command("PROTOCOLINFO", "1")
        methods: frozenset[str] = frozenset()
        cookie_file = None
        version = ""
        for line in reply.lines:
            words, keywords = parse_args(line.text)
            if words[:1] == ["AUTH"]:
                methods = frozenset(m for m in keywords.get("METHODS", "").split(",") if m)
                cookie_file = keywords.get("COOKIEFILE")
            elif words[:1] == ["VERSION"]:
                version = keywords.get("Tor", "")
        return ProtocolInfo(auth_methods=methods, cookie_file=cookie_file, tor_version=version)

    async def _safecookie(self, cookie: bytes) -> None:
        client_nonce = os.urandom(32)
        reply = await self.command("AUTHCHALLENGE", "SAFECOOKIE", client_nonce.hex())
        _, keywords = parse_args(reply.text)
        try:
            server_hash = bytes.fromhex(keywords["SERVERHASH"])
            server_nonce = bytes.fromhex(keywords["SERVERNONCE"])
        except (KeyError, ValueError) as exc:
            raise ControlProtocolError(f"bad AUTHCHALLENGE reply: {reply.text!r}") from exc
        expected = safecookie_server_hash(cookie, client_nonce, server_nonce)
        if not _equal(server_hash, expected):
            raise AuthenticationFailed(
                "tor's SAFECOOKIE proof is wrong: the cookie file does not belong "
                "to the tor on this port"
            )
        await self._auth_command(safecookie_client_hash(cookie, client_nonce, server_nonce).hex())

    async def _auth_command(self, *secret: str) -> None:
        reply = await self.command("AUTHENTICATE", *secret, check=False)
        if not reply.ok:
            raise AuthenticationFailed(f"tor refused authentication: {reply.text}")


def _equal(a: bytes, b: bytes) -> bool:
    return hmac.compare_digest(a, b)


async def _read_cookie(path: str) -> bytes:
    try:
        cookie = await trio.Path(path).read_bytes()
    except OSError as exc:
        raise AuthenticationFailed(
            f"cannot read tor's control cookie {path}: {exc.strerror}; "
            "run as a user that can read it (e.g. in the debian-tor group)"
        ) from exc
    if len(cookie) != COOKIE_LENGTH:
        raise OnionLocalError(f"tor's control cookie {path} is not {COOKIE_LENGTH} bytes")
    return cookie
