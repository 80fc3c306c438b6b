"""What the message store hands out: frozen records and their state enums."""

from __future__ import annotations

import enum
from dataclasses import dataclass

__all__ = [
    "Contact",
    "ContactRequest",
    "ContactState",
    "Direction",
    "Message",
    "MessageState",
    "OutboxItem",
]


class ContactState(enum.Enum):
    ACCEPTED = "accepted"  # both sides agreed; messages flow
    REQUESTED = "requested"  # we asked them; waiting for their answer
    BLOCKED = "blocked"  # everything from them is dropped


class Direction(enum.Enum):
    IN = "in"
    OUT = "out"


class MessageState(enum.Enum):
    QUEUED = "queued"  # in the outbox; nothing has left this machine
    REQUEST = "request"  # a contact request the peer's node holds; not accepted yet
    SENT = "sent"  # the peer's node said it has it (100 Trying); no receipt yet
    IN_MAILBOX = "in_mailbox"  # sealed in the peer's DHT mailbox; no receipt yet
    DELIVERED = "delivered"  # the peer confirmed it; out of the outbox
    RECEIVED = "received"  # an incoming message
    FAILED = "failed"  # given up; out of the outbox


@dataclass(frozen=True, kw_only=True)
class Contact:
    address: str
    nick: str
    state: ContactState
    verified: bool
    note: str
    cache: bytes | None  # the peer's last known contact blob (onion address etc.)
    cache_seq: int | None
    added: float


@dataclass(frozen=True, kw_only=True)
class Message:
    message_id: str
    peer: str
    direction: Direction
    seq: int  # position in this conversation, shared by both directions
    text: str
    time: float
    state: MessageState
    kind: str = "text"  # "text", or "call": then text is how it ended and duration_s is set
    duration_s: float = 0.0


@dataclass(frozen=True, kw_only=True)
class OutboxItem:
    message_id: str
    peer: str
    seq: int
    text: str
    attempts: int
    next_attempt: float


@dataclass(frozen=True, kw_only=True)
class ContactRequest:
    address: str
    text: str  # the first request's text; later repeats only raise count
    time: float
    last_time: float
    count: int
    message_id: str  # the request message's id: accepting shows it once, under that id
