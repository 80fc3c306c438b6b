import random

from anonsip.dht import (
    DhtProtocol,
    FindNode,
    FindValue,
    Nodes,
    Ping,
    Pong,
    RecordStore,
    RoutingTable,
    Store,
    StoreResult,
    Value,
)

from .helpers import contact, record


def protocol(k: int = 20) -> DhtProtocol:
    own = contact(0)
    rt = RoutingTable(own.node_id, now=0.0, rng=random.Random(1), k=k)
    return DhtProtocol(contact=own, routing=rt, store=RecordStore())


def test_requests_add_the_verified_peer_to_the_routing_table() -> None:
    proto = protocol()
    peer = contact(1)
    assert proto.handle(peer, Ping(), 0.0).reply == Pong()
    assert peer.node_id in proto.routing


def test_find_node_answers_the_closest_without_the_requester() -> None:
    proto = protocol()
    for n in range(1, 50):
        proto.handle(contact(n), Ping(), 0.0)
    asker = contact(1)
    reply = proto.handle(asker, FindNode(target=asker.node_id), 0.0).reply
    assert isinstance(reply, Nodes)
    assert asker not in reply.contacts
    assert list(reply.contacts) == proto.routing.closest(asker.node_id, exclude=asker.node_id)


def test_store_then_find_value() -> None:
    proto = protocol()
    rec = record(3)
    peer = contact(1)
    assert proto.handle(peer, FindValue(key=rec.key), 0.0).reply == Nodes(contacts=())
    assert proto.handle(peer, Store(record=rec), 0.0).reply == StoreResult(outcome="stored")
    assert proto.handle(contact(2), FindValue(key=rec.key), 1.0).reply == Value(record=rec)
    stale = record(3, seq=0)
    assert proto.handle(peer, Store(record=stale), 1.0).reply == StoreResult(outcome="stale")
    assert proto.handle(peer, FindValue(key=rec.key), 1e9).reply != Value(record=rec)


def test_a_full_bucket_asks_for_a_liveness_check() -> None:
    proto = protocol(k=1)
    own = proto.contact
    far = [
        c for c in (contact(n) for n in range(1, 40)) if own.node_id.bucket_index(c.node_id) == 255
    ]
    assert proto.handle(far[0], Ping(), 0.0).ping is None
    assert proto.handle(far[1], Ping(), 0.0).ping == far[0]
