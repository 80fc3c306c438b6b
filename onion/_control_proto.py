"""Sans-IO core of tor's control protocol (control-spec.txt, sections 2 and 3).

Bytes from the control port go in with ``receive_data``; complete replies and
asynchronous events come out of ``next_message``. A reply is one or more
lines ``XYZ-text`` (mid), ``XYZ+keyword=`` followed by a dot-terminated,
dot-stuffed data block, and a final ``XYZ text``. Status 650 marks an
asynchronous event (section 4.1). Nothing here does I/O, reads a clock or
draws random numbers: the adapter in ``_control.py`` hands in the nonce.

Every line and every reply is bounded; anything malformed raises
``ControlProtocolError`` (the remote kind: these bytes came from a socket).
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass

from onion._errors import ControlProtocolError, OnionLocalError

__all__ = [
    "ControlMessage",
    "ControlReplyParser",
    "Event",
    "Reply",
    "ReplyLine",
    "format_command",
    "parse_args",
    "quote",
    "safecookie_client_hash",
    "safecookie_server_hash",
]

EVENT_STATUS = 650
DEFAULT_MAX_LINE = 256 * 1024
DEFAULT_MAX_REPLY = 8 * 1024 * 1024
# One reply with more lines than this is refused even if each line is short.
MAX_LINES_PER_REPLY = 100_000


@dataclass(frozen=True, kw_only=True)
class ReplyLine:
    """One reply line; ``data`` holds the dot-unstuffed block of a ``+`` line."""

    status: int
    text: str
    data: bytes | None = None


@dataclass(frozen=True, kw_only=True)
class ControlMessage:
    """What the parser yields: a complete reply or an asynchronous event."""

    status: int
    lines: tuple[ReplyLine, ...]

    @property
    def text(self) -> str:
        """The final line's text (``OK`` for most successful commands)."""
        return self.lines[-1].text

    def values(self) -> dict[str, str]:
        """``key=value`` lines as a dict (GETINFO, ADD_ONION); data blocks decoded.

        A value that is exactly one QuotedString is unquoted; any other value
        (several quoted strings, as ``net/listeners/*`` may give) stays as tor
        sent it, for the caller to read by its key's format.
        """
        out: dict[str, str] = {}
        for line in self.lines:
            key, sep, value = line.text.partition("=")
            if not sep:
                continue
            if line.data is not None:
                out[key] = line.data.decode("utf-8", "replace")
            elif value.startswith('"'):
                words, keywords = parse_args(value)
                single = len(words) == 1 and not keywords and quote(words[0]) == value
                out[key] = words[0] if single else value
            else:
                out[key] = value
        return out


@dataclass(frozen=True, kw_only=True)
class Reply(ControlMessage):
    """The synchronous answer to one command, in the order commands were sent."""

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300


@dataclass(frozen=True, kw_only=True)
class Event(ControlMessage):
    """An asynchronous 650 event; ``type`` is its first word (``HS_DESC``...)."""

    type: str

    @property
    def args(self) -> str:
        """The first line after the event type."""
        return self.lines[0].text[len(self.type) :].lstrip(" ")


