"""The DHT's messages as frozen, keyword-only dataclasses (no wire format here; see ``_codec``).

Requests (Kademlia 2.3): PING, FIND_NODE, FIND_VALUE, STORE; and for
mailboxes (``_deposits``): DEPOSIT one deposit at a location, COLLECT a
page of a location's deposits, DELETE what a deletion names. Replies carry
the request id the RPC layer assigned. Every connection opens with the
callee's ``Challenge``; the caller answers either ``Proof`` (a DHT node
proving its key) or ``Anonymous`` (a client that proves nothing and is
served everything but PING). An ``Error`` reply refuses a request or the
handshake. Every request but FIND_NODE names a storage *location*
(``anonsip.dht._placement``), not a record's or mailbox's key. Deposits and
deletions travel as bytes: ``anonsip.mailbox`` parses them, at the store.
"""

from __future__ import annotations

from dataclasses import dataclass

from anonsip.dht._identity import Contact, NodeId
from anonsip.dht._record import DhtRecord

__all__ = [
    "Anonymous",
    "Challenge",
    "Collect",
    "Delete",
    "DeleteResult",
    "DepositResult",
    "Deposits",
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
    "StoreDeposit",
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
class StoreDeposit(Message):
    location: bytes
    deposit: bytes  # an encoded ``anonsip.mailbox.Deposit``


@dataclass(frozen=True, slots=True, kw_only=True)
class Collect(Message):
    location: bytes
    after: bytes = b""  # the last deposit id of the previous page (empty: from the start)


@dataclass(frozen=True, slots=True, kw_only=True)
class Delete(Message):
    location: bytes
    deletion: bytes  # an encoded ``anonsip.mailbox.Deletion``


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
class DepositResult(Message):
    outcome: str
    work: int  # leading zero bits of the deposit's proof, as the store saw it
    floor: int  # the least work a new deposit at this location needs now


@dataclass(frozen=True, slots=True, kw_only=True)
class Deposits(Message):
    deposits: tuple[bytes, ...]
    more: bool  # another page follows: ask again after the last one's id


@dataclass(frozen=True, slots=True, kw_only=True)
class DeleteResult(Message):
    outcome: str
    removed: int


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


Request = Ping | FindNode | FindValue | Store | StoreDeposit | Collect | Delete
Reply = Pong | Nodes | Value | StoreResult | DepositResult | Deposits | DeleteResult | Error


@dataclass(frozen=True, slots=True, kw_only=True)
class Envelope:
    """A request or reply with its request id (0 for handshake messages)."""

    request_id: int
    message: Message
