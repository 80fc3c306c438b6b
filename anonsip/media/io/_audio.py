"""Audio sources and sinks for the media loop: WAV files and sound devices.

A WAV source is paced to real time on a schedule (``trio.sleep_until``
start + n * frame), so a headless node or a test plays a file as a
microphone would; a call's media loop instead reads it with
``next_frame`` on its own 20 ms clock (a ``ClockedSource``), which saves a
wakeup per frame. A WAV sink records what the playout clock writes. Real
devices go through ``sounddevice`` (PortAudio); with no fitting device the
error names the devices that exist. Calls carry 16-bit mono PCM at the
call's rate; a WAV in any common format is converted on the way in, and a
recording is written at whatever rate the user asked for.
"""

from __future__ import annotations

import contextlib
import math
import pathlib
import wave
from collections.abc import Callable
from typing import Any, Protocol, runtime_checkable

import trio

from anonsip._errors import LocalError
from anonsip.media._resample import Resampler, to_call_pcm

__all__ = [
    "AudioSink",
    "AudioSource",
    "ClockedSink",
    "ClockedSource",
    "DeviceSink",
    "DeviceSource",
    "MemorySink",
    "SilenceSource",
    "WavSink",
    "WavSource",
    "audio_device_names",
    "list_audio_devices",
]


class AudioSource(Protocol):
    sample_rate: int
    frame_samples: int

    async def read_frame(self) -> bytes | None:
        """The next frame of 16-bit mono PCM, or None when the source ended."""
        ...


@runtime_checkable
class ClockedSource(AudioSource, Protocol):
    """A source with no clock of its own (a file, silence): the caller paces it."""

    def next_frame(self) -> bytes | None:
        """The next frame at once, or None when the source ended."""
        ...


class AudioSink(Protocol):
    async def write_frame(self, pcm: bytes) -> None: ...


@runtime_checkable
class ClockedSink(AudioSink, Protocol):
    """A sink that never waits (a file, memory): the media loop writes it in passing."""

    def write_now(self, pcm: bytes) -> None: ...


MAX_WAV_BYTES = 512 * 1024 * 1024  # a WAV that is converted is read whole: an hour of CD audio


class WavSource:
    """A WAV file read one frame at a time (16-bit mono at the call's rate), paced to real time.

    A file in another format (rate, channels, sample width) is converted
    once, when it is opened.
    """

    def __init__(
        self,
        path: str | pathlib.Path,
        *,
        sample_rate: int = 16000,
        frame_ms: int = 20,
        paced: bool = True,
        loop: bool = False,
        clock: Callable[[], float] = trio.current_time,
    ) -> None:
        self.path = pathlib.Path(path)
        try:
            with wave.open(str(self.path), "rb") as w:
                channels, width, rate = w.getnchannels(), w.getsampwidth(), w.getframerate()
                if w.getnframes() * channels * width > MAX_WAV_BYTES:
                    raise LocalError(f"{self.path} is too long to play in a call")
                frames = w.readframes(w.getnframes())
        except (OSError, EOFError, wave.Error) as exc:
            raise LocalError(f"cannot read WAV file {self.path}: {exc}") from exc
        if (channels, width, rate) == (1, 2, sample_rate):
            self._pcm = frames
        else:
            self._pcm = to_call_pcm(
                frames, channels=channels, width=width, rate=rate, target=sample_rate
            )
        self.sample_rate = sample_rate
        self.frame_samples = sample_rate * frame_ms // 1000
        self.frame_ms = frame_ms
        self._paced = paced
        self._loop = loop
        self._clock = clock
        self._start: float | None = None
        self._count = 0
        self._offset = 0

    async def read_frame(self) -> bytes | None:
        if self._paced:
            if self._start is None:
                self._start = self._clock()
            await trio.sleep_until(self._start + self._count * self.frame_ms / 1000)
        else:
            await trio.lowlevel.checkpoint()
        return self.next_frame()

    def next_frame(self) -> bytes | None:
        size = 2 * self.frame_samples
        if self._offset >= len(self._pcm) and self._loop and self._pcm:
            self._offset = 0
        data = self._pcm[self._offset : self._offset + size]
        if not data:
            return None
        self._offset += len(data)
        self._count += 1
        return data.ljust(size, b"\0")

    def close(self) -> None:
        self._pcm = b""


class SilenceSource:
    """Paced silence, for a side that only listens (None after ``seconds``)."""

    def __init__(
        self,
        *,
        sample_rate: int = 16000,
        frame_ms: int = 20,
        seconds: float | None = None,
        clock: Callable[[], float] = trio.current_time,
    ) -> None:
        self.sample_rate = sample_rate
        self.frame_samples = sample_rate * frame_ms // 1000
        self.frame_ms = frame_ms
        self._frames = None if seconds is None else round(seconds * 1000 / frame_ms)
        self._silence = b"\0" * (2 * self.frame_samples)
        self._clock = clock
        self._start: float | None = None
        self._count = 0

    async def read_frame(self) -> bytes | None:
        if self._start is None:
            self._start = self._clock()
        await trio.sleep_until(self._start + self._count * self.frame_ms / 1000)
        return self.next_frame()

    def next_frame(self) -> bytes | None:
        if self._frames is not None and self._count >= self._frames:
            return None
        self._count += 1
        return self._silence


_HEADER_EVERY = 50  # frames between header updates: a second of 20 ms frames


