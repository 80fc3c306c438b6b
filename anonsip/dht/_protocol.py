"""The server side of the DHT RPCs (Kademlia 2.3), sans-IO.

``DhtProtocol.handle`` takes a request, who sent it and the current time,
and returns the reply. The sender is a ``Contact`` when a DHT node proved
its key on this connection, ``None`` for an anonymous client:

* anonymous clients get FIND_NODE, FIND_VALUE and STORE, nothing else, and
  leave no trace in the routing table;
* a node that proved its key is not added to the routing table either:
  ``Handled.dial_back`` asks the adapter to call it back on its own onion
  service, and only its answer there lets it in (``RoutingTable.seen``).

FIND_NODE answers and the STORE responsibility check use mature contacts
(``RoutingTable.closest(mature_at=...)``). A STORE is authorised by the
record (``RecordStore.put``: kind, signature, location under a shared
random value, rate limits) and by this node being one of those that should
hold the location: fewer than ``k`` mature contacts it knows are closer to
it. (Every contact closer to a target than we are sits in one bucket, the
target's, so this says that bucket is not full: a node among the k closest
never has it full, a node far away always does.) Nothing about the sender
counts.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from anonsip.dht._identity import Contact, NodeId
from anonsip.dht._messages import (
    Error,
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
from anonsip.dht._placement import SharedRandom
from anonsip.dht._record import DhtRecord
from anonsip.dht._routing import RoutingTable
from anonsip.dht._store import RecordStore, StoreOutcome

__all__ = ["DhtProtocol", "Handled"]


@dataclass(frozen=True, slots=True, kw_only=True)
class Handled:
    reply: Reply
    dial_back: Contact | None = None


class DhtProtocol:
    def __init__(
        self,
        *,
        contact: Contact,
        routing: RoutingTable,
        store: RecordStore,
        shared_random: Callable[[], SharedRandom],
        probation: float = 0.0,
    ) -> None:
        self.contact = contact
        self.routing = routing
        self.store = store
        self.shared_random = shared_random
        self.probation = probation

    @property
    def node_id(self) -> NodeId:
        return self.contact.node_id

    def handle(self, peer: Contact | None, request: Request, now: float) -> Handled:
        """Answer ``request`` from the proven node ``peer``, or from an anonymous client (None)."""
        if peer is None:
            if isinstance(request, Ping):
                return Handled(reply=Error(code="refused", reason="anonymous clients cannot PING"))
            return Handled(reply=self._reply(None, request, now))
        dial_back = None if peer.node_id in self.routing else peer
        return Handled(reply=self._reply(peer.node_id, request, now), dial_back=dial_back)

    def _reply(self, exclude: NodeId | None, request: Request, now: float) -> Reply:
        k = self.routing.k
        mature_at = now - self.probation
        match request:
            case Ping():
                return Pong()
            case FindNode(target=target):
                return Nodes(
                    contacts=tuple(self.routing.closest(target, k, exclude, mature_at=mature_at))
                )
            case FindValue(key=location):
                record = self.store.get(location, now)
                if record is not None:
                    return Value(record=record)
                target = NodeId.from_bytes(location)
                return Nodes(
                    contacts=tuple(self.routing.closest(target, k, exclude, mature_at=mature_at))
                )
            case Store(location=location, record=record):
                return StoreResult(outcome=self.store_here(location, record, now).value)

    def store_here(self, location: bytes, record: DhtRecord, now: float) -> StoreOutcome:
        """The STORE policy, also used for records this node places on itself."""
        closer = self.routing.closer_than_us(
            NodeId.from_bytes(location), mature_at=now - self.probation
        )
        if closer >= self.routing.k:
            return StoreOutcome.NOT_RESPONSIBLE
        return self.store.put(
            location, record, now=now, shared=self.shared_random(), own=self.node_id
        )
