"""Structured SIP header values: URIs, name-addr, Via, CSeq and friends.

Grammar from RFC 3261 sections 19.1 (SIP URI), 20 and 25 (header fields),
RFC 6665 (Event, Subscription-State), RFC 3515 (Refer-To). Each value type
is a frozen dataclass with ``parse(text)`` (raises ``SipParseError``: the
text came from a peer) and ``__str__`` giving its wire form.

URIs are treated generically (scheme, user, host, port, params, headers);
only ``sip`` and ``sips`` are accepted: anonsip addresses of record are
``sip:<address>@<domain>`` and nothing else ever travels here.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace

from anonsip.sip._errors import SipParseError, SipUsageError
from anonsip.sip._grammar import (
    GEN_VALUE_CHARS,
    HEADER_PART_CHARS,
    PARAM_CHARS,
    PASSWORD_CHARS,
    USER_CHARS,
    WSP,
    Params,
    Scanner,
    check_escapes,
    format_params,
    is_host,
    is_token,
    is_word,
    param_lookup,
    param_replace,
    quote,
)

BRANCH_COOKIE = "z9hG4bK"
_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*")
SCHEMES = frozenset({"sip", "sips"})
MAX_CSEQ = 2**31 - 1  # RFC 3261 8.1.1.5: "MUST be less than 2**31"
MAX_DELTA_SECONDS = 2**32 - 1
MAX_FORWARDS_LIMIT = 255


def _bad(what: str, text: str) -> SipParseError:
    return SipParseError(f"malformed {what}: {text[:80]!r}")


@dataclass(frozen=True, kw_only=True)
class Uri:
    """A SIP or SIPS URI (RFC 3261 19.1.1); ``user`` and params keep their escapes."""

    scheme: str = "sip"
    user: str | None = None
    password: str | None = None
    host: str
    port: int | None = None
    params: Params = ()
    headers: str | None = None

    def __post_init__(self) -> None:
        if self.scheme.lower() not in SCHEMES:
            raise SipUsageError(f"unsupported URI scheme {self.scheme!r}")
        if self.user is not None and (
            not self.user
            or not all(c in USER_CHARS for c in self.user)
            or not check_escapes(self.user)
        ):
            raise SipUsageError(f"bad URI user part {self.user!r}")
        if not is_host(self.host):
            raise SipUsageError(f"bad URI host {self.host!r}")
        if self.port is not None and not 0 <= self.port <= 65535:
            raise SipUsageError(f"bad URI port {self.port!r}")
        for name, value in self.params:
            if not name or not all(c in PARAM_CHARS for c in name):
                raise SipUsageError(f"bad URI parameter name {name!r}")
            if value is not None and (not value or not all(c in PARAM_CHARS for c in value)):
                raise SipUsageError(f"bad URI parameter value {value!r}")

    @classmethod
    def parse(cls, text: str) -> Uri:
        """Parse ``sip:user@host:port;params?headers``."""
        scheme, colon, rest = text.partition(":")
        if not colon or not _SCHEME.fullmatch(scheme):
            raise _bad("URI", text)
        if scheme.lower() not in SCHEMES:
            raise SipParseError(
                f"unsupported or missing URI scheme in {text[:80]!r}", status_code=416
            )
        user: str | None = None
        password: str | None = None
        at = rest.find("@")
        if at != -1:
            userinfo, rest = rest[:at], rest[at + 1 :]
            user, has_pw, pw = userinfo.partition(":")
            if has_pw:
                if not all(c in PASSWORD_CHARS for c in pw) or not check_escapes(pw):
                    raise _bad("URI password", text)
                password = pw
            if not user or not all(c in USER_CHARS for c in user) or not check_escapes(user):
                raise _bad("URI user part", text)
        headers: str | None = None
        rest, has_q, hdrs = rest.partition("?")
        if has_q:
            if not hdrs or not all(c in HEADER_PART_CHARS for c in hdrs) or not check_escapes(hdrs):
                raise _bad("URI headers", text)
            headers = hdrs
        hostport, *raw_params = rest.split(";")
        host, port = _split_hostport(hostport, text)
        params: list[tuple[str, str | None]] = []
        for raw in raw_params:
            name, eq, value = raw.partition("=")
            if (
                not name
                or not all(c in PARAM_CHARS for c in name)
                or (eq and (not value or not all(c in PARAM_CHARS for c in value)))
                or not check_escapes(raw)
            ):
                raise _bad("URI parameter", text)
            params.append((name, value if eq else None))
        return cls(
            scheme=scheme.lower(),
            user=user,
            password=password,
            host=host,
            port=port,
            params=tuple(params),
            headers=headers,
        )

    def param(self, name: str) -> str | None:
        return param_lookup(self.params, name)

    def aor(self) -> Uri:
        """The address of record: scheme, user and host only (RFC 3261 10.3 step 5)."""
        return Uri(scheme=self.scheme, user=self.user, host=self.host.lower())

    def __str__(self) -> str:
        out = [self.scheme, ":"]
        if self.user is not None:
            out.append(self.user)
            if self.password is not None:
                out.append(":" + self.password)
            out.append("@")
        out.append(self.host)
        if self.port is not None:
            out.append(f":{self.port}")
        out.append(format_params(self.params))
        if self.headers is not None:
            out.append("?" + self.headers)
        return "".join(out)


def _split_hostport(hostport: str, text: str) -> tuple[str, int | None]:
    if hostport.startswith("["):
        end = hostport.find("]")
        host, tail = hostport[: end + 1], hostport[end + 1 :]
        if end == -1:
            raise _bad("URI host", text)
    else:
        host = hostport.partition(":")[0]
        tail = hostport[len(host) :]
    port: int | None = None
    if tail:
        if not tail.startswith(":") or not tail[1:].isascii() or not tail[1:].isdigit():
            raise _bad("URI port", text)
        if len(tail) > 6 or int(tail[1:]) > 65535:
            raise _bad("URI port", text)
        port = int(tail[1:])
    if not is_host(host):
        raise _bad("URI host", text)
    return host, port


def check_header_params(params: Params) -> None:
    """Header parameters are ``token [= token / host / quoted-string]`` (RFC 3261 25.1)."""
    for name, value in params:
        if not is_token(name):
            raise SipUsageError(f"bad header parameter name {name!r}")
        if value is None:
            continue
        if value.startswith('"'):
            sc = Scanner(value, "parameter")
            try:
                sc.quoted_string()
            except SipParseError as exc:
                raise SipUsageError(f"bad quoted parameter value {value!r}") from exc
            if sc.at_end():
                continue
        if not value or not all(c in GEN_VALUE_CHARS for c in value):
            raise SipUsageError(f"bad header parameter value {value!r}")


def _scan_uri_in_header(sc: Scanner) -> tuple[Uri, bool]:
    """Read ``<uri>`` or a bare addr-spec; return it and whether it was bracketed."""
    if sc.peek() == "<":
        end = sc.text.find(">", sc.pos)
        if end == -1:
            raise sc.fail("missing '>'")
        uri = Uri.parse(sc.text[sc.pos + 1 : end])
        sc.pos = end + 1
        return uri, True
    # RFC 3261 20.10: a bare addr-spec ends at the first ';', ',' or space;
    # what follows are header parameters, not URI parameters.
    start = sc.pos
    while not sc.at_end() and sc.peek() not in ";," + WSP:
        sc.pos += 1
    return Uri.parse(sc.text[start : sc.pos]), False


@dataclass(frozen=True, kw_only=True)
class NameAddr:
    """``[display-name] <uri> *(;param)`` as in From, To, Contact, Refer-To (RFC 3261 20)."""

    uri: Uri
    display_name: str | None = None
    params: Params = ()

    def __post_init__(self) -> None:
        check_header_params(self.params)

    @classmethod
    def parse(cls, text: str, what: str = "name-addr") -> NameAddr:
        sc = Scanner(text, what)
        sc.skip_ws()
        display: str | None = None
        if sc.peek() == '"':
            display = sc.quoted_string()
            sc.skip_ws()
            if sc.peek() != "<":
                raise sc.fail("display name not followed by '<'")
        elif sc.peek() != "<":
            # Either a bare addr-spec or a token display name before '<'.
            lt = text.find("<", sc.pos)
            head = text[sc.pos : lt] if lt != -1 else ""
            if lt != -1 and ":" not in head:
                words = head.split()
                if not words or not all(is_token(w) for w in words):
                    raise sc.fail("bad display name")
                display = " ".join(words)
                sc.pos = lt
        uri, _ = _scan_uri_in_header(sc)
        params = sc.params()
        sc.finish()
        return cls(uri=uri, display_name=display, params=params)

    @property
    def tag(self) -> str | None:
        return param_lookup(self.params, "tag")

    def with_tag(self, tag: str) -> NameAddr:
        return replace(self, params=param_replace(self.params, "tag", tag))

    def __str__(self) -> str:
        display = "" if self.display_name is None else quote(self.display_name) + " "
        return f"{display}<{self.uri}>{format_params(self.params)}"


@dataclass(frozen=True, kw_only=True)
class Via:
    """One Via value: ``SIP/2.0/<transport> host[:port] *(;param)`` (RFC 3261 20.42)."""

    transport: str = "TCP"
    host: str
    port: int | None = None
    params: Params = ()

    @classmethod
    def parse(cls, text: str) -> Via:
        sc = Scanner(text, "Via")
        sc.skip_ws()
        name = sc.token()
        sc.expect("/")
        version = sc.token()
        sc.expect("/")
        transport = sc.token()
        if name.upper() != "SIP" or version != "2.0":
            raise sc.fail("sent-protocol is not SIP/2.0")
        if not sc.peek() or sc.peek() not in WSP:
            raise sc.fail("no space before sent-by")
        sc.skip_ws()
        start = sc.pos
        while not sc.at_end() and sc.peek() not in ";" + WSP:
            sc.pos += 1
        host, port = _split_hostport(text[start : sc.pos], text)
        params = sc.params()
        sc.finish()
        return cls(transport=transport.upper(), host=host, port=port, params=params)

    @property
    def branch(self) -> str | None:
        return param_lookup(self.params, "branch")

    def __str__(self) -> str:
        port = "" if self.port is None else f":{self.port}"
        return f"SIP/2.0/{self.transport} {self.host}{port}{format_params(self.params)}"


@dataclass(frozen=True, kw_only=True)
class CSeq:
    """``CSeq: <number> <method>`` (RFC 3261 20.16)."""

    number: int
    method: str

    @classmethod
    def parse(cls, text: str) -> CSeq:
        parts = text.split()
        if (
            len(parts) != 2
            or not parts[0].isascii()
            or not parts[0].isdigit()
            or len(parts[0]) > 10
            or not is_token(parts[1])
        ):
            raise _bad("CSeq", text)
        number = int(parts[0])
        if number > MAX_CSEQ:
            raise _bad("CSeq (number too large)", text)
        return cls(number=number, method=parts[1])

    def __str__(self) -> str:
        return f"{self.number} {self.method}"


def parse_call_id(text: str) -> str:
    """``Call-ID: word [ "@" word ]`` (RFC 3261 20.8)."""
    local, at, host = text.partition("@")
    if not is_word(local) or (at and not is_word(host)):
        raise _bad("Call-ID", text)
    return text


def parse_uint(text: str, what: str, maximum: int) -> int:
    """``1*DIGIT`` bounded by ``maximum`` (Max-Forwards, Expires, Content-Length)."""
    text = text.strip(WSP)
    if not text or not text.isascii() or not text.isdigit() or len(text) > 12:
        raise _bad(what, text)
    value = int(text)
    if value > maximum:
        raise _bad(f"{what} (too large)", text)
    return value


@dataclass(frozen=True, kw_only=True)
class TokenWithParams:
    """A token followed by generic parameters: Event, Subscription-State (RFC 6665)."""

    value: str
    params: Params = ()

    @classmethod
    def parse(cls, text: str, what: str = "header") -> TokenWithParams:
        sc = Scanner(text, what)
        sc.skip_ws()
        value = sc.token()
        params = sc.params()
        sc.finish()
        return cls(value=value, params=params)

    def param(self, name: str) -> str | None:
        return param_lookup(self.params, name)

    def __str__(self) -> str:
        return self.value + format_params(self.params)


@dataclass(frozen=True, kw_only=True)
class MediaType:
    """``Content-Type: type/subtype *(;param)`` (RFC 3261 20.15)."""

    type: str
    subtype: str
    params: Params = ()

    @classmethod
    def parse(cls, text: str) -> MediaType:
        sc = Scanner(text, "Content-Type")
        sc.skip_ws()
        major = sc.token()
        sc.expect("/")
        minor = sc.token()
        params = sc.params()
        sc.finish()
        return cls(type=major.lower(), subtype=minor.lower(), params=params)

    @property
    def essence(self) -> str:
        return f"{self.type}/{self.subtype}"

    def param(self, name: str) -> str | None:
        value = param_lookup(self.params, name)
        if value is not None and value.startswith('"'):
            return Scanner(value, "parameter").quoted_string()
        return value

    def __str__(self) -> str:
        return f"{self.type}/{self.subtype}{format_params(self.params)}"


def new_token(rng_bytes: bytes) -> str:
    """A token from random bytes (tags, Call-IDs, branches): lowercase hex."""
    return rng_bytes.hex()


def check_token(text: str, what: str) -> str:
    if not is_token(text):
        raise ValueError(f"{what} must be an RFC 3261 token, got {text!r}")
    return text
