"""RFC 3261 section 25 grammar: character classes and a small scanner.

Everything here works on one header value after unfolding (RFC 3261 7.3.1:
a line fold is replaced by one SP), so LWS is just SP/HTAB. Failures raise
``SipParseError`` with status 400: these parsers read a peer's bytes.
"""

from __future__ import annotations

import string

from anonsip.sip._errors import SipParseError

ALPHANUM = frozenset(string.ascii_letters + string.digits)
TOKEN_CHARS = ALPHANUM | frozenset("-.!%*_+`'~")
WORD_CHARS = TOKEN_CHARS | frozenset('()<>:\\"/[]?{}')
MARK = frozenset("-_.!~*'()")
UNRESERVED = ALPHANUM | MARK
USER_CHARS = UNRESERVED | frozenset("&=+$,;?/%")
PASSWORD_CHARS = UNRESERVED | frozenset("&=+$,%")
PARAM_CHARS = UNRESERVED | frozenset("[]/:&+$%")
HEADER_PART_CHARS = UNRESERVED | frozenset("[]/?:+$%=&")
HOST_CHARS = ALPHANUM | frozenset("-.")
IPV6_CHARS = frozenset(string.hexdigits + ":.")
# gen-value = token / host / quoted-string: a host may be an IPv6 reference.
GEN_VALUE_CHARS = TOKEN_CHARS | frozenset("[]:")
WSP = " \t"

Params = tuple[tuple[str, str | None], ...]


def is_token(text: str) -> bool:
    return bool(text) and all(c in TOKEN_CHARS for c in text)


def is_word(text: str) -> bool:
    return bool(text) and all(c in WORD_CHARS for c in text)


def is_host(text: str) -> bool:
    if text.startswith("["):
        return text.endswith("]") and len(text) > 2 and all(c in IPV6_CHARS for c in text[1:-1])
    if not text or not all(c in HOST_CHARS for c in text):
        return False
    labels = text[:-1].split(".") if text.endswith(".") else text.split(".")
    return all(label and label[0] != "-" and label[-1] != "-" for label in labels)


def check_escapes(text: str) -> bool:
    """Every ``%`` starts a two-hex-digit escape (RFC 3261 25.1 ``escaped``)."""
    i = text.find("%")
    while i != -1:
        escape = text[i + 1 : i + 3]
        if len(escape) != 2 or not all(c in string.hexdigits for c in escape):
            return False
        i = text.find("%", i + 3)
    return True


def param_lookup(params: Params, name: str) -> str | None:
    """Value of parameter ``name`` (case-insensitive), ``None`` if absent or valueless."""
    lower = name.lower()
    for key, value in params:
        if key.lower() == lower:
            return value
    return None


def param_present(params: Params, name: str) -> bool:
    lower = name.lower()
    return any(key.lower() == lower for key, _ in params)


def param_replace(params: Params, name: str, value: str | None) -> Params:
    lower = name.lower()
    kept = tuple((k, v) for k, v in params if k.lower() != lower)
    return (*kept, (name, value))


def format_params(params: Params) -> str:
    return "".join(f";{k}" if v is None else f";{k}={v}" for k, v in params)


def quote(text: str) -> str:
    """A quoted-string holding ``text`` (RFC 3261 25.1 quoted-pair for ``"`` and ``\\``)."""
    if any(c in "\r\n" or (ord(c) < 0x20 and c != "\t") or ord(c) == 0x7F for c in text):
        raise ValueError("a quoted string cannot hold control characters")
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def split_commas(value: str) -> list[str]:
    """Split a comma-separated header value, ignoring commas in quotes and <...>."""
    parts: list[str] = []
    depth = 0
    in_quotes = False
    start = 0
    i = 0
    while i < len(value):
        c = value[i]
        if in_quotes:
            if c == "\\":
                i += 1
            elif c == '"':
                in_quotes = False
        elif c == '"':
            in_quotes = True
        elif c == "<":
            depth += 1
        elif c == ">":
            depth = max(0, depth - 1)
        elif c == "," and depth == 0:
            parts.append(value[start:i].strip(WSP))
            start = i + 1
        i += 1
    if in_quotes:
        raise SipParseError("unterminated quoted string in a header value")
    parts.append(value[start:].strip(WSP))
    if any(not p for p in parts):
        raise SipParseError("empty element in a comma-separated header value")
    return parts


class Scanner:
    """A cursor over one unfolded header value."""

    def __init__(self, text: str, what: str) -> None:
        self.text = text
        self.pos = 0
        self.what = what

    def fail(self, why: str) -> SipParseError:
        return SipParseError(f"malformed {self.what}: {why}")

    def at_end(self) -> bool:
        return self.pos >= len(self.text)

    def peek(self) -> str:
        return self.text[self.pos] if self.pos < len(self.text) else ""

    def skip_ws(self) -> None:
        while self.pos < len(self.text) and self.text[self.pos] in WSP:
            self.pos += 1

    def accept(self, char: str) -> bool:
        """Consume ``char`` with LWS around it if it is next (SEMI, EQUAL, SLASH...)."""
        save = self.pos
        self.skip_ws()
        if self.peek() == char:
            self.pos += 1
            self.skip_ws()
            return True
        self.pos = save
        return False

    def expect(self, char: str) -> None:
        if not self.accept(char):
            raise self.fail(f"expected {char!r} at offset {self.pos}")

    def run(self, chars: frozenset[str]) -> str:
        start = self.pos
        while self.pos < len(self.text) and self.text[self.pos] in chars:
            self.pos += 1
        return self.text[start : self.pos]

    def token(self) -> str:
        tok = self.run(TOKEN_CHARS)
        if not tok:
            raise self.fail(f"expected a token at offset {self.pos}")
        return tok

    def quoted_string(self) -> str:
        """Parse a quoted-string; return its unescaped content."""
        if self.peek() != '"':
            raise self.fail("expected a quoted string")
        self.pos += 1
        out: list[str] = []
        while True:
            if self.at_end():
                raise self.fail("unterminated quoted string")
            c = self.text[self.pos]
            if c == '"':
                self.pos += 1
                return "".join(out)
            if c == "\\":
                if self.pos + 1 >= len(self.text):
                    raise self.fail("dangling backslash in quoted string")
                escaped = self.text[self.pos + 1]
                if escaped in "\r\n" or ord(escaped) > 0x7F:
                    raise self.fail("bad quoted-pair")
                out.append(escaped)
                self.pos += 2
                continue
            if (ord(c) < 0x20 and c != "\t") or ord(c) == 0x7F:
                raise self.fail("control character in quoted string")
            out.append(c)
            self.pos += 1

    def params(self) -> Params:
        """``*( SEMI generic-param )`` with LWS allowed around ``;`` and ``=``."""
        out: list[tuple[str, str | None]] = []
        while self.accept(";"):
            name = self.token()
            value: str | None = None
            if self.accept("="):
                if self.peek() == '"':
                    start = self.pos
                    self.quoted_string()
                    value = self.text[start : self.pos]
                else:
                    value = self.run(GEN_VALUE_CHARS)
                    if not value:
                        raise self.fail(f"empty value for parameter {name!r}")
            out.append((name, value))
        return tuple(out)

    def finish(self) -> None:
        self.skip_ws()
        if not self.at_end():
            raise self.fail(f"unexpected {self.text[self.pos :]!r}")
