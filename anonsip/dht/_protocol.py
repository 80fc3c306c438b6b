"""The server side of the DHT RPCs (Kademlia 2.3), sans-IO.

``DhtProtocol.handle`` takes a request, who sent it and the current time,
and returns the reply. The sender is a ``Contact`` when a DHT node proved
its key on this connection, ``None`` for an anonymous client:

* anonymous clients get every request but PING (lookups, STORE, and the
  mailbox requests DEPOSIT, COLLECT, DELETE) and leave no trace in the
  routing table;
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
never has it full, a node far away always does.) A DEPOSIT is authorised
the same way, by its proof of work and placement (``DepositStore.put``)
and that check; a COLLECT reads a page of what this node holds at a
location; a DELETE is authorised by the mailbox owner's signature
(``DepositStore.delete``). Nothing about the sender counts.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from anonsip.dht._codec import MAX_FRAME, MAX_PAGE
from anonsip.dht._deposits import DepositOutcome, DepositStore, DepositVerdict
from anonsip.dht._identity import Contact, NodeId
from anonsip.dht._messages import (
    Collect,
    Delete,
    DeleteResult,
    DepositResult,
    Deposits,
    Error,
    FindNode,
    FindValue,
    Nodes,
    Ping,
    Pong,
    Reply,
    Request,
    Store,
    StoreDeposit,
    StoreResult,
    Value,
)
from anonsip.dht._placement import SharedRandom
from anonsip.dht._record import DhtRecord
from anonsip.dht._routing import RoutingTable
from anonsip.dht._store import RecordStore, StoreOutcome

__all__ = ["DhtProtocol", "Handled"]

# A page of deposits leaves room in the frame for the envelope around it.
_PAGE_BYTES = MAX_FRAME - 1024


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
        deposits: DepositStore | None = None,
    ) -> None:
        self.contact = contact
        self.routing = routing
        self.store = store
        self.deposits = DepositStore(replicas=store.replicas) if deposits is None else deposits
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
            case StoreDeposit(location=location, deposit=deposit):
                verdict = self.deposit_here(location, deposit, now)
                return DepositResult(
                    outcome=verdict.outcome.value, work=verdict.work, floor=verdict.floor
                )
            case Collect(location=location, after=after):
                page, more = self.deposits.page(
                    location, after, now, max_items=MAX_PAGE, max_bytes=_PAGE_BYTES
                )
                return Deposits(deposits=tuple(page), more=more)
            case Delete(location=location, deletion=deletion):
                outcome, removed = self.deposits.delete(
                    location, deletion, now=now, shared=self.shared_random()
                )
                return DeleteResult(outcome=outcome.value, removed=removed)

    def _responsible(self, location: bytes, now: float) -> bool:
        closer = self.routing.closer_than_us(
            NodeId.from_bytes(location), mature_at=now - self.probation
        )
        return closer < self.routing.k

    def store_here(self, location: bytes, record: DhtRecord, now: float) -> StoreOutcome:
        """The STORE policy, also used for records this node places on itself."""
        if not self._responsible(location, now):
            return StoreOutcome.NOT_RESPONSIBLE
        return self.store.put(
            location, record, now=now, shared=self.shared_random(), own=self.node_id
        )

    def deposit_here(self, location: bytes, deposit: bytes, now: float) -> DepositVerdict:
        """The DEPOSIT policy: this node must be among those that hold the location."""
        if not self._responsible(location, now):
            return DepositVerdict(
                outcome=DepositOutcome.NOT_RESPONSIBLE, work=0, floor=self.deposits.difficulty
            )
        return self.deposits.put(location, deposit, now=now, shared=self.shared_random())
