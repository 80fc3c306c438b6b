"""Tor's consensus of a private network: fetched from a DirPort, parsed with stem.

dir-spec section 3.4.1 defines the consensus document and section 6.2 the
URL it is served at (``/tor/status-vote/current/consensus``, plain HTTP on
a DirPort). Parsing Tor's documents is what stem is for, so the document
and the router status entries (also what ``GETINFO ns/...`` returns,
control-spec 3.9) go through stem; what we read out of them is checked
again here (nickname, fingerprint, address, port, flags), because stem is
lenient and the bytes come from the network. The HTTP exchange is a pure
request builder and response parser plus one small trio adapter.

``status`` only reports what the consensus says; it does not check the
authorities' signatures (tor does, for the consensus it uses).
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import stem.descriptor.networkstatus
import stem.descriptor.router_status_entry
import trio

from onion._errors import DirectoryError

__all__ = [
    "CONSENSUS_PATH",
    "MAX_CONSENSUS_BYTES",
    "Consensus",
    "RelayStatus",
    "consensus_request",
    "fetch_consensus",
    "fetch_first_consensus",
    "parse_consensus",
    "parse_dir_response",
    "parse_router_statuses",
]

CONSENSUS_PATH = "/tor/status-vote/current/consensus"
MAX_CONSENSUS_BYTES = 8 * 1024 * 1024
MAX_HEADER_BYTES = 16 * 1024
MAX_RELAYS = 10_000
DEFAULT_FETCH_TIMEOUT = 10.0
_NICKNAME = re.compile(r"[A-Za-z0-9]{1,19}")
_FINGERPRINT = re.compile(r"[0-9A-F]{40}")
_FLAG = re.compile(r"[A-Za-z0-9]{1,32}")
_STATUS = re.compile(rb"HTTP/1\.[01] (\d{3})(?: [^\r\n]*)?")


@dataclass(frozen=True, kw_only=True)
class RelayStatus:
    """One relay as the consensus lists it (dir-spec 3.4.1 "r" and "s" lines)."""

    nickname: str
    fingerprint: str  # 40 upper-case hex digits
    address: str
    or_port: int
    flags: frozenset[str]


@dataclass(frozen=True, kw_only=True)
class Consensus:
    """The parts of a consensus that ``testnet status`` and ``join --relay`` read."""

    valid_after: datetime
    fresh_until: datetime
    valid_until: datetime
    relays: tuple[RelayStatus, ...]

    def relay(self, fingerprint: str) -> RelayStatus | None:
        wanted = fingerprint.upper()
        return next((r for r in self.relays if r.fingerprint == wanted), None)


def _relay(entry: Any) -> RelayStatus:
    """Our checked copy of one stem ``RouterStatusEntryV3``."""
    nickname, fingerprint = entry.nickname, entry.fingerprint
    address, or_port, flags = entry.address, entry.or_port, entry.flags
    if not (isinstance(nickname, str) and _NICKNAME.fullmatch(nickname)):
        raise DirectoryError(f"a relay's nickname {nickname!r} is not a tor nickname")
    if not (isinstance(fingerprint, str) and _FINGERPRINT.fullmatch(fingerprint)):
        raise DirectoryError(f"relay {nickname} has no valid fingerprint")
    try:
        ipaddress.ip_address(address)
    except ValueError:
        raise DirectoryError(f"relay {nickname} has no valid address") from None
    if type(or_port) is not int or not 0 < or_port < 65536:
        raise DirectoryError(f"relay {nickname} has no valid ORPort")
    if not all(isinstance(f, str) and _FLAG.fullmatch(f) for f in flags or ()):
        raise DirectoryError(f"relay {nickname} has malformed flags")
    return RelayStatus(
        nickname=nickname,
        fingerprint=fingerprint,
        address=str(address),
        or_port=or_port,
        flags=frozenset(flags or ()),
    )


def parse_consensus(document: bytes) -> Consensus:
    """Read a consensus (dir-spec 3.4.1); ``DirectoryError`` if it is not a whole one."""
    if len(document) > MAX_CONSENSUS_BYTES:
        raise DirectoryError("the consensus is larger than any private network's")
    if not document.startswith(b"network-status-version 3"):
        raise DirectoryError("the directory answered with something that is not a consensus")
    try:
        # validate=False: a testing network's consensus has empty "client-versions",
        # which stem's strict mode refuses; what we use is checked below instead.
        parsed = stem.descriptor.networkstatus.NetworkStatusDocumentV3(document, validate=False)
    except Exception as exc:  # stem's errors on hostile bytes are not a documented set
        raise DirectoryError(f"the consensus could not be parsed: {exc}") from exc
    if not parsed.is_consensus or not parsed.signatures:
        raise DirectoryError("the consensus is cut short or is a vote (no signatures)")
    times = (parsed.valid_after, parsed.fresh_until, parsed.valid_until)
    if not all(isinstance(t, datetime) for t in times):
        raise DirectoryError("the consensus does not say when it is valid")
    if len(parsed.routers) > MAX_RELAYS:
        raise DirectoryError("the consensus lists more relays than any private network has")
    return Consensus(
        valid_after=parsed.valid_after,
        fresh_until=parsed.fresh_until,
        valid_until=parsed.valid_until,
        relays=tuple(_relay(entry) for entry in parsed.routers.values()),
    )


def parse_router_statuses(text: str) -> list[RelayStatus]:
    """Router status entries as ``GETINFO ns/all`` or ``ns/id/FP`` return them."""
    entries: list[list[str]] = []
    for line in text.splitlines():
        if line.startswith("r "):
            entries.append([])
        if not entries:
            raise DirectoryError("router status entries must start with an 'r' line")
        entries[-1].append(line)
    if len(entries) > MAX_RELAYS:
        raise DirectoryError("more router status entries than any private network has")
    relays = []
    for lines in entries:
        try:
            entry = stem.descriptor.router_status_entry.RouterStatusEntryV3(
                "\n".join(lines).encode(), validate=True
            )
        except Exception as exc:  # as above: stem's errors are not a documented set
            raise DirectoryError(f"a router status entry could not be parsed: {exc}") from exc
        relays.append(_relay(entry))
    return relays


# --- HTTP to a DirPort (dir-spec 6.2) ------------------------------------------------


def consensus_request(host: str) -> bytes:
    """The HTTP/1.0 request for the current consensus, uncompressed."""
    if any(ch in host for ch in "\r\n \0"):
        raise DirectoryError(f"bad directory host {host!r}")
    return f"GET {CONSENSUS_PATH} HTTP/1.0\r\nHost: {host}\r\n\r\n".encode("ascii")


def parse_dir_response(raw: bytes) -> bytes:
    """The body of a whole HTTP/1.0 response from a DirPort; ``DirectoryError`` otherwise."""
    head, sep, body = raw.partition(b"\r\n\r\n")
    if not sep or len(head) > MAX_HEADER_BYTES:
        raise DirectoryError("the directory's answer is not HTTP (or was cut short)")
    status_line, *headers = head.split(b"\r\n")
    match = _STATUS.fullmatch(status_line)
    if match is None:
        raise DirectoryError("the directory's answer is not HTTP")
    status = int(match.group(1))
    if status == 404:
        raise DirectoryError("the directory has no consensus yet (404): the network is starting")
    if status != 200:
        raise DirectoryError(f"the directory answered HTTP {status}")
    for header in headers:
        name, _, value = header.partition(b":")
        if name.strip().lower() == b"content-encoding" and value.strip().lower() not in (
            b"identity",
            b"",
        ):
            raise DirectoryError("the directory sent a compressed consensus we did not ask for")
    return body


async def fetch_consensus(
    address: str, dir_port: int, *, timeout: float = DEFAULT_FETCH_TIMEOUT
) -> Consensus:
    """The current consensus from the DirPort at ``address:dir_port``."""
    raw = bytearray()
    try:
        with trio.fail_after(timeout):
            stream = await trio.open_tcp_stream(address, dir_port)
            async with stream:
                await stream.send_all(consensus_request(address))
                while chunk := await stream.receive_some(65536):
                    raw += chunk
                    if len(raw) > MAX_CONSENSUS_BYTES + MAX_HEADER_BYTES:
                        raise DirectoryError("the directory's answer is too large")
    except trio.TooSlowError:
        raise DirectoryError(f"the directory at {address}:{dir_port} did not answer") from None
    except (OSError, trio.BrokenResourceError) as exc:
        raise DirectoryError(f"cannot reach the directory at {address}:{dir_port}: {exc}") from exc
    return parse_consensus(parse_dir_response(bytes(raw)))


async def fetch_first_consensus(
    directories: Sequence[tuple[str, int]], *, timeout: float = DEFAULT_FETCH_TIMEOUT
) -> Consensus:
    """The consensus from the first of ``directories`` that serves one."""
    errors = []
    for address, port in directories:
        try:
            return await fetch_consensus(address, port, timeout=timeout)
        except DirectoryError as exc:
            errors.append(str(exc))
    raise DirectoryError("no authority served a consensus: " + "; ".join(errors or ["none"]))
