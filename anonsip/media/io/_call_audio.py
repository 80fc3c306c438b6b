"""One call's microphone and speaker: WAV files, chosen sound devices, or silence.

``open_audio`` gives a call its source and sink: WAV files if either is
given (the other direction silence / discarded), else the sound devices
(picked by a part of their name, or the first that can do 16-bit mono at
the call's rate). A file that runs out goes on as silence, because a call
lasts until someone hangs up; ``GatedSink`` plays silence while the call
is held, so frames keep flowing at the same rate either way.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import trio

from anonsip.media.io._audio import (
    AudioSink,
    AudioSource,
    ClockedSink,
    DeviceSink,
    DeviceSource,
    SilenceSource,
    WavSink,
    WavSource,
)

__all__ = ["AudioChoice", "CallAudio", "GatedSink", "open_audio", "silent_audio"]


class _PaddedSource:
    """``inner``, then silence."""

    def __init__(self, inner: WavSource) -> None:
        self.inner = inner
        self.sample_rate = inner.sample_rate
        self.frame_samples = inner.frame_samples
        self._silence: SilenceSource | None = None

    async def read_frame(self) -> bytes | None:
        if self._silence is None:
            frame = await self.inner.read_frame()
            if frame is not None:
                return frame
            self._silence = SilenceSource(
                sample_rate=self.sample_rate, frame_ms=self.inner.frame_ms
            )
        return await self._silence.read_frame()

    def next_frame(self) -> bytes | None:
        if self._silence is None:
            frame = self.inner.next_frame()
            if frame is not None:
                return frame
            self._silence = SilenceSource(
                sample_rate=self.sample_rate, frame_ms=self.inner.frame_ms
            )
        return self._silence.next_frame()


class _DiscardSink:
    async def write_frame(self, pcm: bytes) -> None:
        await trio.lowlevel.checkpoint()

    def write_now(self, pcm: bytes) -> None:
        pass


class GatedSink:
    """Plays silence while the peer holds us or we hold it (the frames keep coming)."""

    def __init__(self, inner: AudioSink) -> None:
        self.inner = inner
        self.open = True

    async def write_frame(self, pcm: bytes) -> None:
        await self.inner.write_frame(pcm if self.open else bytes(len(pcm)))

    def gated(self) -> AudioSink:
        """This sink, as a ``ClockedSink`` if what it gates never waits."""
        return _ClockedGate(self) if isinstance(self.inner, ClockedSink) else self


class _ClockedGate:
    def __init__(self, gate: GatedSink) -> None:
        self._gate = gate
        assert isinstance(gate.inner, ClockedSink)
        self._inner: ClockedSink = gate.inner

    async def write_frame(self, pcm: bytes) -> None:
        await self._gate.write_frame(pcm)

    def write_now(self, pcm: bytes) -> None:
        self._inner.write_now(pcm if self._gate.open else bytes(len(pcm)))


@dataclass(frozen=True, kw_only=True)
class AudioChoice:
    """What a user asked a call to play and record (all optional)."""

    play: Path | None = None
    record: Path | None = None
    record_rate: int | None = None
    input_device: str | None = None
    output_device: str | None = None


@dataclass(eq=False)
class CallAudio:
    """One call's microphone and speaker (or files); ``close`` releases them."""

    source: AudioSource
    sink: AudioSink
    description: str
    choice: AudioChoice = field(default_factory=AudioChoice)
    closers: list[Callable[[], None]] = field(default_factory=list)

    def close(self) -> None:
        closers, self.closers = self.closers, []
        for close in closers:
            close()


def silent_audio(why: str) -> CallAudio:
    return CallAudio(source=SilenceSource(), sink=_DiscardSink(), description=why)


def open_audio(choice: AudioChoice, *, sample_rate: int = 16000, frame_ms: int = 20) -> CallAudio:
    """The audio ``choice`` asks for. Raises ``LocalError`` with a message for the
    user (an unreadable WAV; no such sound device, with the list of devices)."""
    if choice.play is None and choice.record is None:
        source = DeviceSource(name=choice.input_device, sample_rate=sample_rate, frame_ms=frame_ms)
        try:
            sink = DeviceSink(name=choice.output_device, sample_rate=sample_rate, frame_ms=frame_ms)
        except BaseException:
            source.close()
            raise
        return CallAudio(
            source=source,
            sink=sink,
            description="sound devices",
            choice=choice,
            closers=[source.close, sink.close],
        )
    closers: list[Callable[[], None]] = []
    audio_source: AudioSource = SilenceSource(sample_rate=sample_rate, frame_ms=frame_ms)
    if choice.play is not None:
        wav = WavSource(choice.play, sample_rate=sample_rate, frame_ms=frame_ms)
        closers.append(wav.close)
        audio_source = _PaddedSource(wav)
    audio_sink: AudioSink = _DiscardSink()
    if choice.record is not None:
        try:
            recorder = WavSink(choice.record, sample_rate=sample_rate, file_rate=choice.record_rate)
        except BaseException:
            for close in closers:
                close()
            raise
        closers.append(recorder.close)
        audio_sink = recorder
    return CallAudio(
        source=audio_source,
        sink=audio_sink,
        description=f"play {choice.play or 'silence'}, record {choice.record or 'nothing'}",
        choice=choice,
        closers=closers,
    )
