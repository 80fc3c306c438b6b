"""The node's encrypted local store of contacts, messages, the outbox and requests."""

from anonsip.store._backoff import RETRY_BASE, RETRY_CAP, retry_delay
from anonsip.store._crypto import KEY_SIZE
from anonsip.store._errors import (
    StoreCorruptError,
    StoreError,
    StoreFullError,
    StoreKeyError,
    StoreLimitError,
    StoreLockedError,
)
from anonsip.store._records import (
    Contact,
    ContactRequest,
    ContactState,
    Direction,
    Message,
    MessageState,
    OutboxItem,
)
from anonsip.store._store import (
    MAX_CONTACTS,
    MAX_NICK_BYTES,
    MAX_NOTE_BYTES,
    MAX_OUTBOX_PER_PEER,
    MAX_PENDING_REQUESTS,
    MAX_REQUEST_TEXT_BYTES,
    MAX_TEXT_BYTES,
    MessageStore,
)

__all__ = [
    "KEY_SIZE",
    "MAX_CONTACTS",
    "MAX_NICK_BYTES",
    "MAX_NOTE_BYTES",
    "MAX_OUTBOX_PER_PEER",
    "MAX_PENDING_REQUESTS",
    "MAX_REQUEST_TEXT_BYTES",
    "MAX_TEXT_BYTES",
    "RETRY_BASE",
    "RETRY_CAP",
    "Contact",
    "ContactRequest",
    "ContactState",
    "Direction",
    "Message",
    "MessageState",
    "MessageStore",
    "OutboxItem",
    "StoreCorruptError",
    "StoreError",
    "StoreFullError",
    "StoreKeyError",
    "StoreLimitError",
    "StoreLockedError",
    "retry_delay",
]