class WavSink:
    """Records 16-bit mono PCM frames into a WAV file, at ``file_rate`` if given.

    The header's length is brought up to date about once a second and on
    ``close``, not after every frame (three more system calls each).
    """

    def __init__(
        self, path: str | pathlib.Path, *, sample_rate: int = 16000, file_rate: int | None = None
    ) -> None:
        self.path = pathlib.Path(path)
        rate = file_rate or sample_rate
        self._resampler = Resampler(sample_rate, rate) if rate != sample_rate else None
        try:
            self._wav = wave.open(str(self.path), "wb")  # noqa: SIM115 -- closed in close()
        except OSError as exc:
            raise LocalError(f"cannot write WAV file {self.path}: {exc}") from exc
        self._wav.setnchannels(1)
        self._wav.setsampwidth(2)
        self._wav.setframerate(rate)
        self._frames = 0

    async def write_frame(self, pcm: bytes) -> None:
        self.write_now(pcm)
        await trio.lowlevel.checkpoint()

    def write_now(self, pcm: bytes) -> None:
        data = pcm if self._resampler is None else self._resampler.process(pcm)
        self._frames += 1
        try:
            if self._frames % _HEADER_EVERY:
                self._wav.writeframesraw(data)
            else:
                self._wav.writeframes(data)
        except OSError as exc:
            raise LocalError(f"cannot write the recording {self.path}: {exc.strerror}") from exc

    def close(self) -> None:
        try:
            self._wav.close()
        except OSError as exc:
            raise LocalError(f"cannot finish the recording {self.path}: {exc.strerror}") from exc


class MemorySink:
    """Keeps written PCM (bounded) and when each frame was written."""

    def __init__(
        self, *, max_bytes: int = 64 * 1024 * 1024, clock: Callable[[], float] = trio.current_time
    ) -> None:
        self.pcm = bytearray()
        self.times: list[float] = []
        self._max = max_bytes
        self._clock = clock

    async def write_frame(self, pcm: bytes) -> None:
        self.write_now(pcm)
        await trio.lowlevel.checkpoint()

    def write_now(self, pcm: bytes) -> None:
        if len(self.pcm) + len(pcm) > self._max:
            raise LocalError("the in-memory audio sink is full")
        self.pcm += pcm
        self.times.append(self._clock())


def _sounddevice() -> Any:
    try:
        import sounddevice  # imported late: it needs libportaudio2 when imported

    except OSError as exc:
        raise LocalError(
            "Sound devices need PortAudio; install it with: apt-get install libportaudio2"
        ) from exc
    return sounddevice


def list_audio_devices() -> list[str]:
    """One line per device PortAudio knows, for error messages and the UI."""
    sd = _sounddevice()
    lines = []
    for index, dev in enumerate(sd.query_devices()):
        lines.append(
            f"{index}: {dev['name']} (in {dev['max_input_channels']}, "
            f"out {dev['max_output_channels']}, {dev['default_samplerate']:.0f} Hz)"
        )
    return lines


def audio_device_names() -> tuple[list[str], list[str]]:
    """(microphones, speakers) by name, as ``--input`` / ``--output`` take them."""
    sd = _sounddevice()
    devices = list(sd.query_devices())
    inputs = [str(d["name"]) for d in devices if d["max_input_channels"] > 0]
    outputs = [str(d["name"]) for d in devices if d["max_output_channels"] > 0]
    return inputs, outputs


def _pick_device(kind: str, name: str | None, sample_rate: int) -> int:
    sd = _sounddevice()
    channels_key = "max_input_channels" if kind == "input" else "max_output_channels"
    devices = list(sd.query_devices())
    for index, dev in enumerate(devices):
        if dev[channels_key] < 1 or (name is not None and name not in dev["name"]):
            continue
        with contextlib.suppress(Exception):
            check = sd.check_input_settings if kind == "input" else sd.check_output_settings
            check(device=index, channels=1, dtype="int16", samplerate=sample_rate)
            return index
    what = "microphone" if kind == "input" else "speaker"
    wanted = f" named like {name!r}" if name else ""
    listing = "\n  ".join(list_audio_devices()) or "(none: PortAudio sees no sound devices)"
    raise LocalError(
        f"No {what}{wanted} supports 16-bit mono at {sample_rate} Hz. Devices:\n  {listing}\n"
        "Use a WAV file instead, or pick a device by name."
    )


class DeviceSource:
    """The microphone through PortAudio; reads block in a worker thread."""

    def __init__(
        self, *, name: str | None = None, sample_rate: int = 16000, frame_ms: int = 20
    ) -> None:
        sd = _sounddevice()
        device = _pick_device("input", name, sample_rate)
        self.sample_rate = sample_rate
        self.frame_samples = sample_rate * frame_ms // 1000
        self._stream = sd.RawInputStream(
            device=device,
            channels=1,
            dtype="int16",
            samplerate=sample_rate,
            blocksize=self.frame_samples,
        )
        self._stream.start()

    async def read_frame(self) -> bytes | None:
        data, _overflowed = await trio.to_thread.run_sync(self._stream.read, self.frame_samples)
        return bytes(data)

    def close(self) -> None:
        self._stream.close()


class DeviceSink:
    """The speaker through PortAudio; writes block in a worker thread."""

    def __init__(
        self, *, name: str | None = None, sample_rate: int = 16000, frame_ms: int = 20
    ) -> None:
        sd = _sounddevice()
        device = _pick_device("output", name, sample_rate)
        self._stream = sd.RawOutputStream(
            device=device,
            channels=1,
            dtype="int16",
            samplerate=sample_rate,
            blocksize=math.ceil(sample_rate * frame_ms / 1000),
        )
        self._stream.start()

    async def write_frame(self, pcm: bytes) -> None:
        await trio.to_thread.run_sync(self._stream.write, pcm)

    def close(self) -> None:
        self._stream.close()
