"""SIP messages as values: ``Request``, ``Response`` and their wire form (RFC 3261 section 7).

Headers are an ordered tuple of ``(name, value)`` pairs. Names compare
case-insensitively; on the way in, compact forms (RFC 3261 7.3.3 and the
registry: ``i m e l c f s k t v o u r b``...) become their full names and
well-known names take their canonical spelling, so ``msg.get("v")``,
``msg.get("VIA")`` and ``msg.get("Via")`` agree. ``Content-Length`` is never
stored: it is computed from the body when serialising and consumed by the
parser for framing (RFC 3261 18.3).

Typed accessors (``via``, ``from_``, ``cseq``...) parse on demand and raise
``SipParseError`` because the values usually came from a peer.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Protocol

from anonsip.sip._errors import SipParseError, SipUsageError
from anonsip.sip._grammar import is_token, split_commas
from anonsip.sip._headers import (
    CSeq,
    MediaType,
    NameAddr,
    TokenWithParams,
    Uri,
    Via,
    parse_call_id,
    parse_uint,
)

COMPACT_FORMS = {
    "a": "Accept-Contact",
    "b": "Referred-By",
    "c": "Content-Type",
    "d": "Request-Disposition",
    "e": "Content-Encoding",
    "f": "From",
    "i": "Call-ID",
    "j": "Reject-Contact",
    "k": "Supported",
    "l": "Content-Length",
    "m": "Contact",
    "n": "Identity-Info",
    "o": "Event",
    "r": "Refer-To",
    "s": "Subject",
    "t": "To",
    "u": "Allow-Events",
    "v": "Via",
    "x": "Session-Expires",
    "y": "Identity",
}
_CANONICAL = {
    name.lower(): name
    for name in (
        *COMPACT_FORMS.values(),
        "Accept",
        "Accept-Encoding",
        "Accept-Language",
        "Alert-Info",
        "Allow",
        "Authorization",
        "Call-Info",
        "Content-Disposition",
        "Content-Language",
        "CSeq",
        "Date",
        "Error-Info",
        "Expires",
        "In-Reply-To",
        "Max-Forwards",
        "Min-Expires",
        "MIME-Version",
        "Organization",
        "Priority",
        "Proxy-Authenticate",
        "Proxy-Authorization",
        "Proxy-Require",
        "Reason",
        "Record-Route",
        "Reply-To",
        "Require",
        "Retry-After",
        "Route",
        "Server",
        "Subscription-State",
        "Timestamp",
        "Unsupported",
        "User-Agent",
        "Warning",
        "WWW-Authenticate",
    )
}
# Headers that may appear once only (RFC 3261 7.3.1 and table 2); a second
# copy is a 400 (RFC 4475 3.1.2.19).
SINGLE_VALUED = frozenset(
    {
        "call-id",
        "content-length",
        "content-type",
        "cseq",
        "expires",
        "from",
        "max-forwards",
        "to",
        "event",
        "subscription-state",
        "refer-to",
    }
)

REASON_PHRASES = {
    100: "Trying",
    180: "Ringing",
    181: "Call Is Being Forwarded",
    182: "Queued",
    183: "Session Progress",
    200: "OK",
    202: "Accepted",
    400: "Bad Request",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    408: "Request Timeout",
    413: "Request Entity Too Large",
    415: "Unsupported Media Type",
    416: "Unsupported URI Scheme",
    420: "Bad Extension",
    480: "Temporarily Unavailable",
    481: "Call/Transaction Does Not Exist",
    482: "Loop Detected",
    483: "Too Many Hops",
    486: "Busy Here",
    487: "Request Terminated",
    488: "Not Acceptable Here",
    489: "Bad Event",
    491: "Request Pending",
    500: "Server Internal Error",
    501: "Not Implemented",
    503: "Service Unavailable",
    504: "Server Time-out",
    505: "Version Not Supported",
    513: "Message Too Large",
    600: "Busy Everywhere",
    603: "Decline",
}

Headers = tuple[tuple[str, str], ...]


def canonical_name(name: str) -> str:
    """Full, canonically spelt header name; unknown names are kept as given."""
    lower = name.lower()
    if len(lower) == 1 and lower in COMPACT_FORMS:
        return COMPACT_FORMS[lower]
    return _CANONICAL.get(lower, name)


def _check_value(name: str, value: str) -> None:
    if any((ord(c) < 0x20 and c != "\t") or ord(c) == 0x7F for c in value):
        raise SipUsageError(f"header {name!r} value holds a control character")
    if value != value.strip(" \t"):
        raise SipUsageError(f"header {name!r} value has surrounding whitespace")


def _check_headers(headers: Headers) -> None:
    for name, value in headers:
        if not is_token(name) or canonical_name(name) != name:
            raise SipUsageError(f"header name {name!r} is not a canonical token")
        if name == "Content-Length":
            raise SipUsageError("Content-Length is computed from the body; do not set it")
        _check_value(name, value)


class HeaderSource(Protocol):
    """Anything with SIP headers: a message, or a request parsed only in part."""

    @property
    def headers(self) -> Headers: ...


class _HeaderAccess:
    """Lookup and typed accessors shared by requests and responses."""

    headers: Headers
    body: bytes

    def get(self, name: str) -> str | None:
        """The first value of header ``name`` (any spelling or compact form)."""
        wanted = canonical_name(name).lower()
        for key, value in self.headers:
            if key.lower() == wanted:
                return value
        return None

    def get_all(self, name: str) -> list[str]:
        """Every header line called ``name``, in order."""
        wanted = canonical_name(name).lower()
        return [value for key, value in self.headers if key.lower() == wanted]

    def get_list(self, name: str) -> list[str]:
        """Every element of a comma-separated header across all its lines (RFC 3261 7.3.1)."""
        return [part for value in self.get_all(name) for part in split_commas(value)]

    def _required(self, name: str) -> str:
        value = self.get(name)
        if value is None:
            raise SipParseError(f"missing {name} header")
        return value

    @property
    def via(self) -> list[Via]:
        return [Via.parse(v) for v in self.get_list("Via")]

    @property
    def top_via(self) -> Via:
        values = self.get_list("Via")
        if not values:
            raise SipParseError("missing Via header")
        return Via.parse(values[0])

    @property
    def from_(self) -> NameAddr:
        return NameAddr.parse(self._required("From"), "From")

    @property
    def to(self) -> NameAddr:
        return NameAddr.parse(self._required("To"), "To")

    @property
    def call_id(self) -> str:
        return parse_call_id(self._required("Call-ID"))

    @property
    def cseq(self) -> CSeq:
        return CSeq.parse(self._required("CSeq"))

    @property
    def max_forwards(self) -> int | None:
        value = self.get("Max-Forwards")
        return None if value is None else parse_uint(value, "Max-Forwards", 255)

    @property
    def contact(self) -> list[NameAddr]:
        return [NameAddr.parse(v, "Contact") for v in self.get_list("Contact") if v != "*"]

    @property
    def expires(self) -> int | None:
        value = self.get("Expires")
        return None if value is None else parse_uint(value, "Expires", 2**32 - 1)

    @property
    def event(self) -> TokenWithParams | None:
        value = self.get("Event")
        return None if value is None else TokenWithParams.parse(value, "Event")

    @property
    def subscription_state(self) -> TokenWithParams | None:
        value = self.get("Subscription-State")
        return None if value is None else TokenWithParams.parse(value, "Subscription-State")

    @property
    def refer_to(self) -> NameAddr | None:
        value = self.get("Refer-To")
        return None if value is None else NameAddr.parse(value, "Refer-To")

    @property
    def content_type(self) -> MediaType | None:
        value = self.get("Content-Type")
        return None if value is None else MediaType.parse(value)

    def _header_bytes(self) -> bytes:
        lines = [f"{name}: {value}\r\n" for name, value in self.headers]
        lines.append(f"Content-Length: {len(self.body)}\r\n\r\n")
        return "".join(lines).encode("utf-8")


@dataclass(frozen=True, kw_only=True)
class Request(_HeaderAccess):
    """A SIP request (RFC 3261 7.1)."""

    method: str
    uri: Uri
    headers: Headers = ()
    body: bytes = field(default=b"", repr=False)

    def __post_init__(self) -> None:
        if not is_token(self.method):
            raise SipUsageError(f"method {self.method!r} is not a token")
        _check_headers(self.headers)

    def to_bytes(self) -> bytes:
        start = f"{self.method} {self.uri} SIP/2.0\r\n".encode()
        return start + self._header_bytes() + self.body

    def with_header(self, name: str, value: str) -> Request:
        """A copy with one more header line appended."""
        return replace(self, headers=(*self.headers, (canonical_name(name), value)))

    def with_replaced(self, name: str, value: str | None) -> Request:
        """A copy with every ``name`` line removed, then ``value`` appended unless None."""
        return replace(self, headers=_replaced(self.headers, name, value))


@dataclass(frozen=True, kw_only=True)
class Response(_HeaderAccess):
    """A SIP response (RFC 3261 7.2)."""

    status_code: int
    reason: str = ""
    headers: Headers = ()
    body: bytes = field(default=b"", repr=False)

    def __post_init__(self) -> None:
        if not 100 <= self.status_code <= 699:
            raise SipUsageError(f"status code {self.status_code} is outside 100-699")
        _check_value("reason", self.reason)
        _check_headers(self.headers)

    @property
    def is_provisional(self) -> bool:
        return self.status_code < 200

    @property
    def is_success(self) -> bool:
        return 200 <= self.status_code < 300

    def to_bytes(self) -> bytes:
        start = f"SIP/2.0 {self.status_code} {self.reason}\r\n".encode()
        return start + self._header_bytes() + self.body

    def with_header(self, name: str, value: str) -> Response:
        return replace(self, headers=(*self.headers, (canonical_name(name), value)))

    def with_replaced(self, name: str, value: str | None) -> Response:
        return replace(self, headers=_replaced(self.headers, name, value))


Message = Request | Response


@dataclass(frozen=True, kw_only=True)
class PartialRequest(_HeaderAccess):
    """What was parsed of a request that was refused: enough to answer it."""

    method: str
    headers: Headers = ()
    body: bytes = b""


def _replaced(headers: Headers, name: str, value: str | None) -> Headers:
    canon = canonical_name(name)
    kept = tuple((k, v) for k, v in headers if k.lower() != canon.lower())
    return kept if value is None else (*kept, (canon, value))


def make_response(
    request: HeaderSource,
    status_code: int,
    reason: str | None = None,
    *,
    to_tag: str | None = None,
    headers: Headers = (),
    body: bytes = b"",
) -> Response:
    """Build a response to ``request`` as RFC 3261 8.2.6.2 says.

    Via (every value, in order), From, Call-ID and CSeq are copied; To is
    copied and gets ``to_tag`` if it has no tag yet and the response is not a
    100 Trying. ``headers`` are appended after those.
    """
    copied: list[tuple[str, str]] = []
    for name, value in request.headers:
        key = name.lower()
        if key == "to" and to_tag is not None and status_code != 100:
            to = NameAddr.parse(value, "To")
            if to.tag is None:
                value = str(to.with_tag(to_tag))
        if key in ("via", "from", "to", "call-id", "cseq"):
            copied.append((name, value))
    phrase = REASON_PHRASES.get(status_code, "Unknown") if reason is None else reason
    return Response(status_code=status_code, reason=phrase, headers=(*copied, *headers), body=body)


def make_error_response(
    request_or_partial: HeaderSource, code: int, *, to_tag: str | None = None
) -> Response:
    """The error response for a refused request (400, 413, 416, 481, 501, 505, 513...).

    A 405/501 lists nothing in Allow: the caller adds it if it wants to.
    The To header is copied verbatim when it does not parse (RFC 3261 8.2.6.2
    needs only the copy); a tag is added only to a well-formed To.
    """
    try:
        return make_response(request_or_partial, code, to_tag=to_tag)
    except SipParseError:
        return make_response(request_or_partial, code)
