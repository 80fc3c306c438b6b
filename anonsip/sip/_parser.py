"""A sans-IO SIP message parser for a reliable byte stream (RFC 3261 sections 7, 18.3, 25).

Feed bytes with ``receive_data`` (split anywhere: the secure channel hands
over whole frames, but RFC 3261 18.3 stream framing by Content-Length is
what this follows), then call ``next_message`` until it returns ``None``.

Parsing happens in two stages so that a bad message costs as little as
possible:

1. Framing: find the end of the header section, unfold it (RFC 3261 7.3.1),
   bound it, and read Content-Length. A failure here loses the stream's
   framing, so the error is ``fatal`` and the parser stays broken.
2. Grammar: the start line, every header line, the mandatory headers and
   their syntax. The message's bytes are already consumed, so an error here
   is not fatal: the caller answers (``SipParseError.status_code``) and goes on.

Only ``SipParseError`` (a ``RemoteProtocolError``) ever leaves this module for
any input; a Hypothesis test feeds random bytes to hold it to that.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from anonsip.sip._errors import SipParseError, SipUsageError
from anonsip.sip._grammar import is_token, split_commas
from anonsip.sip._headers import CSeq, MediaType, NameAddr, Uri, Via, parse_call_id, parse_uint
from anonsip.sip._message import (
    SINGLE_VALUED,
    Headers,
    Message,
    PartialRequest,
    Request,
    Response,
    canonical_name,
)

_VERSION = re.compile(r"SIP/(\d+)\.(\d+)\Z", re.IGNORECASE)
_STATUS_LINE = re.compile(r"(SIP/\d+\.\d+) (\d{3}) ([^\x00-\x08\x0a-\x1f\x7f]*)\Z", re.IGNORECASE)
_REQUIRED_REQUEST = ("Via", "From", "To", "Call-ID", "CSeq", "Max-Forwards")
_REQUIRED_RESPONSE = ("Via", "From", "To", "Call-ID", "CSeq")
_ANSWERABLE = ("via", "from", "to", "call-id", "cseq")


@dataclass(frozen=True, kw_only=True)
class ParserLimits:
    """Bounds on what a peer may make us buffer and parse."""

    max_message_size: int = 65536
    max_header_count: int = 100
    max_line_length: int = 8192
    max_body_size: int = 60000


def _controls(text: str) -> bool:
    return any(
        (ord(c) < 0x20 and c != "\t") or ord(c) == 0x7F or 0xD800 <= ord(c) <= 0xDFFF for c in text
    )


class MessageParser:
    """Turns a byte stream into ``Request`` and ``Response`` values."""

    def __init__(self, limits: ParserLimits | None = None) -> None:
        self.limits = limits or ParserLimits()
        self._buffer = bytearray()
        self._broken: SipParseError | None = None

    @property
    def buffered(self) -> int:
        """Bytes received but not yet returned as a message."""
        return len(self._buffer)

    def receive_data(self, data: bytes) -> None:
        self._buffer += data

    def next_message(self) -> Message | None:
        """The next complete message, ``None`` if more bytes are needed.

        Raises ``SipParseError``; after a ``fatal`` one every later call
        raises it again.
        """
        if self._broken is not None:
            raise self._broken
        try:
            return self._next()
        except SipParseError as exc:
            if exc.fatal:
                self._broken = exc
            raise

    def _next(self) -> Message | None:
        limits = self.limits
        # RFC 3261 7.5: CRLFs before a start line are ignored (keep-alives).
        skip = 0
        while self._buffer[skip : skip + 2] == b"\r\n":
            skip += 2
        if skip:
            del self._buffer[:skip]
        end = self._buffer.find(b"\r\n\r\n", 0, limits.max_message_size + 4)
        if end == -1:
            if len(self._buffer) > limits.max_message_size:
                raise SipParseError("header section too large", status_code=513, fatal=True)
            first = self._buffer.find(b"\r\n")
            if (first == -1 and len(self._buffer) > limits.max_line_length) or (
                first > limits.max_line_length
            ):
                raise SipParseError("start line too long", status_code=513, fatal=True)
            return None
        head = bytes(self._buffer[:end]).decode("utf-8", errors="surrogateescape")
        start_line, headers = self._frame(head)
        length = self._content_length(start_line, headers)
        total = end + 4 + length
        if total > limits.max_message_size:
            raise SipParseError(
                "message too large",
                status_code=413 if length else 513,
                request=_partial(start_line, headers),
                fatal=True,
            )
        if len(self._buffer) < total:
            return None
        body = bytes(self._buffer[end + 4 : total])
        del self._buffer[:total]
        return _build(start_line, headers, body)

    def _frame(self, head: str) -> tuple[str, list[tuple[str, str]]]:
        """Split and unfold the header section; fatal errors only."""
        limits = self.limits
        lines = head.split("\r\n")
        if any("\r" in line or "\n" in line for line in lines):
            raise SipParseError("bare CR or LF in the header section", fatal=True)
        if any(len(line) > limits.max_line_length for line in lines):
            raise SipParseError("header line too long", status_code=513, fatal=True)
        start_line, header_lines = lines[0], lines[1:]
        if not start_line or start_line[0] in " \t":
            raise SipParseError("missing or indented start line", status_code=None, fatal=True)
        headers: list[tuple[str, str]] = []
        for line in header_lines:
            if line[:1] in (" ", "\t"):
                if not headers:
                    raise SipParseError(
                        "continuation line before any header", status_code=None, fatal=True
                    )
                # RFC 3261 7.3.1: a fold is equivalent to a single SP.
                name, value = headers[-1]
                value = (value + " " + line.strip(" \t")).strip(" \t")
                if len(value) > limits.max_line_length:
                    raise SipParseError("header too long", status_code=513, fatal=True)
                headers[-1] = (name, value)
                continue
            name, colon, value = line.partition(":")
            name = name.rstrip(" \t")
            if not colon or not is_token(name):
                raise SipParseError(
                    f"malformed header line {line[:60]!r}",
                    request=_partial(start_line, headers),
                    fatal=True,
                )
            headers.append((canonical_name(name), value.strip(" \t")))
            if len(headers) > limits.max_header_count:
                raise SipParseError("too many headers", status_code=513, fatal=True)
        return start_line, headers

    def _content_length(self, start_line: str, headers: list[tuple[str, str]]) -> int:
        values = [v for k, v in headers if k == "Content-Length"]
        if not values:
            # RFC 3261 18.3: mandatory on stream transports; without it the
            # end of the message cannot be known.
            raise SipParseError(
                "missing Content-Length", request=_partial(start_line, headers), fatal=True
            )
        if len(values) > 1:
            raise SipParseError(
                "more than one Content-Length", request=_partial(start_line, headers), fatal=True
            )
        try:
            length = parse_uint(values[0], "Content-Length", 2**32)
        except SipParseError as exc:
            raise SipParseError(
                str(exc), request=_partial(start_line, headers), fatal=True
            ) from exc
        if length > self.limits.max_body_size:
            raise SipParseError(
                "body too large", status_code=413, request=_partial(start_line, headers), fatal=True
            )
        return length


def _partial(start_line: str, headers: list[tuple[str, str]]) -> PartialRequest | None:
    """The refused request, if it is one and has what an answer needs (RFC 3261 8.2.6.2)."""
    method = start_line.split(" ", 1)[0]
    if not is_token(method) or start_line.upper().startswith("SIP/"):
        return None
    present = {k.lower() for k, _ in headers}
    if not all(name in present for name in _ANSWERABLE):
        return None
    kept = tuple((k, v) for k, v in headers if k.lower() in _ANSWERABLE)
    if any(_controls(v) for _, v in kept) or any(not is_token(k) for k, _ in kept):
        return None
    # Via must parse (the answer is matched by its branch); CSeq, From and
    # To are copied verbatim, so a bad one there does not stop the answer.
    try:
        for v in (v for k, v in kept if k == "Via"):
            for item in split_commas(v):
                Via.parse(item)
    except SipParseError:
        return None
    return PartialRequest(method=method, headers=kept)


def _build(start_line: str, headers_list: list[tuple[str, str]], body: bytes) -> Message:
    """Stage 2: full grammar checks on a message whose bytes are consumed."""
    headers: Headers = tuple((k, v) for k, v in headers_list if k != "Content-Length")
    if start_line[:4].upper() == "SIP/":
        return _build_response(start_line, headers, body)
    partial = _partial(start_line, headers_list)

    def refuse(why: str, code: int = 400) -> SipParseError:
        return SipParseError(why, status_code=code if partial else None, request=partial)

    parts = start_line.split(" ")
    if len(parts) != 3:
        raise refuse(f"malformed request line {start_line[:80]!r}")
    method, uri_text, version = parts
    if not is_token(method):
        raise refuse(f"bad method {method[:40]!r}")
    match = _VERSION.match(version)
    if match is None:
        raise refuse(f"malformed SIP version {version[:20]!r}")
    if (match.group(1), match.group(2)) != ("2", "0"):
        raise refuse(f"SIP version {version[:20]!r} is not supported", 505)
    try:
        uri = Uri.parse(uri_text)
    except SipParseError as exc:
        raise refuse(str(exc), exc.status_code or 400) from exc
    try:
        _check_header_section(headers, _REQUIRED_REQUEST, body)
        cseq = CSeq.parse(_one(headers, "CSeq"))
    except SipParseError as exc:
        raise refuse(str(exc)) from exc
    if cseq.method != method:
        raise refuse("CSeq method does not match the request method")
    try:
        return Request(method=method, uri=uri, headers=headers, body=body)
    except SipUsageError as exc:  # pragma: no cover - the checks above are stricter
        raise refuse(str(exc)) from exc


def _build_response(start_line: str, headers: Headers, body: bytes) -> Response:
    match = _STATUS_LINE.match(start_line)
    if match is None or _controls(match.group(3)):
        raise SipParseError(f"malformed status line {start_line[:80]!r}", status_code=None)
    version = _VERSION.match(match.group(1))
    if version is None or (version.group(1), version.group(2)) != ("2", "0"):
        raise SipParseError("response is not SIP/2.0", status_code=None)
    code = int(match.group(2))
    if not 100 <= code <= 699:
        raise SipParseError(f"status code {code} outside 100-699", status_code=None)
    try:
        _check_header_section(headers, _REQUIRED_RESPONSE, body)
        CSeq.parse(_one(headers, "CSeq"))
        return Response(status_code=code, reason=match.group(3), headers=headers, body=body)
    except (SipParseError, SipUsageError) as exc:
        raise SipParseError(str(exc), status_code=None) from exc


def _one(headers: Headers, name: str) -> str:
    return next(v for k, v in headers if k == name)


def _check_header_section(headers: Headers, required: tuple[str, ...], body: bytes) -> None:
    seen: dict[str, int] = {}
    for name, value in headers:
        if _controls(value):
            raise SipParseError(f"control character or bad UTF-8 in {name}")
        key = name.lower()
        seen[key] = seen.get(key, 0) + 1
        if key in SINGLE_VALUED and seen[key] > 1:
            raise SipParseError(f"more than one {name} header")
    for name in required:
        if name.lower() not in seen:
            raise SipParseError(f"missing {name} header")
    values = dict((k, v) for k, v in headers)
    parse_call_id(values["Call-ID"])
    NameAddr.parse(values["From"], "From")
    NameAddr.parse(values["To"], "To")
    for name, value in headers:
        if name == "Via":
            for item in split_commas(value):
                Via.parse(item)
    if "Max-Forwards" in values:
        parse_uint(values["Max-Forwards"], "Max-Forwards", 255)
    if "Content-Type" in values:
        MediaType.parse(values["Content-Type"])
    elif body:
        raise SipParseError("a body without Content-Type")  # RFC 3261 20.15
