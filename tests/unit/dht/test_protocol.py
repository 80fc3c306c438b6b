import random

from anonsip.dht import (
    Collect,
    Delete,
    DeleteResult,
    DepositResult,
    Deposits,
    DhtProtocol,
    Error,
    FindNode,
    FindValue,
    Nodes,
    Ping,
    Pong,
    RecordStore,
    RoutingTable,
    Store,
    StoreDeposit,
    StoreResult,
    Value,
)
from anonsip.mailbox import DEPOSIT_POW_BITS

from .helpers import SHARED, contact, deletion, deposit, deposit_location, location, record


def protocol(k: int = 20, probation: float = 0.0) -> DhtProtocol:
    own = contact(0)
    rt = RoutingTable(own.node_id, now=0.0, rng=random.Random(1), k=k)
    return DhtProtocol(
        contact=own,
        routing=rt,
        store=RecordStore(),
        shared_random=lambda: SHARED,
        probation=probation,
    )


def test_a_proven_caller_is_to_be_dialled_back_not_added() -> None:
    proto = protocol()
    peer = contact(1)
    handled = proto.handle(peer, Ping(), 0.0)
    assert handled.reply == Pong()
    assert handled.dial_back == peer
    assert peer.node_id not in proto.routing  # an inbound proof alone is not enough
    proto.routing.seen(peer, 0.0)  # it answered on its own onion service
    assert proto.handle(peer, Ping(), 1.0).dial_back is None


def test_anonymous_clients_get_lookups_and_stores_only_and_leave_no_trace() -> None:
    proto = protocol()
    for n in range(1, 8):
        proto.routing.seen(contact(n), 0.0)
    before = proto.routing.contacts()
    rec = record(3)
    where = location(rec)
    assert isinstance(proto.handle(None, Ping(), 0.0).reply, Error)
    nodes = proto.handle(None, FindNode(target=contact(5).node_id), 0.0)
    assert isinstance(nodes.reply, Nodes)
    assert nodes.dial_back is None
    assert proto.handle(None, Store(location=where, record=rec), 0.0).reply == StoreResult(
        outcome="stored"
    )
    assert proto.handle(None, FindValue(key=where), 0.0).reply == Value(record=rec)
    assert proto.routing.contacts() == before


def test_find_node_answers_the_closest_without_the_requester() -> None:
    proto = protocol()
    for n in range(1, 50):
        proto.routing.seen(contact(n), 0.0)
    asker = contact(1)
    reply = proto.handle(asker, FindNode(target=asker.node_id), 0.0).reply
    assert isinstance(reply, Nodes)
    assert asker not in reply.contacts
    assert list(reply.contacts) == proto.routing.closest(asker.node_id, exclude=asker.node_id)


def test_young_contacts_are_not_handed_out_while_mature_ones_exist() -> None:
    proto = protocol(k=4, probation=100.0)
    old = [contact(n) for n in range(1, 30)]
    for c in old:
        proto.routing.seen(c, 0.0)
    for c in (contact(n) for n in range(30, 60)):
        proto.routing.seen(c, 150.0)
    young = [c for c in proto.routing.contacts() if c not in old]
    assert young
    for target in (c.node_id for c in young):
        reply = proto.handle(None, FindNode(target=target), 160.0).reply
        assert isinstance(reply, Nodes)
        assert set(reply.contacts) <= set(old)
    # Once their probation is over they are handed out like anyone.
    reply = proto.handle(None, FindNode(target=young[0].node_id), 260.0).reply
    assert isinstance(reply, Nodes)
    assert young[0] in reply.contacts


def test_store_then_find_value() -> None:
    proto = protocol()
    rec = record(3)
    where = location(rec)
    peer = contact(1)
    assert proto.handle(peer, FindValue(key=where), 0.0).reply == Nodes(contacts=())
    assert proto.handle(None, Store(location=where, record=rec), 0.0).reply == StoreResult(
        outcome="stored"
    )
    assert proto.handle(contact(2), FindValue(key=where), 1.0).reply == Value(record=rec)
    stale = record(3, seq=0)
    assert proto.handle(peer, Store(location=where, record=stale), 1.0).reply == StoreResult(
        outcome="stale"
    )
    assert proto.handle(peer, FindValue(key=where), 1e9).reply != Value(record=rec)


def test_a_node_refuses_records_others_are_responsible_for() -> None:
    proto = protocol(k=4)
    rec = record(3)
    where = location(rec)
    target = int.from_bytes(where, "big")
    own = proto.node_id.value ^ target
    closer = [c for c in (contact(n) for n in range(1, 400)) if c.node_id.value ^ target < own]
    for c in closer[:3]:  # fewer than k = 4 nodes closer: ours
        proto.routing.seen(c, 0.0)
    assert proto.handle(None, Store(location=where, record=rec), 0.0).reply == StoreResult(
        outcome="stored"
    )
    proto.routing.seen(closer[3], 0.0)
    rec2 = record(3, seq=2)
    assert proto.handle(None, Store(location=where, record=rec2), 0.0).reply == StoreResult(
        outcome="not-responsible"
    )


def test_anonymous_clients_deposit_collect_and_delete_and_leave_no_trace() -> None:
    proto = protocol()
    for n in range(1, 8):
        proto.routing.seen(contact(n), 0.0)
    before = proto.routing.contacts()
    letters = [deposit(3, i, expiry=10_000) for i in range(3)]
    where = deposit_location(letters[0])
    for d in letters:
        handled = proto.handle(None, StoreDeposit(location=where, deposit=d.encode()), 100.0)
        assert handled.reply == DepositResult(outcome="stored", work=d.work, floor=DEPOSIT_POW_BITS)
        assert handled.dial_back is None
    page = proto.handle(None, Collect(location=where), 100.0).reply
    assert isinstance(page, Deposits)
    assert sorted(page.deposits) == sorted(d.encode() for d in letters)
    assert page.more is False
    gone = deletion(3, (letters[0],), 100)
    reply = proto.handle(None, Delete(location=where, deletion=gone.encode()), 100.0).reply
    assert reply == DeleteResult(outcome="deleted", removed=1)
    page = proto.handle(None, Collect(location=where), 100.0).reply
    assert isinstance(page, Deposits)
    assert len(page.deposits) == 2
    assert proto.routing.contacts() == before


def test_a_node_refuses_deposits_others_are_responsible_for() -> None:
    proto = protocol(k=4)
    d = deposit(3, 0, expiry=10_000)
    where = deposit_location(d)
    target = int.from_bytes(where, "big")
    own = proto.node_id.value ^ target
    closer = [c for c in (contact(n) for n in range(1, 400)) if c.node_id.value ^ target < own]
    for c in closer[:4]:
        proto.routing.seen(c, 0.0)
    reply = proto.handle(None, StoreDeposit(location=where, deposit=d.encode()), 0.0).reply
    assert isinstance(reply, DepositResult)
    assert reply.outcome == "not-responsible"
    assert len(proto.deposits) == 0
