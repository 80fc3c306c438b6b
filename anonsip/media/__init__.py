"""End-to-end encrypted Opus voice over one in-order stream (an onion stream).

Pure parts: the Opus binding, frame sealing, the jitter buffer, the delay
model and call quality; the trio media loop and audio sources and sinks
are thin adapters around them.
"""

from anonsip.media._audio import (
    AudioSink,
    AudioSource,
    DeviceSink,
    DeviceSource,
    MemorySink,
    SilenceSource,
    WavSink,
    WavSource,
    list_audio_devices,
)
from anonsip.media._delaylink import DelayedStream
from anonsip.media._delaymodel import (
    DelayModel,
    PlayoutRecord,
    TorLikeDelay,
    replay_trace,
    talkspurts,
)
from anonsip.media._frame import (
    MAX_FRAME,
    DirectionKey,
    MediaFrame,
    MediaKeys,
    MediaReceiver,
    MediaSealer,
    derive_media_keys,
)
from anonsip.media._jitter import (
    Conceal,
    Idle,
    JitterBuffer,
    JitterPolicy,
    JitterStatistics,
    Play,
    PlayoutEvent,
)
from anonsip.media._opus import (
    ALLOWED_SAMPLE_RATES,
    OpusDecoder,
    OpusEncoder,
    OpusError,
    opus_version,
)
from anonsip.media._pipeline import EndReason, MediaCall, MediaEnded, MediaParams
from anonsip.media._quality import (
    CallStatistics,
    InterarrivalJitter,
    RoundTrip,
    e_model_mos,
    e_model_r,
    opus_ie,
)

__all__ = [
    "ALLOWED_SAMPLE_RATES",
    "MAX_FRAME",
    "AudioSink",
    "AudioSource",
    "CallStatistics",
    "Conceal",
    "DelayModel",
    "DelayedStream",
    "DeviceSink",
    "DeviceSource",
    "DirectionKey",
    "EndReason",
    "Idle",
    "InterarrivalJitter",
    "JitterBuffer",
    "JitterPolicy",
    "JitterStatistics",
    "MediaCall",
    "MediaEnded",
    "MediaFrame",
    "MediaKeys",
    "MediaParams",
    "MediaReceiver",
    "MediaSealer",
    "MemorySink",
    "OpusDecoder",
    "OpusEncoder",
    "OpusError",
    "Play",
    "PlayoutEvent",
    "PlayoutRecord",
    "RoundTrip",
    "SilenceSource",
    "TorLikeDelay",
    "WavSink",
    "WavSource",
    "derive_media_keys",
    "e_model_mos",
    "e_model_r",
    "list_audio_devices",
    "opus_ie",
    "opus_version",
    "replay_trace",
    "talkspurts",
]
