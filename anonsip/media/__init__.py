"""End-to-end encrypted Opus voice over onion streams (one or several paths): the pure parts.

The Opus binding, frame sealing, merging the paths, the jitter buffer, the
delay model, call quality and resampling are sans-IO and import no trio. The trio media loop,
audio sources and sinks live in ``anonsip.media.io``, thin adapters around
these.
"""

from anonsip.media._delaymodel import (
    DelayModel,
    PlayoutRecord,
    TorLikeDelay,
    first_arrivals,
    replay_trace,
    talkspurts,
)
from anonsip.media._frame import (
    MAX_FRAME,
    MAX_PATHS,
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
from anonsip.media._paths import PathCounts, PathMerger
from anonsip.media._quality import (
    CallStatistics,
    InterarrivalJitter,
    RoundTrip,
    e_model_mos,
    e_model_r,
    opus_ie,
)
from anonsip.media._resample import Resampler, resample, to_call_pcm

__all__ = [
    "ALLOWED_SAMPLE_RATES",
    "MAX_FRAME",
    "MAX_PATHS",
    "CallStatistics",
    "Conceal",
    "DelayModel",
    "DirectionKey",
    "Idle",
    "InterarrivalJitter",
    "JitterBuffer",
    "JitterPolicy",
    "JitterStatistics",
    "MediaFrame",
    "MediaKeys",
    "MediaReceiver",
    "MediaSealer",
    "OpusDecoder",
    "OpusEncoder",
    "OpusError",
    "PathCounts",
    "PathMerger",
    "Play",
    "PlayoutEvent",
    "PlayoutRecord",
    "Resampler",
    "RoundTrip",
    "TorLikeDelay",
    "derive_media_keys",
    "e_model_mos",
    "e_model_r",
    "first_arrivals",
    "opus_ie",
    "opus_version",
    "replay_trace",
    "resample",
    "talkspurts",
    "to_call_pcm",
]
