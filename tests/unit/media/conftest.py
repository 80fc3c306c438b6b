"""Test audio made at test time: espeak-ng speech at the call's rate, in tmp."""

import pathlib
import wave

import numpy as np
import pytest

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


def read_pcm(path: pathlib.Path) -> tuple[int, np.ndarray]:
    with wave.open(str(path), "rb") as w:
        return w.getframerate(), np.frombuffer(w.readframes(w.getnframes()), dtype="<i2")


@pytest.fixture(scope="session")
def speech_wav(tmp_path_factory: pytest.TempPathFactory) -> pathlib.Path:
    return make_speech(tmp_path_factory.mktemp("speech") / "speech16k.wav")


@pytest.fixture(scope="session")
def speech_pcm(speech_wav: pathlib.Path) -> np.ndarray:
    return read_pcm(speech_wav)[1]
