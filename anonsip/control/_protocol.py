"""The control-socket wire format, sans I/O (docs/control-api.md, "Framing").

Each frame is a 4-byte big-endian length and one msgpack map: a ``Request``
(client to node), or a ``Reply`` / ``Event`` (node to client). The codec is
a plain object in the style of h11: feed it bytes with ``receive_data``,
pull frames with ``next_frame``, turn frames into bytes with ``encode``.
Anything a peer sends that is not a well-formed frame for our role raises
``RemoteProtocolError`` and leaves the codec broken; nothing else escapes.
"""

from __future__ import annotations

import enum
import math
import struct
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

import msgpack

from anonsip._errors import LocalError, RemoteProtocolError

__all__ = [
    "MAX_FRAME",
    "ControlCodec",
    "ErrorInfo",
    "Event",
    "Frame",
    "Reply",
    "Request",
    "Role",
]

MAX_FRAME: Final = 1 << 20
"""Largest msgpack payload (bytes, not counting the 4-byte length) accepted."""

MAX_DEPTH: Final = 32
"""Deepest nesting of lists and maps accepted inside a frame."""

MAX_ID: Final = (1 << 63) - 1

_LENGTH = struct.Struct(">I")


class Role(enum.Enum):
    """Which end of the socket a codec serves: it decodes only what that end receives."""

    CLIENT = "client"  # receives Reply and Event
    SERVER = "server"  # receives Request


@dataclass(frozen=True, kw_only=True)
class Frame:
    """Base of the three frame kinds."""


@dataclass(frozen=True, kw_only=True)
class Request(Frame):
    id: int
    op: str
    args: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, kw_only=True)
class ErrorInfo:
    """Why an operation failed: ``kind`` is an exception class name, ``message`` user text."""

    kind: str
    message: str


@dataclass(frozen=True, kw_only=True)
class Reply(Frame):
    id: int
    ok: bool
    result: Any = None
    error: ErrorInfo | None = None

    def __post_init__(self) -> None:
        if self.ok and self.error is not None:
            raise LocalError("a successful reply carries no error")
        if not self.ok and self.error is None:
            raise LocalError("a failed reply needs an error")


@dataclass(frozen=True, kw_only=True)
class Event(Frame):
    event: str
    data: Mapping[str, Any] = field(default_factory=dict)


def _fail(why: str) -> RemoteProtocolError:
    return RemoteProtocolError(f"malformed control frame: {why}")


def _check_value(value: Any, depth: int) -> None:
    """Accept only plain msgpack data: no ext types, str keys, bounded depth."""
    if value is None or isinstance(value, bool | int | str | bytes):
        return
    if isinstance(value, float):
        if math.isnan(value):  # NaN breaks equality everywhere downstream
            raise _fail("NaN is not allowed")
        return
    if depth >= MAX_DEPTH:
        raise _fail("nested too deeply")
    if isinstance(value, list):
        for item in value:
            _check_value(item, depth + 1)
        return
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                raise _fail("map keys must be strings")
            _check_value(item, depth + 1)
        return
    raise _fail(f"unsupported value of type {type(value).__name__}")


def _get_id(obj: dict[str, Any]) -> int:
    ident = obj["id"]
    if type(ident) is not int or not 0 <= ident <= MAX_ID:
        raise _fail("id must be a non-negative integer")
    return ident


def _get_map(obj: dict[str, Any], key: str) -> dict[str, Any]:
    value = obj[key]
    if not isinstance(value, dict):
        raise _fail(f"{key} must be a map")
    return value


def _get_str(obj: dict[str, Any], key: str) -> str:
    value = obj[key]
    if not isinstance(value, str) or not value:
        raise _fail(f"{key} must be a non-empty string")
    return value


