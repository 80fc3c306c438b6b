"""The server side of the DHT RPCs (Kademlia 2.3), sans-IO.

``DhtProtocol.handle`` takes a request from a peer whose identity was
proven, the current time, and returns the reply. Every request also counts
as the peer being seen, which may ask for a liveness check of a bucket's
least-recently-seen contact (returned in ``Handled.ping``). The same object
serves requests in the simulator and behind the trio adapter.
"""

from __future__ import annotations

from dataclasses import dataclass

from anonsip.dht._identity import Contact, NodeId
from anonsip.dht._messages import (
    FindNode,
    FindValue,
    Nodes,
    Ping,
    Pong,
    Reply,
    Request,
    Store,
    StoreResult,
    Value,
)
from anonsip.dht._routing import RoutingTable
from anonsip.dht._store import RecordStore

__all__ = ["DhtProtocol", "Handled"]


@dataclass(frozen=True, slots=True, kw_only=True)
class Handled:
    reply: Reply
    ping: Contact | None = None


class DhtProtocol:
    def __init__(self, *, contact: Contact, routing: RoutingTable, store: RecordStore) -> None:
        self.contact = contact
        self.routing = routing
        self.store = store

    @property
    def node_id(self) -> NodeId:
        return self.contact.node_id

    def handle(self, peer: Contact, request: Request, now: float) -> Handled:
        """Answer ``request`` from the verified ``peer``."""
        ping = self.routing.seen(peer)
        return Handled(reply=self._reply(peer, request, now), ping=ping)

    def _reply(self, peer: Contact, request: Request, now: float) -> Reply:
        k = self.routing.k
        match request:
            case Ping():
                return Pong()
            case FindNode(target=target):
                return Nodes(contacts=tuple(self.routing.closest(target, k, exclude=peer.node_id)))
            case FindValue(key=key):
                record = self.store.get(key, now)
                if record is not None:
                    return Value(record=record)
                target = NodeId.from_bytes(key)
                return Nodes(contacts=tuple(self.routing.closest(target, k, exclude=peer.node_id)))
            case Store(record=record):
                return StoreResult(outcome=self.store.put(record, peer=peer.node_id, now=now).value)
