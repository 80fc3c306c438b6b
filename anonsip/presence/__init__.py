"""Presence for contacts only (RFC 3856 over RFC 6665 SUBSCRIBE/NOTIFY): the sans-IO core.

``Notifier`` decides who may subscribe to our presence and whom to NOTIFY;
``Watch`` keeps our subscription to one contact alive and says what that
contact's presence is. The trio adapter is ``anonsip.node._presence``.
"""

from anonsip.presence._notifier import (
    DEFAULT_EXPIRES,
    MAX_EXPIRES,
    MAX_PER_PEER,
    MAX_SUBSCRIBERS,
    MIN_EXPIRES,
    Accepted,
    Notifier,
    Refused,
    Subscriber,
    SubscriptionKey,
)
from anonsip.presence._status import MAX_NOTE_LENGTH, PresenceError, Status, user_status
from anonsip.presence._watch import (
    REFRESH_FRACTION,
    REQUESTED_EXPIRES,
    TRANSITIONS,
    Action,
    Watch,
    WatchInput,
    WatchState,
    WatchTimings,
)

__all__ = [
    "DEFAULT_EXPIRES",
    "MAX_EXPIRES",
    "MAX_NOTE_LENGTH",
    "MAX_PER_PEER",
    "MAX_SUBSCRIBERS",
    "MIN_EXPIRES",
    "REFRESH_FRACTION",
    "REQUESTED_EXPIRES",
    "TRANSITIONS",
    "Accepted",
    "Action",
    "Notifier",
    "PresenceError",
    "Refused",
    "Status",
    "Subscriber",
    "SubscriptionKey",
    "Watch",
    "WatchInput",
    "WatchState",
    "WatchTimings",
    "user_status",
]
