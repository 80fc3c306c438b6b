"""The demo peer's voice clip: what ``make_voice_clip`` writes, calls can play."""

from __future__ import annotations

import shutil
import wave
from pathlib import Path

import trio

from anonsip.demo import make_voice_clip
from anonsip.demo._clip import CLIP_RATE, _resample
from anonsip.media import WavSource


def test_resample_keeps_duration_and_level() -> None:
    rate = 22050
    tone = [int(8000 * ((i // 25) % 2 * 2 - 1)) for i in range(rate)]  # one second
    pcm = b"".join(v.to_bytes(2, "little", signed=True) for v in tone)
    out = _resample(pcm, rate, CLIP_RATE)
    assert len(out) == 2 * CLIP_RATE
    samples = [int.from_bytes(out[i : i + 2], "little", signed=True) for i in range(0, 200, 2)]
    assert max(samples) <= 8000
    assert min(samples) >= -8000


def test_resample_of_nothing_is_nothing() -> None:
    assert _resample(b"", 22050, CLIP_RATE) == b""


async def test_clip_is_what_calls_play(tmp_path: Path) -> None:
    # ./go installs espeak-ng; a machine without it must fail here, not skip.
    assert shutil.which("espeak-ng") is not None, "install espeak-ng (./go does)"
    clip = await make_voice_clip(tmp_path / "voice.wav", "testing one two")
    assert clip == tmp_path / "voice.wav"
    with wave.open(str(clip), "rb") as w:
        assert (w.getnchannels(), w.getsampwidth(), w.getframerate()) == (1, 2, CLIP_RATE)
        assert w.getnframes() > CLIP_RATE // 2  # some speech, not an empty file
    source = WavSource(clip, paced=False, clock=trio.current_time)
    try:
        frame = await source.read_frame()
        assert frame is not None
        assert len(frame) == 2 * source.frame_samples
    finally:
        source.close()
    # A second call keeps the file it made.
    assert await make_voice_clip(clip, "something else") == clip
