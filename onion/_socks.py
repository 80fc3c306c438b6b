"""Sans-IO SOCKS5 client core (RFC 1928, RFC 1929 username/password) with Tor's extensions.

Tor's ``ExtendedErrors`` SocksPort flag adds reply codes 0xF0-0xF7 for
onion-service failures (tor's socks-extensions.txt, "Extended error
codes"). Username/password are how a caller picks a stream isolation
group (``IsolateSOCKSAuth``); tor accepts any values.

The core tells the adapter exactly how many bytes it needs next
(``bytes_needed``), so the adapter never reads past the SOCKS reply into the
onion service's first bytes.
"""

from __future__ import annotations

import enum
import struct

from onion._errors import (
    OnionAuthRequired,
    OnionBadAddress,
    OnionLocalError,
    OnionNotFound,
    OnionTimeout,
    OnionUnreachable,
    SocksProtocolError,
)

__all__ = ["REPLY_MESSAGES", "SocksClient", "SocksState", "error_for_reply"]

VERSION = 0x05
NO_AUTH = 0x00
USER_PASS = 0x02
NO_ACCEPTABLE = 0xFF
CMD_CONNECT = 0x01
ATYP_IPV4, ATYP_DOMAIN, ATYP_IPV6 = 0x01, 0x03, 0x04

REPLY_MESSAGES: dict[int, str] = {
    0x01: "general SOCKS server failure",
    0x02: "connection not allowed by ruleset",
    0x03: "network unreachable",
    0x04: "host unreachable",
    0x05: "connection refused by the onion service (nothing listens on that port)",
    0x06: "TTL expired (circuit timed out)",
    0x07: "command not supported",
    0x08: "address type not supported",
    0xF0: "onion service descriptor not found (peer offline, unknown, or not yet published)",
    0xF1: "onion service descriptor is invalid",
    0xF2: "introduction to the onion service failed",
    0xF3: "rendezvous with the onion service failed",
    0xF4: "the onion service needs client authorisation",
    0xF5: "client authorisation for the onion service is wrong",
    0xF6: "not a valid onion address",
    0xF7: "introduction to the onion service timed out",
}


def error_for_reply(code: int, target: str) -> OnionUnreachable:
    """The exception for SOCKS reply ``code`` when connecting to ``target``."""
    text = REPLY_MESSAGES.get(code, f"unknown SOCKS reply 0x{code:02X}")
    message = f"cannot reach {target}: {text}"
    if code == 0xF0:
        return OnionNotFound(message, code=code)
    if code in (0xF4, 0xF5):
        return OnionAuthRequired(message, code=code)
    if code == 0xF6:
        return OnionBadAddress(message, code=code)
    if code in (0x06, 0xF7):
        return OnionTimeout(message, code=code)
    return OnionUnreachable(message, code=code)


class SocksState(enum.Enum):
    START = "start"
    AWAIT_METHOD = "await method"
    AWAIT_AUTH = "await auth"
    AWAIT_REPLY_HEAD = "await reply head"
    AWAIT_REPLY_ADDRESS = "await reply address"
    CONNECTED = "connected"
    FAILED = "failed"


# The only moves the machine makes; _go() refuses anything else.
_TRANSITIONS: dict[SocksState, frozenset[SocksState]] = {
    SocksState.START: frozenset({SocksState.AWAIT_METHOD}),
    SocksState.AWAIT_METHOD: frozenset({SocksState.AWAIT_AUTH, SocksState.AWAIT_REPLY_HEAD}),
    SocksState.AWAIT_AUTH: frozenset({SocksState.AWAIT_REPLY_HEAD}),
    SocksState.AWAIT_REPLY_HEAD: frozenset({SocksState.AWAIT_REPLY_ADDRESS}),
    SocksState.AWAIT_REPLY_ADDRESS: frozenset({SocksState.CONNECTED}),
    SocksState.CONNECTED: frozenset(),
    SocksState.FAILED: frozenset(),
}


