"""A small ctypes binding to libopus (RFC 6716) for voice calls.

Only what a call needs: a mono VOIP encoder with constant bitrate and no
DTX, so packet sizes and timing do not depend on speech, and a decoder with
packet loss concealment (``opus_decode`` with NULL data). Every return code
is checked; a negative one becomes an exception whose kind says whose fault
it is (a packet from the peer that libopus refuses is remote, anything else
is local). The control calls are variadic in C; ctypes passes ``c_int32``
arguments the way the x86-64 and aarch64 Linux ABIs expect.
"""

from __future__ import annotations

import ctypes
import ctypes.util
from functools import cache

from anonsip._errors import LocalError, RemoteProtocolError

__all__ = [
    "ALLOWED_SAMPLE_RATES",
    "OpusDecoder",
    "OpusEncoder",
    "OpusError",
    "opus_version",
]

ALLOWED_SAMPLE_RATES = (8000, 12000, 16000, 24000, 48000)

_APPLICATION_VOIP = 2048
_SET_BITRATE = 4002
_GET_BITRATE = 4003
_SET_VBR = 4006
_GET_VBR = 4007
_SET_COMPLEXITY = 4010
_GET_COMPLEXITY = 4011
_SET_INBAND_FEC = 4012
_GET_INBAND_FEC = 4013
_SET_PACKET_LOSS_PERC = 4014
_SET_DTX = 4016
_GET_DTX = 4017

_MAX_PACKET = 1500
_FRAME_MS_ALLOWED = (10, 20, 40, 60)


class OpusError(LocalError):
    """libopus refused a call made from this side (bad argument, internal error)."""


@cache
def _lib() -> ctypes.CDLL:
    name = ctypes.util.find_library("opus") or "libopus.so.0"
    try:
        lib = ctypes.CDLL(name)
    except OSError as exc:
        raise LocalError(
            "The Opus codec library (libopus) is not installed; voice calls need it. "
            "Install it with: apt-get install libopus0"
        ) from exc
    p, i32 = ctypes.c_void_p, ctypes.c_int32
    lib.opus_encoder_create.argtypes = [
        i32,
        ctypes.c_int,
        ctypes.c_int,
        ctypes.POINTER(ctypes.c_int),
    ]
    lib.opus_encoder_create.restype = p
    lib.opus_encoder_destroy.argtypes = [p]
    lib.opus_encoder_destroy.restype = None
    lib.opus_encode.argtypes = [p, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, i32]
    lib.opus_encode.restype = i32
    lib.opus_decoder_create.argtypes = [i32, ctypes.c_int, ctypes.POINTER(ctypes.c_int)]
    lib.opus_decoder_create.restype = p
    lib.opus_decoder_destroy.argtypes = [p]
    lib.opus_decoder_destroy.restype = None
    lib.opus_decode.argtypes = [
        p,
        ctypes.c_char_p,
        i32,
        ctypes.c_char_p,
        ctypes.c_int,
        ctypes.c_int,
    ]
    lib.opus_decode.restype = ctypes.c_int
    lib.opus_strerror.argtypes = [ctypes.c_int]
    lib.opus_strerror.restype = ctypes.c_char_p
    lib.opus_get_version_string.argtypes = []
    lib.opus_get_version_string.restype = ctypes.c_char_p
    # Variadic: declare no argtypes and pass explicit c_int32 / pointers.
    lib.opus_encoder_ctl.restype = ctypes.c_int
    return lib


def opus_version() -> str:
    """The libopus version string, e.g. ``libopus 1.3.1``."""
    return bytes(_lib().opus_get_version_string()).decode("ascii", "replace")


def _strerror(code: int) -> str:
    return bytes(_lib().opus_strerror(code)).decode("ascii", "replace")


def _check_rate(sample_rate: int) -> None:
    if sample_rate not in ALLOWED_SAMPLE_RATES:
        raise LocalError(
            f"Opus cannot run at {sample_rate} Hz; choose one of {ALLOWED_SAMPLE_RATES}"
        )


