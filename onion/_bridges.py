"""Bridge lines and pluggable transports (tor(1) ``Bridge``, ``ClientTransportPlugin``; pt-spec).

A bridge is an entry relay that the Tor consensus does not list, so a
network that blocks the listed relays may still let it through. A
pluggable transport (obfs4, meek_lite, snowflake) also makes the traffic
to it look like something else than Tor's TLS. A bridge line, as
bridges.torproject.org and Tor Browser give it, reads::

    [Bridge] [TRANSPORT] ADDRESS:PORT [FINGERPRINT] [KEY=VALUE ...]

``parse_bridge_line`` treats the line as hostile input (it comes from a
web page, a chat, a QR code): it is bounded, and a bad line raises
``InvalidBridgeLine`` naming the field that is wrong. ``Bridge.line()``
gives the canonical text back. ``bridge_client_config`` makes the torrc
lines a client needs, with the transport programs ``transport_programs``
found (``TransportNotFound`` names the Debian package to install). Pure:
no I/O beyond looking programs up on PATH through an injected function.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import re
import shutil
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from onion._errors import InvalidBridgeLine, TransportNotFound

__all__ = [
    "MAX_BRIDGE_LINE",
    "TRANSPORTS",
    "Bridge",
    "Transport",
    "bridge_client_config",
    "describe_bridges",
    "obfs4_bridge_line",
    "parse_bridge_line",
    "transport_program",
    "transport_programs",
]

MAX_BRIDGE_LINE = 4096  # a snowflake line with fronts and ICE servers is ~500 bytes
OBFS4_CERT_BYTES = 52  # node id (20) + Curve25519 public key (32)
_FINGERPRINT = re.compile(r"[0-9A-Fa-f]{40}")
_KEY = re.compile(r"[A-Za-z0-9_-]{1,64}")
_TRANSPORT_NAME = re.compile(r"[A-Za-z0-9_]{1,32}")
_BASE64 = re.compile(r"[A-Za-z0-9+/]+={0,2}")


@dataclass(frozen=True, kw_only=True)
class Transport:
    """A pluggable transport: the programs that speak it and the package that has them."""

    name: str
    programs: tuple[str, ...]  # in order of preference
    package: str  # Debian 12
    required: tuple[str, ...] = ()  # arguments every line of it must carry


TRANSPORTS: dict[str, Transport] = {
    t.name: t
    for t in (
        # lyrebird is obfs4proxy renamed (Tor Browser 13+); Debian 12 ships obfs4proxy.
        Transport(
            name="obfs4",
            programs=("obfs4proxy", "lyrebird"),
            package="obfs4proxy",
            required=("cert", "iat-mode"),
        ),
        Transport(
            name="meek_lite",
            programs=("obfs4proxy", "lyrebird"),
            package="obfs4proxy",
            required=("url",),
        ),
        Transport(name="snowflake", programs=("snowflake-client",), package="snowflake-client"),
    )
}


@dataclass(frozen=True, kw_only=True)
class Bridge:
    """One bridge: its transport (None: plain Tor TLS), address, fingerprint and arguments."""

    transport: str | None
    host: str  # an IPv4 or IPv6 literal (tor takes no host names here)
    port: int
    fingerprint: str | None = None  # 40 upper-case hex digits
    args: tuple[tuple[str, str], ...] = ()

    @property
    def address(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"

    def line(self) -> str:
        """The canonical bridge line (what follows ``Bridge`` in a torrc)."""
        words = [self.transport] if self.transport else []
        words.append(self.address)
        if self.fingerprint:
            words.append(self.fingerprint)
        words += [f"{key}={value}" for key, value in self.args]
        return " ".join(words)

    def arg(self, key: str) -> str | None:
        return next((value for k, value in self.args if k == key), None)

    @property
    def kind(self) -> str:
        """How a person would name it: ``obfs4``, ``snowflake``, ``plain``."""
        return self.transport or "plain"


def _fail(field: str, problem: str) -> InvalidBridgeLine:
    return InvalidBridgeLine(f"bad bridge line: {field}: {problem}", field=field)


def parse_bridge_line(text: str) -> Bridge:
    """The ``Bridge`` a line describes; ``InvalidBridgeLine`` naming the field if it is not one."""
    if len(text) > MAX_BRIDGE_LINE:
        raise _fail("line", f"longer than {MAX_BRIDGE_LINE} characters")
    for position, char in enumerate(text):
        if not (char.isascii() and (char.isprintable() or char in " \t")):
            raise _fail("line", f"a character a bridge line never has, at position {position}")
    words = text.split()
    if words[:1] and words[0].lower() == "bridge":
        words = words[1:]  # copied from a torrc
    if not words:
        raise _fail("line", "it is empty")
    transport: str | None = None
    if ":" not in words[0]:
        transport = _transport(words[0])
        words = words[1:]
        if not words:
            raise _fail("address", f"missing: a {transport} line needs ADDRESS:PORT")
    host, port = _address(words[0])
    words = words[1:]
    fingerprint = None
    if words and "=" not in words[0]:
        if not _FINGERPRINT.fullmatch(words[0]):
            raise _fail("fingerprint", f"{_shown(words[0])} is not 40 hexadecimal digits")
        fingerprint = words[0].upper()
        words = words[1:]
    args = _arguments(words, transport)
    bridge = Bridge(
        transport=transport, host=host, port=port, fingerprint=fingerprint, args=tuple(args)
    )
    if transport is not None:
        _check_transport_args(bridge, TRANSPORTS[transport])
    return bridge


def _shown(word: str) -> str:
    return repr(word if len(word) <= 60 else word[:57] + "...")


def _transport(word: str) -> str:
    name = word.lower()
    if not _TRANSPORT_NAME.fullmatch(name) or name not in TRANSPORTS:
        known = ", ".join(sorted(TRANSPORTS))
        raise _fail(
            "transport",
            f"{_shown(word)} is not one anonsip runs (it knows {known}, and plain bridges)",
        )
    return name


def _address(word: str) -> tuple[str, int]:
    host, sep, port_text = word.rpartition(":")
    if not sep or not host:
        raise _fail("address", f"{_shown(word)} is not IP:PORT")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
        family = 6
    else:
        family = 4
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        raise _fail(
            "address", f"{_shown(host)} is not an IP address (bridge lines take no names)"
        ) from None
    if ip.version != family:
        raise _fail("address", f"write an IPv6 address in brackets: [{host}]:PORT")
    if not (port_text.isascii() and port_text.isdigit() and 0 < int(port_text) < 65536):
        raise _fail("port", f"{_shown(port_text)} is not a port (1-65535)")
    return str(ip), int(port_text)


def _arguments(words: Sequence[str], transport: str | None) -> list[tuple[str, str]]:
    args: list[tuple[str, str]] = []
    for word in words:
        key, sep, value = word.partition("=")
        if not sep or not _KEY.fullmatch(key):
            raise _fail("argument", f"{_shown(word)} is not KEY=VALUE")
        if not value:
            raise _fail(key, "has no value")
        if any(k == key for k, _ in args):
            raise _fail(key, "appears twice")
        args.append((key, value))
    if args and transport is None:
        raise _fail("argument", "a plain bridge (no transport) takes no KEY=VALUE arguments")
    return args


def _check_transport_args(bridge: Bridge, transport: Transport) -> None:
    for key in transport.required:
        if bridge.arg(key) is None:
            raise _fail(key, f"missing: every {transport.name} bridge line has {key}=")
    if transport.name == "obfs4":
        cert = bridge.arg("cert") or ""
        if not _is_obfs4_cert(cert):
            raise _fail("cert", f"not an obfs4 certificate (base64 of {OBFS4_CERT_BYTES} bytes)")
        if bridge.arg("iat-mode") not in ("0", "1", "2"):
            raise _fail("iat-mode", "must be 0, 1 or 2")
    elif transport.name == "meek_lite":
        url = bridge.arg("url") or ""
        if not url.startswith(("https://", "http://")):
            raise _fail("url", "must be an http(s):// address")


def _is_obfs4_cert(cert: str) -> bool:
    if not _BASE64.fullmatch(cert):
        return False
    try:
        raw = base64.b64decode(cert + "=" * (-len(cert) % 4), validate=True)
    except (binascii.Error, ValueError):
        return False
    return len(raw) == OBFS4_CERT_BYTES


def obfs4_bridge_line(text: str, *, host: str, port: int, fingerprint: str) -> Bridge:
    """Our obfs4 bridge's line, from obfs4proxy's ``obfs4_bridgeline.txt`` (placeholders filled).

    The file holds one ``Bridge obfs4 <IP ADDRESS>:<PORT> <FINGERPRINT> cert=… iat-mode=…``
    line among comments; only its ``cert`` and ``iat-mode`` are read.
    """
    for raw in text.splitlines():
        words = raw.split()
        if words[:2] == ["Bridge", "obfs4"]:
            args = dict(w.partition("=")[::2] for w in words[2:] if "=" in w)
            address = f"[{host}]" if ":" in host else host
            line = (
                f"obfs4 {address}:{port} {fingerprint} cert={args.get('cert', '')}"
                f" iat-mode={args.get('iat-mode', '')}"
            )
            return parse_bridge_line(line)
    raise _fail("line", "obfs4proxy's bridge line file holds no 'Bridge obfs4' line")


def transport_program(name: str, which: Callable[[str], str | None] = shutil.which) -> str:
    """The program that speaks transport ``name``; ``TransportNotFound`` names its package."""
    transport = TRANSPORTS[name]
    path = next((p for p in map(which, transport.programs) if p), None)
    if path is None:
        wanted = " or ".join(transport.programs)
        raise TransportNotFound(
            f"the {name} bridges need {wanted}, which is not installed;"
            f" install it with: sudo apt-get install {transport.package}",
            transport=name,
            package=transport.package,
        )
    return path


def transport_programs(
    bridges: Sequence[Bridge], which: Callable[[str], str | None] = shutil.which
) -> dict[str, str]:
    """The program for each transport ``bridges`` use; ``TransportNotFound`` if one is missing."""
    names = sorted({b.transport for b in bridges if b.transport})
    return {name: transport_program(name, which) for name in names}


def bridge_client_config(
    bridges: Sequence[Bridge], programs: Mapping[str, str]
) -> list[tuple[str, str]]:
    """torrc lines that make a client enter the network through ``bridges`` only."""
    if not bridges:
        return []
    config = [("UseBridges", "1")]
    config += [("Bridge", bridge.line()) for bridge in bridges]
    # One ClientTransportPlugin per program, naming every transport it serves here.
    served: dict[str, list[str]] = {}
    for name in sorted({b.transport for b in bridges if b.transport}):
        served.setdefault(programs[name], []).append(name)
    config += [
        ("ClientTransportPlugin", f"{','.join(names)} exec {program}")
        for program, names in served.items()
    ]
    return config


def describe_bridges(bridges: Sequence[Bridge]) -> str:
    """``an obfs4 bridge``, ``2 bridges (obfs4, snowflake)``: for progress and messages."""
    kinds = sorted({b.kind for b in bridges})
    if len(bridges) == 1:
        article = "an" if kinds[0][0] in "aeiou" else "a"
        return f"{article} {kinds[0]} bridge"
    return f"{len(bridges)} bridges ({', '.join(kinds)})"