def _to_frame(obj: Any, role: Role) -> Frame:
    if not isinstance(obj, dict):
        raise _fail("a frame must be a map")
    _check_value(obj, 0)
    keys = set(obj)
    if role is Role.SERVER:
        if keys != {"id", "op", "args"}:
            raise _fail("a request has exactly id, op and args")
        return Request(id=_get_id(obj), op=_get_str(obj, "op"), args=_get_map(obj, "args"))
    if "event" in keys:
        if keys != {"event", "data"}:
            raise _fail("an event has exactly event and data")
        return Event(event=_get_str(obj, "event"), data=_get_map(obj, "data"))
    if keys == {"id", "ok", "result"}:
        if obj["ok"] is not True:
            raise _fail("a reply with a result must have ok true")
        return Reply(id=_get_id(obj), ok=True, result=obj["result"])
    if keys == {"id", "ok", "error"}:
        if obj["ok"] is not False:
            raise _fail("a reply with an error must have ok false")
        err = _get_map(obj, "error")
        if set(err) != {"kind", "message"}:
            raise _fail("an error has exactly kind and message")
        kind, message = err["kind"], err["message"]
        if not isinstance(kind, str) or not isinstance(message, str):
            raise _fail("error kind and message must be strings")
        return Reply(id=_get_id(obj), ok=False, error=ErrorInfo(kind=kind, message=message))
    raise _fail("not a reply or an event")


def _to_wire(frame: Frame) -> dict[str, Any]:
    if isinstance(frame, Request):
        return {"id": frame.id, "op": frame.op, "args": dict(frame.args)}
    if isinstance(frame, Reply):
        if frame.ok:
            return {"id": frame.id, "ok": True, "result": frame.result}
        assert frame.error is not None  # __post_init__ guarantees it
        return {
            "id": frame.id,
            "ok": False,
            "error": {"kind": frame.error.kind, "message": frame.error.message},
        }
    if isinstance(frame, Event):
        return {"event": frame.event, "data": dict(frame.data)}
    raise LocalError(f"not a control frame: {frame!r}")


def encode(frame: Frame) -> bytes:
    """Serialise one frame; raise ``LocalError`` if it cannot go on the wire."""
    try:
        payload: bytes = msgpack.packb(_to_wire(frame), use_bin_type=True)
    except (TypeError, ValueError, OverflowError) as exc:
        raise LocalError(f"cannot encode control frame: {exc}") from exc
    if len(payload) > MAX_FRAME:
        raise LocalError(f"control frame of {len(payload)} bytes exceeds {MAX_FRAME}")
    return _LENGTH.pack(len(payload)) + payload


class ControlCodec:
    """Incremental decoder for one direction of a control connection."""

    def __init__(self, role: Role) -> None:
        self.role = role
        self._buffer = bytearray()
        self._eof = False
        self._broken: RemoteProtocolError | None = None

    def receive_data(self, data: bytes) -> None:
        """Buffer bytes from the peer; ``b""`` means the peer closed its side."""
        if self._eof and data:
            raise LocalError("data received after end of stream")
        if not data:
            self._eof = True
        self._buffer += data

    def next_frame(self) -> Frame | None:
        """Return the next complete frame, or ``None`` if more bytes are needed.

        After end of stream with a partial frame buffered, raises
        ``RemoteProtocolError``; with nothing buffered, returns ``None``.
        """
        if self._broken is not None:
            raise self._broken
        try:
            return self._next_frame()
        except RemoteProtocolError as exc:
            self._broken = exc
            raise

    def _next_frame(self) -> Frame | None:
        if len(self._buffer) >= _LENGTH.size:
            (length,) = _LENGTH.unpack_from(self._buffer)
            if length > MAX_FRAME:
                raise _fail(f"frame of {length} bytes exceeds {MAX_FRAME}")
            end = _LENGTH.size + length
            if len(self._buffer) >= end:
                payload = bytes(self._buffer[_LENGTH.size : end])
                del self._buffer[:end]
                return _to_frame(self._unpack(payload), self.role)
        if self._eof and self._buffer:
            raise _fail("connection closed in the middle of a frame")
        return None

    @staticmethod
    def _unpack(payload: bytes) -> Any:
        try:
            return msgpack.unpackb(
                payload,
                raw=False,
                strict_map_key=True,
                use_list=True,
            )
        # msgpack signals bad input with a spread of ValueError subclasses,
        # UnicodeDecodeError and TypeError: all of them are the peer's fault.
        except Exception as exc:
            raise _fail(f"not msgpack ({type(exc).__name__})") from exc

    @property
    def buffered(self) -> int:
        """Bytes received but not yet returned as frames."""
        return len(self._buffer)

    encode = staticmethod(encode)
