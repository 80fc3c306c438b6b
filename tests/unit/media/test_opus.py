import ctypes

import numpy as np
import pytest

from anonsip import LocalError, RemoteProtocolError
from anonsip.media import _opus
from anonsip.media._opus import OpusDecoder, OpusEncoder, opus_version


def frames(pcm: np.ndarray, n: int) -> list[bytes]:
    usable = len(pcm) // n * n
    return [pcm[i : i + n].tobytes() for i in range(0, usable, n)]


def test_version() -> None:
    assert opus_version().startswith("libopus")


def test_defaults_are_cbr_without_dtx() -> None:
    enc = OpusEncoder()
    assert enc.sample_rate == 16000
    assert enc.bitrate == 24000
    assert enc.vbr is False
    assert enc.dtx is False


def test_inband_fec_setter_works() -> None:
    enc = OpusEncoder()
    assert enc.inband_fec is False
    enc.set_inband_fec(True)
    assert enc.inband_fec is True
    enc.set_inband_fec(False)
    assert enc.inband_fec is False


def test_complexity_configurable() -> None:
    enc = OpusEncoder(complexity=3)
    assert enc.complexity == 3
    with pytest.raises(LocalError):
        enc.set_complexity(11)


@pytest.mark.parametrize("rate", [8000, 12000, 16000, 24000, 48000])
def test_sine_roundtrip(rate: int) -> None:
    enc = OpusEncoder(sample_rate=rate)
    dec = OpusDecoder(sample_rate=rate)
    t = np.arange(rate) / rate
    pcm = (8000 * np.sin(2 * np.pi * 440 * t)).astype("<i2")
    out = b"".join(dec.decode(enc.encode(f)) for f in frames(pcm, enc.frame_samples))
    got = np.frombuffer(out, dtype="<i2").astype(float)
    assert len(got) == len(pcm) // enc.frame_samples * enc.frame_samples
    # Opus has a few ms of algorithmic delay; compare energy after it settles.
    rms = np.sqrt(np.mean(got[rate // 10 :] ** 2))
    assert 4000 < rms < 7000


def test_rejects_bad_rate_and_frame() -> None:
    with pytest.raises(LocalError, match="44100"):
        OpusEncoder(sample_rate=44100)
    with pytest.raises(LocalError):
        OpusDecoder(sample_rate=11025)
    enc = OpusEncoder()
    with pytest.raises(LocalError, match="640 bytes"):
        enc.encode(b"\0" * 10)


def test_cbr_sizes_do_not_reveal_speech(speech_pcm: np.ndarray) -> None:
    enc = OpusEncoder(bitrate=24000)
    silence = np.zeros(16000, dtype="<i2")
    sizes = {len(enc.encode(f)) for f in frames(speech_pcm, 320) + frames(silence, 320)}
    assert sizes == {60}  # 24000 bit/s * 20 ms / 8


def test_plc_produces_a_frame(speech_pcm: np.ndarray) -> None:
    enc, dec = OpusEncoder(), OpusDecoder()
    for f in frames(speech_pcm, 320)[:50]:
        dec.decode(enc.encode(f))
    concealed = dec.conceal()
    assert len(concealed) == 640
    assert np.abs(np.frombuffer(concealed, dtype="<i2")).max() > 0


def test_garbage_packet_is_remote_error() -> None:
    dec = OpusDecoder()
    with pytest.raises(RemoteProtocolError):
        dec.decode(b"")
    with pytest.raises(RemoteProtocolError):
        # A code 3 packet claiming 63 frames of 120 ms is invalid.
        dec.decode(b"\x03\xff" + b"\x00" * 5)


def test_closed_encoder_is_local_error() -> None:
    enc = OpusEncoder()
    enc.close()
    with pytest.raises(LocalError, match="closed"):
        enc.encode(b"\0" * 640)


def test_missing_library_message(monkeypatch: pytest.MonkeyPatch) -> None:
    def fail(name: str) -> None:
        raise OSError(f"{name}: cannot open shared object file")

    _opus._lib.cache_clear()
    monkeypatch.setattr(_opus.ctypes.util, "find_library", lambda name: None)
    monkeypatch.setattr(_opus.ctypes, "CDLL", fail)
    try:
        with pytest.raises(LocalError, match="apt-get install libopus0"):
            OpusEncoder()
    finally:
        monkeypatch.setattr(_opus.ctypes, "CDLL", ctypes.CDLL)
        _opus._lib.cache_clear()