class ControlReplyParser:
    """Turns control-port bytes into ``Reply`` and ``Event`` objects."""

    def __init__(
        self, *, max_line: int = DEFAULT_MAX_LINE, max_reply: int = DEFAULT_MAX_REPLY
    ) -> None:
        self._max_line = max_line
        self._max_reply = max_reply
        self._buffer = bytearray()
        self._lines: list[ReplyLine] = []
        self._reply_size = 0
        # While inside a "+" data block: the line that opened it and the data so far.
        self._data_head: tuple[int, str] | None = None
        self._data: bytearray = bytearray()
        self._ready: list[ControlMessage] = []
        self._eof = False

    def receive_data(self, data: bytes) -> None:
        """Feed bytes read from the control port; ``b""`` means end of stream."""
        if self._eof:
            raise ControlProtocolError("data received after the control connection closed")
        if not data:
            self._eof = True
            return
        self._buffer += data
        self._parse()

    def next_message(self) -> ControlMessage | None:
        """The next complete reply or event, or None if more bytes are needed.

        After end of stream, a half-received reply raises ``ControlProtocolError``.
        """
        if self._ready:
            return self._ready.pop(0)
        if self._eof and (self._buffer or self._lines or self._data_head is not None):
            raise ControlProtocolError("tor closed the control connection in the middle of a reply")
        return None

    @property
    def at_eof(self) -> bool:
        return self._eof and not self._ready

    def _parse(self) -> None:
        while True:
            end = self._buffer.find(b"\n")
            if end < 0:
                if len(self._buffer) > self._max_line:
                    raise ControlProtocolError(f"control line longer than {self._max_line} bytes")
                return
            if end > self._max_line:
                raise ControlProtocolError(f"control line longer than {self._max_line} bytes")
            raw = bytes(self._buffer[:end])
            del self._buffer[: end + 1]
            if raw.endswith(b"\r"):
                raw = raw[:-1]
            self._reply_size += len(raw) + 2
            if self._reply_size > self._max_reply:
                raise ControlProtocolError(f"control reply larger than {self._max_reply} bytes")
            if self._data_head is not None:
                self._data_line(raw)
            else:
                self._reply_line(raw)

    def _data_line(self, raw: bytes) -> None:
        if raw == b".":
            assert self._data_head is not None
            status, text = self._data_head
            self._data_head = None
            self._add_line(ReplyLine(status=status, text=text, data=bytes(self._data)))
            self._data = bytearray()
            return
        if raw.startswith(b"."):
            raw = raw[1:]  # dot-unstuffing (control-spec 2.3)
        self._data += raw + b"\n"

    def _reply_line(self, raw: bytes) -> None:
        if len(raw) < 4 or not raw[:3].isdigit() or raw[3:4] not in (b"-", b"+", b" "):
            raise ControlProtocolError(f"not a control-protocol reply line: {raw[:80]!r}")
        status = int(raw[:3])
        if self._lines and status != self._lines[0].status:
            raise ControlProtocolError(
                f"status changed inside one reply ({self._lines[0].status} then {status})"
            )
        try:
            text = raw[4:].decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ControlProtocolError("control reply line is not UTF-8") from exc
        kind = raw[3:4]
        if kind == b"+":
            self._data_head = (status, text)
        elif kind == b"-":
            self._add_line(ReplyLine(status=status, text=text))
        else:
            self._add_line(ReplyLine(status=status, text=text))
            self._finish()

    def _add_line(self, line: ReplyLine) -> None:
        if len(self._lines) >= MAX_LINES_PER_REPLY:
            raise ControlProtocolError("control reply has too many lines")
        self._lines.append(line)

    def _finish(self) -> None:
        lines = tuple(self._lines)
        self._lines = []
        self._reply_size = 0
        status = lines[0].status
        message: ControlMessage
        if status == EVENT_STATUS:
            kind = lines[0].text.split(" ", 1)[0]
            if not kind:
                raise ControlProtocolError("asynchronous event without a type")
            message = Event(status=status, lines=lines, type=kind)
        else:
            message = Reply(status=status, lines=lines)
        self._ready.append(message)


# --- arguments --------------------------------------------------------------

_UNESCAPE = {"n": "\n", "r": "\r", "t": "\t", "\\": "\\", '"': '"'}


def parse_args(text: str) -> tuple[list[str], dict[str, str]]:
    """Split ``a b KEY=VAL KEY2="quoted \\"x\\""`` into positional words and keywords.

    A bare quoted string is a positional word. Raises ``ControlProtocolError`` on
    an unterminated quote (the text came from tor).
    """
    words: list[str] = []
    keywords: dict[str, str] = {}
    i, n = 0, len(text)
    while i < n:
        if text[i] == " ":
            i += 1
            continue
        key = None
        j = i
        while j < n and text[j] not in ' ="':
            j += 1
        if j < n and text[j] == "=":
            key = text[i:j]
            i = j + 1
        if i < n and text[i] == '"':
            value, i = _quoted(text, i)
        else:
            j = i
            while j < n and text[j] != " ":
                j += 1
            value, i = text[i:j], j
        if key is None:
            words.append(value)
        else:
            keywords[key] = value
    return words, keywords


def _quoted(text: str, start: int) -> tuple[str, int]:
    out: list[str] = []
    i = start + 1
    while i < len(text):
        ch = text[i]
        if ch == "\\" and i + 1 < len(text):
            out.append(_UNESCAPE.get(text[i + 1], text[i + 1]))
            i += 2
        elif ch == '"':
            return "".join(out), i + 1
        else:
            out.append(ch)
            i += 1
    raise ControlProtocolError(f"unterminated quoted string in {text[:80]!r}")


def quote(value: str) -> str:
    """A control-spec QuotedString for ``value``."""
    escaped = value.replace("\\", "\\\\").replace('"', '\\"')
    return f'"{escaped}"'


def format_command(*parts: str) -> bytes:
    """One command line, CRLF-terminated; refuses CR, LF and NUL (command injection)."""
    line = " ".join(parts)
    if any(ch in line for ch in "\r\n\0"):
        raise OnionLocalError("control command arguments must not contain CR, LF or NUL")
    return line.encode("utf-8") + b"\r\n"


# --- SAFECOOKIE (control-spec 3.24) ---------------------------------------------

_SERVER_TO_CONTROLLER = b"Tor safe cookie authentication server-to-controller hash"
_CONTROLLER_TO_SERVER = b"Tor safe cookie authentication controller-to-server hash"


def safecookie_server_hash(cookie: bytes, client_nonce: bytes, server_nonce: bytes) -> bytes:
    """What tor must send as SERVERHASH to prove it knows the cookie."""
    return hmac.new(
        _SERVER_TO_CONTROLLER, cookie + client_nonce + server_nonce, hashlib.sha256
    ).digest()


def safecookie_client_hash(cookie: bytes, client_nonce: bytes, server_nonce: bytes) -> bytes:
    """What we send to AUTHENTICATE after checking the server hash."""
    return hmac.new(
        _CONTROLLER_TO_SERVER, cookie + client_nonce + server_nonce, hashlib.sha256
    ).digest()
