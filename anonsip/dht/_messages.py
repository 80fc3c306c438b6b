"""The DHT's messages as frozen, keyword-only dataclasses (no wire format here; see ``_codec``).

Requests (Kademlia 2.3): PING, FIND_NODE, FIND_VALUE, STORE. Replies carry
the request id the RPC layer assigned. Every connection opens with the
callee's ``Challenge``; the caller answers either ``Proof`` (a DHT node
proving its key) or ``Anonymous`` (a client that proves nothing and is
served FIND_NODE, FIND_VALUE and STORE only). An ``Error`` reply refuses a
request or the handshake. FIND_VALUE and STORE name a storage *location*
(``anonsip.dht._placement``), not the record's key.
"""

from __future__ import annotations

from dataclasses import dataclass

from anonsip.dht._identity import Contact, NodeId
from anonsip.dht._record import DhtRecord

__all__ = [
    "Anonymous",
    "Challenge",
    "Envelope",
    "Error",
    "FindNode",
    "FindValue",
    "Message",
    "Nodes",
    "Ping",
    "Pong",
    "Proof",
    "Reply",
    "Request",
    "Store",
    "StoreResult",
    "Value",
]


class Message:
    """Base of every DHT message."""

    __slots__ = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class Ping(Message):
    pass


@dataclass(frozen=True, slots=True, kw_only=True)
class FindNode(Message):
    target: NodeId


@dataclass(frozen=True, slots=True, kw_only=True)
class FindValue(Message):
    key: bytes  # the storage location asked for


@dataclass(frozen=True, slots=True, kw_only=True)
class Store(Message):
    location: bytes
    record: DhtRecord


@dataclass(frozen=True, slots=True, kw_only=True)
class Pong(Message):
    pass


@dataclass(frozen=True, slots=True, kw_only=True)
class Nodes(Message):
    contacts: tuple[Contact, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class Value(Message):
    record: DhtRecord
    contacts: tuple[Contact, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class StoreResult(Message):
    outcome: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Error(Message):
    code: str
    reason: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Challenge(Message):
    nonce: bytes


@dataclass(frozen=True, slots=True, kw_only=True)
class Proof(Message):
    public_key: bytes
    port: int
    signature: bytes


@dataclass(frozen=True, slots=True, kw_only=True)
class Anonymous(Message):
    """The caller is an anonymous client: it proves nothing and enters no routing table."""


Request = Ping | FindNode | FindValue | Store
Reply = Pong | Nodes | Value | StoreResult | Error


@dataclass(frozen=True, slots=True, kw_only=True)
class Envelope:
    """A request or reply with its request id (0 for handshake messages)."""

    request_id: int
    message: Message
