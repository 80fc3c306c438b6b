"""Deterministic randomness for known-answer and property tests."""

import hashlib
import json
import pathlib
from typing import Any

VECTORS = pathlib.Path(__file__).resolve().parents[2] / "vectors"


def load_vectors(name: str) -> Any:
    return json.loads((VECTORS / name).read_text())


class CountingRandom:
    """A repeatable RandomSource: SHAKE-256 of a label and a counter."""

    def __init__(self, label: bytes = b"test") -> None:
        self._label = label
        self._counter = 0

    def __call__(self, n: int) -> bytes:
        self._counter += 1
        return hashlib.shake_256(self._label + self._counter.to_bytes(8, "big")).digest(n)
