"""What a capture holds (``tcpdump -w``: classic pcap, Ethernet): the TCP segments a censor
between two hosts saw, and which of them open a TLS handshake."""

from __future__ import annotations

import socket
import struct
from dataclasses import dataclass
from pathlib import Path

from anonsip.nodeproc import HostsError


@dataclass(frozen=True)
class Segment:
    """One TCP segment with payload, as captured."""

    source: tuple[str, int]
    destination: tuple[str, int]
    payload: bytes


def read_pcap(path: Path) -> list[Segment]:
    """The TCP segments with payload in a pcap file of Ethernet frames (IPv4 only)."""
    data = path.read_bytes()
    if len(data) < 24:
        return []
    magic = data[:4]
    if magic in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1"):
        order = "<"
    elif magic in (b"\xa1\xb2\xc3\xd4", b"\xa1\xb2\x3c\x4d"):
        order = ">"
    else:
        raise HostsError(f"{path} is not a pcap file")
    (link,) = struct.unpack(order + "I", data[20:24])
    if link != 1:
        raise HostsError(f"{path}: link type {link}, not Ethernet")
    segments = []
    at = 24
    while at + 16 <= len(data):
        _, _, captured, _ = struct.unpack(order + "IIII", data[at : at + 16])
        frame = data[at + 16 : at + 16 + captured]
        at += 16 + captured
        if len(frame) < 34 or frame[12:14] != b"\x08\x00":
            continue
        ip = frame[14:]
        header = (ip[0] & 0x0F) * 4
        total = struct.unpack(">H", ip[2:4])[0]
        if ip[9] != 6 or len(ip) < header + 20:
            continue
        tcp = ip[header:total]
        offset = (tcp[12] >> 4) * 4
        payload = tcp[offset:]
        if not payload:
            continue
        source = (socket.inet_ntoa(ip[12:16]), struct.unpack(">H", tcp[0:2])[0])
        destination = (socket.inet_ntoa(ip[16:20]), struct.unpack(">H", tcp[2:4])[0])
        segments.append(Segment(source=source, destination=destination, payload=payload))
    return segments


def tls_client_hellos(segments: list[Segment]) -> list[Segment]:
    """Segments that open a TLS handshake: a handshake record (0x16, version 3.x) carrying a
    ClientHello (type 1), what every plain Tor connection (and any TLS) starts with."""
    return [
        s
        for s in segments
        if len(s.payload) >= 6
        and s.payload[0] == 0x16
        and s.payload[1] == 0x03
        and s.payload[2] <= 0x04
        and s.payload[5] == 0x01
    ]
