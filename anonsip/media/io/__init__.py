"""Live media under trio: the media loop over its paths, audio sources and sinks.

Thin adapters around the sans-IO cores of ``anonsip.media``: ``MediaCall``
runs one call's encode -> seal -> send and receive -> open -> merge ->
jitter buffer -> decode loops on one stream or several (paths); WAV files,
sound devices and silence are its sources and sinks; ``open_audio`` picks
them for a call; ``DelayedStream`` delays a stream as a Tor circuit would,
for tests and benchmarks.
"""

from anonsip.media.io._audio import (
    AudioSink,
    AudioSource,
    ClockedSink,
    ClockedSource,
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
from anonsip.media.io._pipeline import (
    EndReason,
    MediaCall,
    MediaEnded,
    MediaParams,
    PathMode,
    PathView,
)

__all__ = [
    "AudioChoice",
    "AudioSink",
    "AudioSource",
    "CallAudio",
    "ClockedSink",
    "ClockedSource",
    "DelayedStream",
    "DeviceSink",
    "DeviceSource",
    "EndReason",
    "GatedSink",
    "MediaCall",
    "MediaEnded",
    "MediaParams",
    "MemorySink",
    "PathMode",
    "PathView",
    "SilenceSource",
    "WavSink",
    "WavSource",
    "audio_device_names",
    "list_audio_devices",
    "open_audio",
    "silent_audio",
]
