"""Spoken clips: the demo peer's voice, and test and benchmark speech.

espeak-ng speaks at 22050 Hz; calls carry 16-bit mono at 16 kHz, so what it
says is converted with ``anonsip.media.to_call_pcm`` (no sox needed).
``speak`` is the blocking form tests and benchmarks use; ``make_voice_clip``
the demo's, which runs espeak-ng as a trio subprocess.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import wave
from pathlib import Path

import trio

from anonsip._errors import LocalError
from anonsip.media import to_call_pcm

__all__ = ["CLIP_RATE", "GREETING_SPEECH", "make_voice_clip", "speak"]

CLIP_RATE = 16000
GREETING_SPEECH = (
    "Hello, this is the anonsip demo peer. Your call reached me through a private Tor "
    "network, over onion services only. Goodbye."
)
_ESPEAK_MISSING = "espeak-ng is needed to make speech; install it with: apt-get install espeak-ng"


def _convert(source: Path, target: Path, rate: int) -> None:
    with wave.open(str(source), "rb") as w:
        pcm = to_call_pcm(
            w.readframes(w.getnframes()),
            channels=w.getnchannels(),
            width=w.getsampwidth(),
            rate=w.getframerate(),
            target=rate,
        )
    with wave.open(str(target), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(pcm)


def _espeak_command(raw: Path, text: str, espeak: str) -> list[str]:
    return [espeak, "-w", str(raw), "-s", "150", text]


def speak(text: str, target: Path, *, rate: int = CLIP_RATE) -> Path:
    """Write ``text`` spoken to ``target`` (16-bit mono at ``rate``); raises ``LocalError``."""
    espeak = shutil.which("espeak-ng")
    if espeak is None:
        raise LocalError(_ESPEAK_MISSING)
    with tempfile.TemporaryDirectory() as scratch:
        raw = Path(scratch) / "speech.wav"
        done = subprocess.run(_espeak_command(raw, text, espeak), capture_output=True, check=False)
        if done.returncode != 0 or not raw.exists():
            raise LocalError(f"espeak-ng failed: {done.stderr.decode(errors='replace')[-200:]}")
        _convert(raw, target, rate)
    return target


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
            _espeak_command(raw, text, espeak),
            capture_stdout=True,
            capture_stderr=True,
            check=False,
        )
        if result.returncode != 0 or not raw.exists():
            return None
        try:
            _convert(raw, target.with_suffix(".tmp"), CLIP_RATE)
        except (wave.Error, EOFError, ValueError, LocalError):
            return None
    target.with_suffix(".tmp").replace(target)
    return target
