"""DhtNodes and anonymous DhtClients over in-memory streams (``memnet``): storing, finding,
anonymity, deadlines, admission, replication."""

from __future__ import annotations

import trio
import trio.testing

from anonsip.dht import (
    Anonymous,
    Challenge,
    DhtConfig,
    DhtNode,
    Envelope,
    Error,
    FindNode,
    NodeId,
    NodeIdentity,
    Ping,
    Proof,
    SharedRandom,
    encode_frame,
)
from anonsip.dht._rpc import MessageStream

from .helpers import SHARED, location, record
from .memnet import CONFIG, EPOCH, MemoryNet, clock, holders, network


async def test_bootstrap_store_and_find(autojump_clock: trio.testing.MockClock) -> None:
    async with network(14) as (net, nodes):
        for node in nodes:
            assert node.statistics().routing_contacts >= 8
        rec = record(1, expiry=int(EPOCH) + 3600)
        # Two replica positions, each on store_spread nodes (one value: SHARED is fixed).
        assert await net.client(nodes[3]).put(rec) >= 12
        assert len(holders(nodes, location(rec, 0))) >= 6
        assert len(holders(nodes, location(rec, 1))) >= 6
        assert await net.client(nodes[11]).get(rec.key) == rec
        newer = record(1, seq=2, expiry=int(EPOCH) + 3600)
        assert await net.client(nodes[5]).put(newer) >= 12
        assert await net.client(nodes[12]).get(rec.key) == newer
        assert await net.client(nodes[7]).get(record(2).key) is None
        target = nodes[9].contact.node_id
        dials, streams = net.dials, nodes[2].statistics().open_streams
        found = await nodes[2].find_node(target)
        # Pooled streams: a node's lookup dials only peers it has no stream to yet, once each.
        assert net.dials - dials == nodes[2].statistics().open_streams - streams
        assert found[0] == nodes[9].contact
        stats = nodes[2].statistics()
        assert stats.open_streams >= 1
        assert stats.routing_contacts >= 8