class SocksClient:
    """One SOCKS5 CONNECT to ``host:port`` (resolved by the proxy: onion names)."""

    def __init__(
        self, host: str, port: int, *, username: str | None = None, password: str | None = None
    ) -> None:
        encoded = host.encode("ascii") if host.isascii() else b""
        if not encoded or len(encoded) > 255:
            raise OnionLocalError(f"cannot ask SOCKS for host {host!r}")
        if not 0 < port < 65536:
            raise OnionLocalError(f"port {port} is out of range")
        if (username is None) != (password is None):
            raise OnionLocalError("give both a SOCKS username and password, or neither")
        self._user = username.encode() if username is not None else None
        self._password = password.encode() if password is not None else None
        for part in (self._user, self._password):
            if part is not None and not 0 < len(part) <= 255:
                raise OnionLocalError("SOCKS username and password are 1-255 bytes")
        self._host = encoded
        self._port = port
        self.target = f"{host}:{port}"
        self.state = SocksState.START
        self._buffer = bytearray()
        self._needed = 0
        self.bound_address: bytes = b""
        self.trailing_data: bytes = b""

    def _go(self, new: SocksState) -> None:
        if new not in _TRANSITIONS[self.state]:
            raise SocksProtocolError(f"SOCKS client cannot move {self.state} -> {new}")
        self.state = new

    def start(self) -> bytes:
        """The greeting to send first."""
        self._go(SocksState.AWAIT_METHOD)
        self._needed = 2
        method = USER_PASS if self._user is not None else NO_AUTH
        return bytes([VERSION, 1, method])

    @property
    def bytes_needed(self) -> int:
        """How many more bytes complete the message we wait for (0 once connected)."""
        return max(0, self._needed - len(self._buffer))

    def receive_data(self, data: bytes) -> bytes:
        """Feed bytes from the proxy; return bytes to send next (maybe empty).

        Raises ``SocksProtocolError`` on bytes that are not SOCKS5 and an
        ``OnionUnreachable`` subclass when tor reports a failure.
        """
        if self.state in (SocksState.CONNECTED, SocksState.FAILED, SocksState.START):
            raise SocksProtocolError(f"unexpected SOCKS data in state {self.state.value}")
        if not data:
            self.state = SocksState.FAILED
            raise SocksProtocolError("the SOCKS proxy closed the connection mid-handshake")
        self._buffer += data
        out = b""
        try:
            while self._needed and len(self._buffer) >= self._needed:
                out += self._step()
        except BaseException:
            self.state = SocksState.FAILED
            raise
        return out

    def _take(self) -> bytes:
        chunk = bytes(self._buffer[: self._needed])
        del self._buffer[: self._needed]
        return chunk

    def _step(self) -> bytes:
        msg = self._take()
        sent = self._dispatch(msg)
        if sent and self._buffer:
            raise SocksProtocolError("the SOCKS proxy answered before it was asked")
        return sent

    def _dispatch(self, msg: bytes) -> bytes:
        if self.state is SocksState.AWAIT_METHOD:
            return self._on_method(msg)
        if self.state is SocksState.AWAIT_AUTH:
            if msg[0] != 0x01:
                raise SocksProtocolError("bad SOCKS username/password reply version")
            if msg[1] != 0x00:
                raise SocksProtocolError("the SOCKS proxy refused our username/password")
            return self._connect_request()
        if self.state is SocksState.AWAIT_REPLY_HEAD:
            return self._on_reply_head(msg)
        self.bound_address = msg
        self._needed = 0
        self._go(SocksState.CONNECTED)
        # Bytes after the reply already belong to the onion service.
        self.trailing_data = bytes(self._buffer)
        self._buffer.clear()
        return b""

    def _on_method(self, msg: bytes) -> bytes:
        if msg[0] != VERSION:
            raise SocksProtocolError(f"not a SOCKS5 proxy (version byte 0x{msg[0]:02X})")
        wanted = USER_PASS if self._user is not None else NO_AUTH
        if msg[1] == NO_ACCEPTABLE or msg[1] != wanted:
            raise SocksProtocolError(f"the SOCKS proxy chose method 0x{msg[1]:02X}")
        if wanted == NO_AUTH:
            return self._connect_request()
        assert self._user is not None
        assert self._password is not None
        self._go(SocksState.AWAIT_AUTH)
        self._needed = 2
        return (
            bytes([0x01, len(self._user)])
            + self._user
            + bytes([len(self._password)])
            + self._password
        )

    def _connect_request(self) -> bytes:
        self._go(SocksState.AWAIT_REPLY_HEAD)
        self._needed = 5  # VER REP RSV ATYP + first address byte (length for names)
        return (
            bytes([VERSION, CMD_CONNECT, 0x00, ATYP_DOMAIN, len(self._host)])
            + self._host
            + struct.pack(">H", self._port)
        )

    def _on_reply_head(self, msg: bytes) -> bytes:
        version, code, reserved, atyp, first = msg
        if version != VERSION or reserved != 0:
            raise SocksProtocolError("malformed SOCKS5 reply")
        if code != 0x00:
            raise error_for_reply(code, self.target)
        if atyp == ATYP_IPV4:
            remaining = 4 - 1 + 2
        elif atyp == ATYP_IPV6:
            remaining = 16 - 1 + 2
        elif atyp == ATYP_DOMAIN:
            remaining = first + 2
        else:
            raise SocksProtocolError(f"SOCKS5 reply with address type 0x{atyp:02X}")
        self._go(SocksState.AWAIT_REPLY_ADDRESS)
        self._needed = remaining
        return b""
