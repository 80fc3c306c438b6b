"""Sample-rate conversion: whole and piecewise agree, tones keep their pitch, formats decode."""

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from anonsip import LocalError
from anonsip.media import Resampler, resample, to_call_pcm


def tone(rate: int, hz: float = 440.0, seconds: float = 1.0) -> bytes:
    t = np.arange(int(rate * seconds)) / rate
    return (8000 * np.sin(2 * np.pi * hz * t)).astype("<i2").tobytes()


def peak_hz(pcm: bytes, rate: int) -> float:
    samples = np.frombuffer(pcm, dtype="<i2").astype(float)
    spectrum = np.abs(np.fft.rfft(samples))
    return float(np.argmax(spectrum)) * rate / samples.size


@pytest.mark.parametrize(("source", "target"), [(22050, 16000), (48000, 16000), (16000, 44100)])
def test_a_tone_keeps_its_pitch_and_length(source: int, target: int) -> None:
    out = resample(tone(source), source, target)
    assert abs(len(out) // 2 - target) <= 2
    assert peak_hz(out, target) == pytest.approx(440, abs=2)


@settings(max_examples=60, deadline=None)
@given(
    cuts=st.lists(st.integers(min_value=0, max_value=4000), max_size=12),
    rates=st.sampled_from([(22050, 16000), (44100, 16000), (8000, 16000), (16000, 48000)]),
)
def test_pieces_give_the_same_as_the_whole(cuts: list[int], rates: tuple[int, int]) -> None:
    pcm = tone(rates[0], seconds=0.25)
    whole = Resampler(*rates).process(pcm)
    resampler = Resampler(*rates)
    bounds = sorted({2 * min(c, len(pcm) // 2) for c in cuts} | {0, len(pcm)})
    pieces = b"".join(resampler.process(pcm[a:b]) for a, b in itertools.pairwise(bounds))
    assert pieces == whole


def test_formats_decode_to_16_bit_mono() -> None:
    left = np.full(160, 1000, dtype="<i2")
    right = np.full(160, 3000, dtype="<i2")
    stereo = np.stack([left, right], axis=1).reshape(-1).tobytes()
    mono = np.frombuffer(
        to_call_pcm(stereo, channels=2, width=2, rate=16000, target=16000), dtype="<i2"
    )
    assert set(mono.tolist()) == {2000}
    eight = bytes([128 + 16] * 160)  # unsigned 8-bit, a little above silence
    out = np.frombuffer(to_call_pcm(eight, channels=1, width=1, rate=16000, target=16000), "<i2")
    assert set(out.tolist()) == {16 << 8}
    value = -5000 << 8  # 24-bit little-endian
    raw24 = (value & 0xFFFFFF).to_bytes(3, "little") * 160
    out = np.frombuffer(to_call_pcm(raw24, channels=1, width=3, rate=16000, target=16000), "<i2")
    assert set(out.tolist()) == {-5000}


def test_bad_rates_and_widths_are_refused() -> None:
    with pytest.raises(LocalError, match="sample rate"):
        Resampler(0, 16000)
    with pytest.raises(LocalError, match="bit"):
        to_call_pcm(b"\0" * 10, channels=1, width=5, rate=16000, target=16000)
    with pytest.raises(LocalError, match="channels"):
        to_call_pcm(b"\0" * 10, channels=0, width=2, rate=16000, target=16000)