async def test_the_client_is_anonymous_and_leaves_nothing_behind(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with network(10) as (net, nodes):
        tables = {n.contact.node_id: set(n.routing.contacts()) for n in nodes}
        net.seen.clear()
        rec = record(4, expiry=int(EPOCH) + 3600)
        client = net.client(nodes[1])
        assert await client.put(rec) >= 1
        put_isolations = list(net.isolations)
        assert await client.get(rec.key) == rec
        get_isolations = net.isolations[len(put_isolations) :]
        # Every stream of both operations opened with Anonymous: no proof, no key, no port.
        for seen in net.seen:
            first = seen.messages()[0]
            assert first == Anonymous()
            assert not any(isinstance(m, Proof | Ping) for m in seen.messages())
        # An isolation token of each operation's own: one per (operation, peer).
        assert len(set(put_isolations)) == len(put_isolations)
        assert not {t.split("-")[3] for t in put_isolations} & {
            t.split("-")[3] for t in get_isolations
        }
        assert len({t.split("-")[3] for t in put_isolations}) == 1
        # No routing table changed, and no stream of the client is left open.
        await trio.sleep(1)
        assert {n.contact.node_id: set(n.routing.contacts()) for n in nodes} == tables
        assert all(seen.ended for seen in net.seen)
        # Its own node may hold a copy: it was reached like any other, anonymously.
        assert nodes[1].contact.node_id in {s.node for s in net.seen}


async def test_survives_two_nodes_leaving(autojump_clock: trio.testing.MockClock) -> None:
    async with network(12) as (net, nodes):
        rec = record(3, expiry=int(EPOCH) + 3600)
        await net.client(nodes[1]).put(rec)
        keep = (nodes[0], nodes[1], nodes[6])
        leaving = [n for n in holders(nodes, location(rec)) if n not in keep][:2]
        assert len(leaving) == 2
        for node in leaving:
            await net.leave(node)
        assert await net.client(nodes[6]).get(rec.key) == rec
        found = await nodes[6].find_node(NodeId.from_bytes(location(rec)))
        assert not {n.contact for n in leaving} & set(found)


async def test_a_vanished_peer_costs_only_its_deadline(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with network(10) as (net, nodes):
        rec = record(4, expiry=int(EPOCH) + 3600)
        await net.client(nodes[2]).put(rec)
        # Every node but the asker and one holder of each position vanishes.
        asker = nodes[5]
        keep = {asker.contact.node_id}
        for replica in (0, 1):
            keep.add(
                next(
                    n for n in holders(nodes, location(rec, replica)) if n is not asker
                ).contact.node_id
            )
        for node in nodes:
            if node.contact.node_id not in keep:
                net.vanished.add(node.contact.node_id)
        start = trio.current_time()
        assert await net.client(asker).get(rec.key) == rec
        # Hedged requests: a dead peer costs a soft deadline (the client saw no answers
        # yet: ``hedge_after``), then a grace period once a value came; never the request
        # deadline, which the dead peers' requests would each wait out unhedged.
        elapsed = trio.current_time() - start
        assert CONFIG.hedge_after <= elapsed < CONFIG.rpc_timeout


async def test_nothing_in_the_dht_hangs_a_caller(autojump_clock: trio.testing.MockClock) -> None:
    async with network(6) as (net, nodes):
        # Peers that take the stream and never say a word, or never answer at all.
        for node in nodes[1:]:
            net.silent.add(node.contact.node_id)
        start = trio.current_time()
        assert await net.client(nodes[0]).get(record(5).key) is None
        # Only its own node answers: it takes a copy at each replica position.
        assert await net.client(nodes[0]).put(record(5, expiry=int(EPOCH) + 3600)) == 2
        await nodes[0].find_node(nodes[3].contact.node_id)
        assert trio.current_time() - start <= 4 * CONFIG.operation_timeout
        # A caller that never answers the challenge is closed after the handshake deadline.
        ours, theirs = trio.testing.memory_stream_pair()
        done = trio.Event()

        async def serve() -> None:
            await nodes[0].serve_stream(theirs)
            done.set()

        net.nursery.start_soon(serve)
        start = trio.current_time()
        await done.wait()
        assert trio.current_time() - start <= CONFIG.handshake_timeout + 0.1
        assert await MessageStream(ours).receive() is not None  # it did challenge us
        # A caller that proves its key and then idles is closed after the idle deadline.
        peer = NodeIdentity.from_seed(bytes(32), 7000)
        ours, theirs = trio.testing.memory_stream_pair()
        done = trio.Event()
        net.nursery.start_soon(serve)
        messages = MessageStream(ours)
        challenge = await messages.receive()
        assert challenge is not None
        assert isinstance(challenge.message, Challenge)
        proof = Proof(
            public_key=peer.public_key,
            port=peer.port,
            signature=peer.prove(nodes[0].identity.public_key, challenge.message.nonce),
        )
        await messages.send(Envelope(request_id=0, message=proof))
        start = trio.current_time()
        await done.wait()
        assert trio.current_time() - start <= CONFIG.idle_timeout + 0.1


async def test_recovers_through_the_bootstrap_list(autojump_clock: trio.testing.MockClock) -> None:
    async with network(6) as (net, nodes):
        lonely = nodes[5]
        for contact in lonely.routing.contacts():
            lonely.routing.remove(contact.node_id)
        assert lonely.statistics().routing_contacts == 0
        await trio.sleep(CONFIG.maintenance_interval + 1)  # the maintenance round re-joins
        assert lonely.statistics().routing_contacts >= 4
        assert net.nodes


async def test_a_caller_enters_the_table_only_once_dialled_back(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with network(4) as (net, nodes):
        callee = nodes[0]
        # A node that proves its key but whose onion service does not answer.
        ghost = net.new(50)
        net.vanished.add(ghost.contact.node_id)
        async with ghost:
            assert await ghost.bootstrap([callee.contact]) >= 1  # it reached the callee...
            await trio.sleep(2 * CONFIG.rpc_timeout)
            assert ghost.contact.node_id not in callee.routing  # ...but was never let in
        # One that answers on its own onion service gets in after the dial back.
        newcomer = await net.start(51)
        await newcomer.bootstrap([callee.contact])
        await trio.sleep(1)
        assert newcomer.contact.node_id in callee.routing


async def test_anonymous_callers_cannot_ping_and_have_a_request_budget(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with network(3) as (net, nodes):
        ours, theirs = trio.testing.memory_stream_pair()
        net.nursery.start_soon(nodes[0].serve_stream, theirs)
        messages = MessageStream(ours)
        await messages.receive()  # challenge
        await messages.send(Envelope(request_id=0, message=Anonymous()))
        await messages.send(Envelope(request_id=1, message=Ping()))
        reply = await messages.receive()
        assert reply is not None
        assert isinstance(reply.message, Error)
        for i in range(2, CONFIG.max_anonymous_requests + 1):
            await messages.send(Envelope(request_id=i, message=FindNode(target=NodeId(i))))
            answer = await messages.receive()
            assert answer is not None
        assert answer.request_id == i
        assert await messages.receive() is None  # the budget is spent: closed


async def test_refuses_callers_that_do_not_prove_their_identity(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with network(3) as (net, nodes):
        callee = nodes[0]
        before = set(callee.routing.contacts())
        impostor = NodeIdentity.from_seed(bytes(32), 7000)
        victim = nodes[1].identity
        ours, theirs = trio.testing.memory_stream_pair()
        net.nursery.start_soon(callee.serve_stream, theirs)
        messages = MessageStream(ours)
        challenge = await messages.receive()
        assert challenge is not None
        # Claims the victim's key, but can only sign with its own.
        bad = Proof(
            public_key=victim.public_key,
            port=victim.port,
            signature=impostor.prove(callee.identity.public_key, b"\x00" * 32),
        )
        await messages.send(Envelope(request_id=0, message=bad))
        refusal = await messages.receive()
        assert refusal is not None
        assert isinstance(refusal.message, Error)
        assert await messages.receive() is None  # closed
        assert set(callee.routing.contacts()) == before

        # Garbage instead of a proof is refused the same way.
        ours, theirs = trio.testing.memory_stream_pair()
        net.nursery.start_soon(callee.serve_stream, theirs)
        messages = MessageStream(ours)
        await messages.receive()
        await ours.send_all(b"\x00\x00\x00\x03abc")
        refusal = await messages.receive()
        assert refusal is not None
        assert isinstance(refusal.message, Error)

        # Requests before the proof are refused too.
        ours, theirs = trio.testing.memory_stream_pair()
        net.nursery.start_soon(callee.serve_stream, theirs)
        await ours.send_all(encode_frame(Envelope(request_id=1, message=Ping())))
        messages = MessageStream(ours)
        await messages.receive()  # challenge
        refusal = await messages.receive()
        assert refusal is not None
        assert isinstance(refusal.message, Error)

        # A proof from a key that does not solve the id puzzle is refused.
        strict = net.new(60, DhtConfig(k=8, difficulty=12, probation=0.0))
        async with strict:
            ours, theirs = trio.testing.memory_stream_pair()
            net.nursery.start_soon(strict.serve_stream, theirs)
            messages = MessageStream(ours)
            challenge = await messages.receive()
            assert challenge is not None
            assert isinstance(challenge.message, Challenge)
            weak = nodes[1].identity
            proof = Proof(
                public_key=weak.public_key,
                port=weak.port,
                signature=weak.prove(strict.identity.public_key, challenge.message.nonce),
            )
            await messages.send(Envelope(request_id=0, message=proof))
            refusal = await messages.receive()
            assert refusal is not None
            assert isinstance(refusal.message, Error)


async def test_records_follow_the_shared_random_value(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with network(10) as (net, nodes):
        rec = record(6, expiry=int(EPOCH) + 3600)
        assert await net.client(nodes[2]).put(rec) >= 1
        # A new value: the record is still found under the previous one (a looker
        # one consensus ahead of the publisher still meets it)...
        net.shared = SharedRandom(current=bytes(32), previous=SHARED.current)
        assert await net.client(nodes[7]).get(rec.key) == rec
        # ...and a republish places it under the new value as well.
        assert await net.client(nodes[2]).put(rec) >= 1
        assert holders(nodes, location(rec, shared=SharedRandom.single(bytes(32))))
        # Two values on, the old placement is out of use: the nodes drop it at the
        # next sweep, and the record is found under the values in use only.
        net.shared = SharedRandom(current=bytes(range(1, 33)), previous=bytes(32))
        for node in nodes:
            await node.maintain()
        assert not holders(nodes, location(rec))
        assert await net.client(nodes[4]).get(rec.key) == rec


async def test_replication_takes_turns_and_restores_lost_copies(
    autojump_clock: trio.testing.MockClock,
) -> None:
    config = DhtConfig(
        k=8,
        alpha=2,
        paths=2,
        difficulty=0,
        probation=0.0,
        store_spread=8,
        max_replications_per_round=1,
    )
    async with network(8) as (net, nodes):
        recs = [record(n, expiry=int(EPOCH) + 3600) for n in (7, 8, 9)]
        for rec in recs:
            await net.client(nodes[1]).put(rec)
        keeper = nodes[3]
        keeper.config = config  # one record per round
        wheres = sorted(loc for loc, _ in keeper.store.entries(clock()))
        others = [n for n in nodes if n is not keeper]
        for n in others:  # everyone else loses their copies
            n.store.sweep(float("inf"))
        rounds = []
        for _ in range(len(wheres)):
            assert await keeper.replicate_some() == 1
            rounds.append(
                sorted(set().union(*({loc for loc, _ in n.store.entries(clock())} for n in others)))
            )
        # Each round copied the next record, and after a full turn all of them are back.
        assert [len(r) for r in rounds] == list(range(1, len(wheres) + 1))
        assert rounds[-1] == wheres


async def test_nodes_joining_together_through_one_contact_meet(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """The contact lets a caller in only after dialling it back (a cold dial takes a while),
    so at first it knows nobody to hand out; a joiner asks again once it was dialled back."""
    async with trio.open_nursery() as nursery:
        net = MemoryNet(nursery)
        net.dial_delay = 2.0
        first = await net.start(0)
        joiners = [await net.start(n) for n in range(1, 9)]
        sizes: dict[int, int] = {}

        async def join(i: int, node: DhtNode) -> None:
            sizes[i] = await node.bootstrap([first.contact])

        async with trio.open_nursery() as joining:
            for i, node in enumerate(joiners):
                joining.start_soon(join, i, node)
        assert len(first.routing) == len(joiners)
        assert all(size >= 2 for size in sizes.values()), sizes
        assert max(sizes.values()) >= 4, sizes
        nursery.cancel_scope.cancel()


async def test_maintenance_joins_an_empty_table_again_and_says_so(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with network(6) as (net, nodes):
        late = await net.start(6)
        rejoined: list[int] = []
        late.on_rejoined = lambda: rejoined.append(late.statistics().routing_contacts)
        await late.maintain()  # nobody to join through yet: nothing to say
        assert rejoined == []
        late.bootstrap_source = lambda: [nodes[0].contact]
        await late.maintain()
        assert len(rejoined) == 1
        assert rejoined[0] >= 1
        await late.maintain()  # a table that has contacts is not joined again
        assert len(rejoined) == 1


async def test_a_lonely_table_that_others_fill_says_so_at_the_next_round(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """A node whose join failed may be found by others before its own round joins
    again: its next round says the table has contacts again, once."""
    async with network(3) as (net, nodes):
        lonely = await net.start(6)
        rejoined: list[int] = []
        lonely.on_rejoined = lambda: rejoined.append(len(lonely.routing))
        net.vanished.add(nodes[0].contact.node_id)
        assert await lonely.bootstrap([nodes[0].contact]) == 0  # its join failed
        net.vanished.clear()
        newcomer = await net.start(7)
        assert await newcomer.bootstrap([lonely.contact, nodes[1].contact]) >= 1
        assert len(lonely.routing) >= 1  # filled by a node that found it
        await lonely.maintain()
        assert len(rejoined) == 1
        assert rejoined[0] >= 1
        await lonely.maintain()
        assert len(rejoined) == 1