class OpusEncoder:
    """Mono VOIP Opus encoder; CBR on and DTX off so every packet has one size."""

    def __init__(
        self,
        *,
        sample_rate: int = 16000,
        bitrate: int = 24000,
        complexity: int = 9,
        frame_ms: int = 20,
    ) -> None:
        _check_rate(sample_rate)
        if frame_ms not in _FRAME_MS_ALLOWED:
            raise LocalError(f"Opus frames must be one of {_FRAME_MS_ALLOWED} ms, not {frame_ms}")
        lib = _lib()
        err = ctypes.c_int(0)
        state = lib.opus_encoder_create(sample_rate, 1, _APPLICATION_VOIP, ctypes.byref(err))
        if err.value != 0 or not state:
            raise OpusError(f"could not create an Opus encoder: {_strerror(err.value)}")
        self._state: int | None = state
        self.sample_rate = sample_rate
        self.frame_ms = frame_ms
        self.frame_samples = sample_rate * frame_ms // 1000
        self._ctl(_SET_VBR, 0)
        self._ctl(_SET_DTX, 0)
        self.set_bitrate(bitrate)
        self.set_complexity(complexity)

    def _ctl(self, request: int, value: int) -> None:
        code = _lib().opus_encoder_ctl(
            ctypes.c_void_p(self._live()), ctypes.c_int32(request), ctypes.c_int32(value)
        )
        if code < 0:
            raise OpusError(f"Opus encoder setting {request}={value} refused: {_strerror(code)}")

    def _get(self, request: int) -> int:
        out = ctypes.c_int32(0)
        code = _lib().opus_encoder_ctl(
            ctypes.c_void_p(self._live()), ctypes.c_int32(request), ctypes.byref(out)
        )
        if code < 0:
            raise OpusError(f"Opus encoder query {request} refused: {_strerror(code)}")
        return out.value

    def _live(self) -> int:
        if self._state is None:
            raise LocalError("this Opus encoder is closed")
        return self._state

    def set_bitrate(self, bitrate: int) -> None:
        if not 6000 <= bitrate <= 510000:
            raise LocalError(f"Opus bitrate must be 6000..510000 bit/s, not {bitrate}")
        self._ctl(_SET_BITRATE, bitrate)

    def set_complexity(self, complexity: int) -> None:
        if not 0 <= complexity <= 10:
            raise LocalError(f"Opus complexity must be 0..10, not {complexity}")
        self._ctl(_SET_COMPLEXITY, complexity)

    def set_inband_fec(self, enabled: bool, *, expected_loss_percent: int = 10) -> None:
        """In-band FEC; only useful when frames travel more than one path."""
        self._ctl(_SET_INBAND_FEC, 1 if enabled else 0)
        self._ctl(_SET_PACKET_LOSS_PERC, expected_loss_percent if enabled else 0)

    @property
    def bitrate(self) -> int:
        return self._get(_GET_BITRATE)

    @property
    def vbr(self) -> bool:
        return bool(self._get(_GET_VBR))

    @property
    def dtx(self) -> bool:
        return bool(self._get(_GET_DTX))

    @property
    def complexity(self) -> int:
        return self._get(_GET_COMPLEXITY)

    @property
    def inband_fec(self) -> bool:
        return bool(self._get(_GET_INBAND_FEC))

    def encode(self, pcm: bytes) -> bytes:
        """Encode one frame of 16-bit little-endian mono PCM into one packet."""
        if len(pcm) != 2 * self.frame_samples:
            raise LocalError(
                f"an Opus frame needs {2 * self.frame_samples} bytes of PCM, got {len(pcm)}"
            )
        out = ctypes.create_string_buffer(_MAX_PACKET)
        n = _lib().opus_encode(self._live(), pcm, self.frame_samples, out, _MAX_PACKET)
        if n < 0:
            raise OpusError(f"Opus could not encode a frame: {_strerror(n)}")
        return out.raw[:n]

    def close(self) -> None:
        # getattr: __del__ also runs when __init__ failed before _state existed.
        if getattr(self, "_state", None) is not None:
            _lib().opus_encoder_destroy(self._state)
            self._state = None

    def __del__(self) -> None:
        self.close()


class OpusDecoder:
    """Mono Opus decoder with packet loss concealment."""

    def __init__(self, *, sample_rate: int = 16000, frame_ms: int = 20) -> None:
        _check_rate(sample_rate)
        lib = _lib()
        err = ctypes.c_int(0)
        state = lib.opus_decoder_create(sample_rate, 1, ctypes.byref(err))
        if err.value != 0 or not state:
            raise OpusError(f"could not create an Opus decoder: {_strerror(err.value)}")
        self._state: int | None = state
        self.sample_rate = sample_rate
        self.frame_samples = sample_rate * frame_ms // 1000
        # The largest Opus packet holds 120 ms.
        self._max_samples = sample_rate * 120 // 1000

    def _live(self) -> int:
        if self._state is None:
            raise LocalError("this Opus decoder is closed")
        return self._state

    def decode(self, packet: bytes) -> bytes:
        """Decode one packet from the peer into 16-bit mono PCM."""
        if not packet:
            raise RemoteProtocolError("the peer sent an empty Opus packet")
        out = ctypes.create_string_buffer(2 * self._max_samples)
        n = _lib().opus_decode(self._live(), packet, len(packet), out, self._max_samples, 0)
        if n < 0:
            raise RemoteProtocolError(f"the peer sent an invalid Opus packet: {_strerror(n)}")
        return out.raw[: 2 * n]

    def conceal(self) -> bytes:
        """One frame of packet loss concealment (decode with no data)."""
        out = ctypes.create_string_buffer(2 * self.frame_samples)
        n = _lib().opus_decode(self._live(), None, 0, out, self.frame_samples, 0)
        if n < 0:
            raise OpusError(f"Opus could not conceal a lost frame: {_strerror(n)}")
        return out.raw[: 2 * n]

    def close(self) -> None:
        # getattr: __del__ also runs when __init__ failed before _state existed.
        if getattr(self, "_state", None) is not None:
            _lib().opus_decoder_destroy(self._state)
            self._state = None

    def __del__(self) -> None:
        self.close()
