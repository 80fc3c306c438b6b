"""Live media under trio: the media loop over a stream, audio sources and sinks.

Thin adapters around the sans-IO cores of ``anonsip.media``: ``MediaCall``
runs one call's encode -> seal -> send and receive -> open -> jitter buffer
-> decode loops on a stream; WAV files, sound devices and silence are its
sources and sinks; ``open_audio`` picks them for a call; ``DelayedStream``
delays a stream as a Tor circuit would, for tests and benchmarks.
"""

from anonsip.media.io._audio import (
    AudioSink,
    AudioSource,
    DeviceSink,
    DeviceSource,
    MemorySink,
    SilenceSource,
    WavSink,
    WavSource,
    audio_device_names,
    list_audio_devices,
)
from anonsip.media.io._call_audio import (
    AudioChoice,
    CallAudio,
    GatedSink,
    open_audio,
    silent_audio,
)
from anonsip.media.io._delaylink import DelayedStream
from anonsip.media.io._pipeline import EndReason, MediaCall, MediaEnded, MediaParams

__all__ = [
    "AudioChoice",
    "AudioSink",
    "AudioSource",
    "CallAudio",
    "DelayedStream",
    "DeviceSink",
    "DeviceSource",
    "EndReason",
    "GatedSink",
    "MediaCall",
    "MediaEnded",
    "MediaParams",
    "MemorySink",
    "SilenceSource",
    "WavSink",
    "WavSource",
    "audio_device_names",
    "list_audio_devices",
    "open_audio",
    "silent_audio",
]
