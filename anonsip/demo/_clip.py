"""The demo peer's voice: a short spoken clip for the calls it answers.

espeak-ng speaks at 22050 Hz; calls carry 16-bit mono at 16 kHz
(``anonsip.media.WavSource``), so the clip is resampled here with linear
interpolation, which is plenty for a synthetic voice.
"""

from __future__ import annotations

import shutil
import tempfile
import wave
from pathlib import Path

import numpy as np
import trio

__all__ = ["CLIP_RATE", "GREETING_SPEECH", "make_voice_clip"]

CLIP_RATE = 16000
GREETING_SPEECH = (
    "Hello, this is the anonsip demo peer. Your call reached me through a private Tor "
    "network, over onion services only. Goodbye."
)


def _resample(pcm: bytes, rate: int, target: int) -> bytes:
    samples = np.frombuffer(pcm, dtype="<i2").astype(np.float64)
    if rate == target or samples.size == 0:
        return pcm
    count = int(samples.size * target / rate)
    positions = np.arange(count) * (rate / target)
    out = np.interp(positions, np.arange(samples.size), samples)
    result: bytes = np.clip(np.rint(out), -32768, 32767).astype("<i2").tobytes()
    return result


def _convert(source: Path, target: Path) -> None:
    with wave.open(str(source), "rb") as w:
        if w.getsampwidth() != 2:
            raise wave.Error(f"espeak-ng wrote {8 * w.getsampwidth()}-bit audio")
        pcm = w.readframes(w.getnframes())
        if w.getnchannels() != 1:
            mono = np.frombuffer(pcm, dtype="<i2").reshape(-1, w.getnchannels())[:, 0]
            pcm = mono.astype("<i2").tobytes()
        rate = w.getframerate()
    with wave.open(str(target), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(CLIP_RATE)
        out.writeframes(_resample(pcm, rate, CLIP_RATE))


async def make_voice_clip(target: Path, text: str = GREETING_SPEECH) -> Path | None:
    """Write ``text`` spoken to ``target`` (16 kHz mono); None if espeak-ng is missing."""
    if target.exists():
        return target
    espeak = shutil.which("espeak-ng")
    if espeak is None:
        return None
    with tempfile.TemporaryDirectory() as scratch:
        raw = Path(scratch) / "speech.wav"
        result = await trio.run_process(
            [espeak, "-w", str(raw), "-s", "150", text],
            capture_stdout=True,
            capture_stderr=True,
            check=False,
        )
        if result.returncode != 0 or not raw.exists():
            return None
        try:
            _convert(raw, target.with_suffix(".tmp"))
        except (wave.Error, EOFError, ValueError):
            return None
    target.with_suffix(".tmp").replace(target)
    return target
