"""A tiny SDP (RFC 4566) writer and parser for one Opus stream, offer/answer (RFC 3264).

anonsip media is not RTP: it runs over the call's onion stream as sealed
frames, so the session description only agrees on the codec parameters and
the media direction. The writer emits a valid SDP body with a private
transport token (``TCP/ANONSIP``) and no address (``0.0.0.0``: nothing is
learned from it); the parser reads just what is needed from a hostile
body: bounded size and line count, ASCII only, integers range-checked, one
audio stream with ``opus/48000/2`` (RFC 7587), ``ptime``, the fmtp
``maxplaybackrate`` / ``maxaveragebitrate`` (RFC 7587 section 6.1), one
direction attribute, and ``a=x-anonsip-paths:N``: how many onion streams
(paths, each on its own circuit) the side wants the call's media on. A body
without it means one path; the answer takes the lower count. It raises only
``RemoteProtocolError``.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, replace

from anonsip._errors import LocalError, RemoteProtocolError

__all__ = [
    "ALLOWED_FRAME_MS",
    "Direction",
    "MediaPreferences",
    "SessionDescription",
    "answer_direction",
    "negotiate_answer",
]

MAX_SDP = 4096
MAX_LINES = 64
ALLOWED_RATES = (8000, 12000, 16000, 24000, 48000)
ALLOWED_FRAME_MS = (10, 20, 40, 60)
MAX_MEDIA_PATHS = 4
PATHS_ATTRIBUTE = "x-anonsip-paths"
PROTO = "TCP/ANONSIP"
PAYLOAD_TYPE = 111
_U63 = (1 << 63) - 1


class Direction(enum.Enum):
    SENDRECV = "sendrecv"
    SENDONLY = "sendonly"
    RECVONLY = "recvonly"
    INACTIVE = "inactive"

    @property
    def sends(self) -> bool:
        return self in (Direction.SENDRECV, Direction.SENDONLY)

    @property
    def receives(self) -> bool:
        return self in (Direction.SENDRECV, Direction.RECVONLY)

    @classmethod
    def of(cls, *, send: bool, receive: bool) -> Direction:
        if send:
            return cls.SENDRECV if receive else cls.SENDONLY
        return cls.RECVONLY if receive else cls.INACTIVE


@dataclass(frozen=True, kw_only=True)
class MediaPreferences:
    """What this side wants and accepts at most."""

    sample_rate: int = 16000
    frame_ms: int = 20
    bitrate: int = 24000
    paths: int = 2  # onion streams per call, each on its own circuit

    def __post_init__(self) -> None:
        if not 1 <= self.paths <= MAX_MEDIA_PATHS:
            raise LocalError(f"a call uses 1..{MAX_MEDIA_PATHS} media paths")
        if self.sample_rate not in ALLOWED_RATES:
            raise LocalError(f"the sample rate must be one of {ALLOWED_RATES}")
        if self.frame_ms not in ALLOWED_FRAME_MS:
            raise LocalError(f"the frame length must be one of {ALLOWED_FRAME_MS} ms")
        if not 6000 <= self.bitrate <= 510000:
            raise LocalError("the bitrate must be 6000..510000 bit/s")


@dataclass(frozen=True, kw_only=True)
class SessionDescription:
    session_id: int
    version: int
    sample_rate: int = 16000
    frame_ms: int = 20
    bitrate: int = 24000
    direction: Direction = Direction.SENDRECV
    paths: int = 1

    def to_bytes(self) -> bytes:
        lines = [
            "v=0",
            f"o=- {self.session_id} {self.version} IN IP4 0.0.0.0",
            "s=-",
            "c=IN IP4 0.0.0.0",
            "t=0 0",
            f"m=audio 9 {PROTO} {PAYLOAD_TYPE}",
            f"a=rtpmap:{PAYLOAD_TYPE} opus/48000/2",
            f"a=fmtp:{PAYLOAD_TYPE} maxplaybackrate={self.sample_rate};"
            f"maxaveragebitrate={self.bitrate};cbr=1;usedtx=0;useinbandfec=0",
            f"a=ptime:{self.frame_ms}",
            f"a={self.direction.value}",
            f"a={PATHS_ATTRIBUTE}:{self.paths}",
        ]
        return ("\r\n".join(lines) + "\r\n").encode("ascii")

    @classmethod
    def parse(cls, data: bytes) -> SessionDescription:
        return _parse(data)


def _fail(message: str) -> RemoteProtocolError:
    return RemoteProtocolError(f"the peer's session description is invalid: {message}")


def _int(text: str, low: int, high: int, what: str) -> int:
    if not text.isascii() or not text.isdigit() or len(text) > 19:
        raise _fail(f"{what} is not a number")
    value = int(text)
    if not low <= value <= high:
        raise _fail(f"{what} {value} is out of range")
    return value


def _parse(data: bytes) -> SessionDescription:
    if len(data) > MAX_SDP:
        raise _fail(f"longer than {MAX_SDP} bytes")
    try:
        text = data.decode("ascii")
    except UnicodeDecodeError:
        raise _fail("not ASCII") from None
    lines = [line for line in text.replace("\r\n", "\n").split("\n") if line]
    if len(lines) > MAX_LINES:
        raise _fail(f"more than {MAX_LINES} lines")
    if not lines or lines[0] != "v=0":
        raise _fail("it does not start with v=0")
    origin: tuple[int, int] | None = None
    media_pt: int | None = None
    rtpmap: dict[int, str] = {}
    fmtp: dict[int, str] = {}
    ptime: int | None = None
    paths: int | None = None
    directions: list[Direction] = []
    for line in lines[1:]:
        if len(line) < 2 or line[1] != "=" or not line[0].islower():
            raise _fail("a line is not of the form x=value")
        kind, value = line[0], line[2:]
        if not value.isprintable():
            raise _fail("control characters in a line")
        if kind == "o":
            parts = value.split(" ")
            if len(parts) != 6:
                raise _fail("malformed o= line")
            origin = (_int(parts[1], 0, _U63, "session id"), _int(parts[2], 0, _U63, "version"))
        elif kind == "m":
            parts = value.split(" ")
            if media_pt is not None:
                raise _fail("more than one media stream")
            if len(parts) < 4 or parts[0] != "audio" or parts[2] != PROTO:
                raise _fail("no anonsip audio stream")
            media_pt = _int(parts[3], 0, 127, "payload type")
        elif kind == "a":
            name, _, arg = value.partition(":")
            if name in ("rtpmap", "fmtp"):
                pt_text, _, rest = arg.partition(" ")
                pt = _int(pt_text, 0, 127, "payload type")
                (rtpmap if name == "rtpmap" else fmtp)[pt] = rest
            elif name == "ptime":
                ptime = _int(arg, 1, 1000, "ptime")
            elif name == PATHS_ATTRIBUTE:
                if paths is not None:
                    raise _fail("more than one paths attribute")
                paths = _int(arg, 1, MAX_MEDIA_PATHS, "paths")
            elif name in {d.value for d in Direction} and not arg:
                directions.append(Direction(name))
    if origin is None:
        raise _fail("no o= line")
    if media_pt is None:
        raise _fail("no m=audio line")
    if rtpmap.get(media_pt, "").lower() != "opus/48000/2":
        raise _fail("the audio codec is not Opus")
    if len(directions) > 1:
        raise _fail("more than one direction attribute")
    params: dict[str, str] = {}
    for item in fmtp.get(media_pt, "").split(";"):
        key, _, val = item.strip().partition("=")
        if key:
            params[key.lower()] = val
    rate = _int(params.get("maxplaybackrate", "48000"), 1, 10**6, "maxplaybackrate")
    rate = max([r for r in ALLOWED_RATES if r <= rate], default=ALLOWED_RATES[0])
    bitrate = _int(params.get("maxaveragebitrate", "24000"), 6000, 510000, "maxaveragebitrate")
    frame_ms = ptime if ptime is not None else 20
    if frame_ms not in ALLOWED_FRAME_MS:
        raise _fail(f"unsupported ptime {frame_ms}")
    return SessionDescription(
        session_id=origin[0],
        version=origin[1],
        sample_rate=rate,
        frame_ms=frame_ms,
        bitrate=bitrate,
        direction=directions[0] if directions else Direction.SENDRECV,
        paths=paths if paths is not None else 1,
    )


def answer_direction(offer: Direction, *, local_hold: bool) -> Direction:
    """RFC 3264 section 6.1: mirror the offer; while we hold we do not receive."""
    return Direction.of(send=offer.receives, receive=offer.sends and not local_hold)


def negotiate_answer(
    offer: SessionDescription,
    prefs: MediaPreferences,
    *,
    session_id: int,
    version: int,
    local_hold: bool,
) -> SessionDescription:
    """Our answer: the lower of each limit, the offered frame length."""
    return replace(
        offer,
        session_id=session_id,
        version=version,
        sample_rate=min(offer.sample_rate, prefs.sample_rate),
        bitrate=min(offer.bitrate, prefs.bitrate),
        paths=min(offer.paths, prefs.paths),
        direction=answer_direction(offer.direction, local_hold=local_hold),
    )
