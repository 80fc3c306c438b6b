"""The demo peer's voice clip: what ``make_voice_clip`` writes, calls can play."""

from __future__ import annotations

import shutil
import wave
from pathlib import Path

import trio

from anonsip.demo import make_voice_clip
from anonsip.demo._clip import CLIP_RATE, speak
from anonsip.media.io import WavSource


def test_speak_writes_speech_at_the_rate_asked_for(tmp_path: Path) -> None:
    for rate in (16000, 8000):
        path = speak("one two three", tmp_path / f"s{rate}.wav", rate=rate)
        with wave.open(str(path), "rb") as w:
            assert (w.getnchannels(), w.getsampwidth(), w.getframerate()) == (1, 2, rate)
            assert w.getnframes() > rate // 2


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
