"""Test audio made at test time: espeak-ng speech at the call's rate, in tmp."""

import pathlib
import wave

import numpy as np
import pytest
import trio

from anonsip import AnonsipError
from anonsip.demo._clip import speak

TEXT = (
    "The quick brown fox jumps over the lazy dog. "
    "Voice calls over onion services must stay clear and private."
)


def make_speech(path: pathlib.Path, *, rate: int = 16000, text: str = TEXT) -> pathlib.Path:
    try:
        return speak(text, path, rate=rate)
    except AnonsipError as exc:
        # ./go installs espeak-ng; a machine without it must fail here, not skip.
        pytest.fail(str(exc))


def write_wav(path: pathlib.Path, pcm: np.ndarray, rate: int = 16000, channels: int = 1) -> None:
    with wave.open(str(path), "wb") as w:
        w.setnchannels(channels)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(pcm.astype("<i2").tobytes())


def read_pcm(path: pathlib.Path) -> tuple[int, np.ndarray]:
    with wave.open(str(path), "rb") as w:
        return w.getframerate(), np.frombuffer(w.readframes(w.getnframes()), dtype="<i2")


@pytest.fixture(scope="session")
def speech_wav(tmp_path_factory: pytest.TempPathFactory) -> pathlib.Path:
    return make_speech(tmp_path_factory.mktemp("speech") / "speech16k.wav")


@pytest.fixture(scope="session")
def speech_pcm(speech_wav: pathlib.Path) -> np.ndarray:
    return read_pcm(speech_wav)[1]


def first_100_ms_heard(reference: np.ndarray, heard: np.ndarray) -> bool:
    """The first 100 ms of speech in ``reference`` appear in ``heard``: the normalised
    cross-correlation of that piece with ``heard`` reaches 0.8 at its best lag."""
    ref = reference.astype(np.float64)
    onset = int(np.argmax(np.abs(ref) > 300))  # where the speech begins
    piece = ref[onset : onset + 1600]
    rec = heard.astype(np.float64)
    if rec.size < piece.size:
        return False
    corr = np.correlate(rec, piece, mode="valid")
    energy = np.sqrt(np.convolve(rec * rec, np.ones(piece.size), mode="valid")) + 1e-9
    return float(np.max(corr / (energy * np.linalg.norm(piece)))) >= 0.8


class LiveSource:
    """A microphone: ``pcm`` is spoken from ``start()`` on, in real time, read or not.

    A frame is there once it has been spoken; one not read by then is gone
    (a sound card's buffer holds ``buffer_frames``). Before ``start`` it hears silence.
    """

    def __init__(self, pcm: np.ndarray, *, rate: int = 16000, buffer_frames: int = 2) -> None:
        self.sample_rate = rate
        self.frame_samples = rate // 50
        self._pcm = pcm.astype("<i2").tobytes()
        self._buffer = buffer_frames
        self._origin: float | None = None
        self._next: int | None = None

    def start(self) -> None:
        self._origin = trio.current_time()

    async def read_frame(self) -> bytes | None:
        size = 2 * self.frame_samples
        if self._origin is None:
            await trio.sleep(0.02)
            return bytes(size)
        slot = int((trio.current_time() - self._origin) / 0.02)
        if self._next is None or slot - self._next > self._buffer:
            self._next = max(slot - 1, 0)  # what was said and not read is lost
        await trio.sleep_until(self._origin + (self._next + 1) * 0.02)
        frame = self._pcm[self._next * size : (self._next + 1) * size]
        self._next += 1
        return frame.ljust(size, b"\0")
