"""Test audio made at test time: espeak-ng speech resampled by sox into tmp."""

import pathlib
import shutil
import subprocess
import wave

import numpy as np
import pytest

TEXT = (
    "The quick brown fox jumps over the lazy dog. "
    "Voice calls over onion services must stay clear and private."
)


def make_speech(path: pathlib.Path, *, rate: int = 16000, text: str = TEXT) -> pathlib.Path:
    if shutil.which("espeak-ng") is None or shutil.which("sox") is None:
        # ./go installs both; a machine without them must fail here, not skip.
        pytest.fail("espeak-ng and sox are needed to make test speech (./go installs them)")
    raw = path.with_suffix(".raw.wav")
    subprocess.run(["espeak-ng", "-w", str(raw), text], check=True, capture_output=True)
    subprocess.run(
        ["sox", str(raw), "-r", str(rate), "-c", "1", "-b", "16", str(path)],
        check=True,
        capture_output=True,
    )
    return path


def read_pcm(path: pathlib.Path) -> tuple[int, np.ndarray]:
    with wave.open(str(path), "rb") as w:
        return w.getframerate(), np.frombuffer(w.readframes(w.getnframes()), dtype="<i2")


@pytest.fixture(scope="session")
def speech_wav(tmp_path_factory: pytest.TempPathFactory) -> pathlib.Path:
    return make_speech(tmp_path_factory.mktemp("speech") / "speech16k.wav")


@pytest.fixture(scope="session")
def speech_pcm(speech_wav: pathlib.Path) -> np.ndarray:
    return read_pcm(speech_wav)[1]
