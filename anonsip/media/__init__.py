"""End-to-end encrypted Opus voice over one in-order stream (an onion stream).

Pure parts: the Opus binding, frame sealing, the jitter buffer, the delay
model and call quality; the trio media loop and audio sources and sinks
are thin adapters around them.
"""

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

__all__ = [
    "ALLOWED_SAMPLE_RATES",
    "MAX_FRAME",
    "Conceal",
    "DelayModel",
    "DirectionKey",
    "Idle",
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
    "Play",
    "PlayoutEvent",
    "PlayoutRecord",
    "TorLikeDelay",
    "derive_media_keys",
    "opus_version",
    "replay_trace",
    "talkspurts",
]
