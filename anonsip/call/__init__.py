"""Call signalling: a sans-IO RFC 3261 call state machine and a tiny SDP.

The node maps the machine's abstract ``SignalEvent``s to SIP messages and
its ``StartMedia`` / ``UpdateMedia`` / ``StopMedia`` to ``anonsip.media``.
"""

from anonsip.call._call import (
    Ack,
    Bye,
    Call,
    CallEvent,
    CallState,
    Cancel,
    Ended,
    EndReason,
    IncomingCall,
    Invite,
    Method,
    MuteChanged,
    Notify,
    Refer,
    RemoteRinging,
    Response,
    Send,
    SignalEvent,
    StartMedia,
    StopMedia,
    TransferProgress,
    TransferRequested,
    UpdateMedia,
)
from anonsip.call._sdp import (
    Direction,
    MediaPreferences,
    SessionDescription,
    answer_direction,
    negotiate_answer,
)

__all__ = [
    "Ack",
    "Bye",
    "Call",
    "CallEvent",
    "CallState",
    "Cancel",
    "Direction",
    "EndReason",
    "Ended",
    "IncomingCall",
    "Invite",
    "MediaPreferences",
    "Method",
    "MuteChanged",
    "Notify",
    "Refer",
    "RemoteRinging",
    "Response",
    "Send",
    "SessionDescription",
    "SignalEvent",
    "StartMedia",
    "StopMedia",
    "TransferProgress",
    "TransferRequested",
    "UpdateMedia",
    "answer_direction",
    "negotiate_answer",
]
