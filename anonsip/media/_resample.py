"""Sample-rate conversion and WAV decoding for the audio a user hands us.

Calls carry 16-bit mono PCM at the call's rate (16 kHz). A user's WAV may
be anything common: espeak-ng writes 22.05 kHz, phones 44.1 or 48 kHz,
some files are stereo or 8/24/32-bit. ``to_call_pcm`` turns any of them
into the call's format and ``Resampler`` converts a stream piece by piece
(linear interpolation with its position carried across pieces, so piece
boundaries make no clicks). Plenty for speech, and no dependency.
"""

from __future__ import annotations

import numpy as np

from anonsip._errors import LocalError

__all__ = ["Resampler", "resample", "to_call_pcm"]

MAX_RATE = 384000


def _check_rate(rate: int) -> None:
    if not 1000 <= rate <= MAX_RATE:
        raise LocalError(f"{rate} Hz is not a sample rate anonsip can use")


class Resampler:
    """Converts a stream of 16-bit mono PCM from ``source`` Hz to ``target`` Hz.

    Output sample ``n`` sits at input position ``n * source / target``,
    computed in integers, so cutting the input anywhere gives the same
    output as converting it whole.
    """

    def __init__(self, source: int, target: int) -> None:
        _check_rate(source)
        _check_rate(target)
        self.source, self.target = source, target
        self._emitted = 0  # output samples so far
        self._base = 0  # input index of the first held sample
        self._held = np.zeros(0, dtype=np.float64)

    def process(self, pcm: bytes) -> bytes:
        if self.source == self.target:
            return pcm
        samples = np.frombuffer(pcm, dtype="<i2").astype(np.float64)
        data = np.concatenate([self._held, samples])
        last = self._base + data.size - 1  # interpolation needs a sample on each side
        if data.size < 2:
            self._held = data
            return b""
        # Output samples n with n * source / target <= last.
        end = last * self.target // self.source + 1
        n = np.arange(self._emitted, max(end, self._emitted), dtype=np.int64)
        whole = (n * self.source) // self.target
        frac = ((n * self.source) % self.target) / self.target
        index = whole - self._base
        upper = np.minimum(index + 1, data.size - 1)
        out = data[index] * (1.0 - frac) + data[upper] * frac
        self._emitted += n.size
        next_whole = self._emitted * self.source // self.target
        keep = max(0, min(next_whole - self._base, data.size))
        self._held = data[keep:]
        self._base += keep
        return bytes(np.clip(np.rint(out), -32768, 32767).astype("<i2").tobytes())


def resample(pcm: bytes, source: int, target: int) -> bytes:
    """All of ``pcm`` (16-bit mono) from ``source`` Hz to ``target`` Hz at once."""
    return Resampler(source, target).process(pcm)


def to_call_pcm(frames: bytes, *, channels: int, width: int, rate: int, target: int) -> bytes:
    """A WAV file's frames (any channel count, 8/16/24/32-bit) as 16-bit mono at ``target``."""
    if channels < 1 or channels > 8:
        raise LocalError(f"a WAV with {channels} channels is not supported")
    if width == 1:  # unsigned 8-bit
        samples = (np.frombuffer(frames, dtype=np.uint8).astype(np.int32) - 128) << 8
    elif width == 2:
        samples = np.frombuffer(frames, dtype="<i2").astype(np.int32)
    elif width == 3:
        raw = np.frombuffer(frames[: len(frames) - len(frames) % 3], dtype=np.uint8)
        triples = raw.reshape(-1, 3).astype(np.int32)
        value = triples[:, 0] | (triples[:, 1] << 8) | (triples[:, 2] << 16)
        samples = np.where(value >= 1 << 23, value - (1 << 24), value) >> 8
    elif width == 4:
        samples = np.frombuffer(frames, dtype="<i4").astype(np.int64) >> 16
    else:
        raise LocalError(f"a WAV of {8 * width}-bit samples is not supported")
    usable = samples.size - samples.size % channels
    mono = samples[:usable].reshape(-1, channels).mean(axis=1)
    pcm = np.clip(np.rint(mono), -32768, 32767).astype("<i2").tobytes()
    return resample(pcm, rate, target)
