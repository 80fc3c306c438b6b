"""DhtNodes wired together over in-memory trio streams, on the autojump clock."""

from __future__ import annotations

import contextlib
import random
from collections.abc import AsyncIterator

import trio
import trio.testing

from anonsip.dht import (
    Contact,
    DhtConfig,
    DhtNode,
    Envelope,
    Error,
    NodeId,
    NodeIdentity,
    Ping,
    Proof,
    encode_frame,
)
from anonsip.dht._rpc import MessageStream

from .helpers import record

EPOCH = 1_700_000_000.0
CONFIG = DhtConfig(k=8, alpha=2, paths=2, rpc_timeout=5.0, maintenance_interval=60.0)


def clock() -> float:
    return EPOCH + trio.current_time()


class MemoryNet:
    """A dialer that hands one end of a memory stream pair to the target's serve_stream."""

    def __init__(self, nursery: trio.Nursery) -> None:
        self.nursery = nursery
        self.nodes: dict[NodeId, DhtNode] = {}
        self.vanished: set[NodeId] = set()
        self.dials = 0
        self._leave: dict[NodeId, tuple[trio.Event, trio.Event]] = {}

    async def dial(self, contact: Contact) -> trio.abc.Stream:
        self.dials += 1
        if contact.node_id in self.vanished:
            await trio.sleep_forever()  # like tor waiting on a dead onion's descriptor
        node = self.nodes.get(contact.node_id)
        if node is None:
            raise OSError("no such onion service")
        ours, theirs = trio.testing.memory_stream_pair()
        self.nursery.start_soon(node.serve_stream, theirs)
        return ours

    def new(self, n: int, config: DhtConfig = CONFIG) -> DhtNode:
        identity = NodeIdentity.from_seed(random.Random(n).randbytes(32), 9000 + n)
        return DhtNode(identity, dial=self.dial, config=config, clock=clock, rng=random.Random(n))

    async def start(self, n: int) -> DhtNode:
        """Run a node in its own task until ``leave`` (each node owns its nursery)."""
        node = self.new(n)
        leave, left = trio.Event(), trio.Event()

        async def run(task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
            try:
                async with node:
                    task_status.started()
                    await leave.wait()
            finally:
                left.set()

        await self.nursery.start(run)
        self.nodes[node.contact.node_id] = node
        self._leave[node.contact.node_id] = (leave, left)
        return node

    async def leave(self, node: DhtNode) -> None:
        del self.nodes[node.contact.node_id]
        leave, left = self._leave.pop(node.contact.node_id)
        leave.set()
        await left.wait()


@contextlib.asynccontextmanager
async def network(size: int) -> AsyncIterator[tuple[MemoryNet, list[DhtNode]]]:
    async with trio.open_nursery() as nursery:
        net = MemoryNet(nursery)
        nodes = [await net.start(n) for n in range(size)]
        for node in nodes[1:]:
            await node.bootstrap([nodes[0].contact])
        yield net, nodes
        nursery.cancel_scope.cancel()


async def test_bootstrap_store_and_find(autojump_clock: trio.testing.MockClock) -> None:
    async with network(14) as (net, nodes):
        for node in nodes:
            assert node.statistics().routing_contacts >= 8
        rec = record(1, expiry=int(EPOCH) + 3600)
        assert await nodes[3].put(rec) >= 6
        assert await nodes[11].get(rec.key) == rec
        newer = record(1, seq=2, expiry=int(EPOCH) + 3600)
        assert await nodes[5].put(newer) >= 6
        assert await nodes[12].get(rec.key) == newer
        assert await nodes[7].get(record(2).key) is None
        target = nodes[9].contact.node_id
        dials, streams = net.dials, nodes[2].statistics().open_streams
        found = await nodes[2].find_node(target)
        # Pooled streams: a lookup dials only peers it has no stream to yet, once each.
        assert net.dials - dials == nodes[2].statistics().open_streams - streams
        assert found[0] == nodes[9].contact
        stats = nodes[2].statistics()
        assert stats.open_streams >= 1
        assert stats.routing_contacts >= 8


async def test_survives_two_nodes_leaving(autojump_clock: trio.testing.MockClock) -> None:
    async with network(12) as (net, nodes):
        rec = record(3, expiry=int(EPOCH) + 3600)
        await nodes[1].put(rec)
        holders = [n for n in nodes if n.store.get(rec.key, clock()) is not None]
        leaving = [n for n in holders if n not in (nodes[0], nodes[1], nodes[6])][:2]
        assert len(leaving) == 2
        for node in leaving:
            await net.leave(node)
        assert await nodes[6].get(rec.key) == rec
        found = await nodes[6].find_node(NodeId.from_bytes(rec.key))
        assert not {n.contact for n in leaving} & set(found)


async def test_a_vanished_peer_costs_only_its_deadline(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with network(10) as (net, nodes):
        rec = record(4, expiry=int(EPOCH) + 3600)
        await nodes[2].put(rec)
        # Every node but the asker and one holder vanishes without closing anything.
        asker = nodes[5]
        keep = next(n for n in nodes if n.store.get(rec.key, clock()) and n is not asker)
        for node in nodes:
            if node not in (asker, keep):
                net.vanished.add(node.contact.node_id)
        for conn in list(asker._connections.values()):
            await conn.aclose()
        start = trio.current_time()
        assert await asker.get(rec.key) == rec
        # Parallel requests: the dead peers cost about one deadline per round, not one each.
        elapsed = trio.current_time() - start
        assert CONFIG.rpc_timeout <= elapsed <= 3 * CONFIG.rpc_timeout + 0.1


async def test_recovers_through_the_bootstrap_list(autojump_clock: trio.testing.MockClock) -> None:
    async with network(6) as (net, nodes):
        lonely = nodes[5]
        for contact in lonely.routing.contacts():
            lonely.routing.remove(contact.node_id)
        assert lonely.statistics().routing_contacts == 0
        await trio.sleep(CONFIG.maintenance_interval + 1)  # the maintenance round re-joins
        assert lonely.statistics().routing_contacts >= 4
        assert net.nodes


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
