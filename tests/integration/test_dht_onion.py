"""DHT nodes as onion services on the private Tor network: join, store, find, survive churn.

Ten nodes share two client tors (five onion services each), so lookups
cross processes and go through real rendezvous circuits. They all join
through ONE contact read from a bootstrap list file.
"""

from __future__ import annotations

import os
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

import nacl.signing
import pytest
import trio

from anonsip.dht import (
    BootstrapList,
    Contact,
    DhtConfig,
    DhtRecord,
    NodeId,
    OnionDht,
    onion_dialer,
    sign_record,
    start_onion_dht,
)
from onion import OnionError, Tor, launch_tor
from onion.testnet import TestnetInfo

pytestmark = pytest.mark.integration

NODES = 10
RPC_TIMEOUT = 6.0
# k smaller than the network, so lookups must walk and records live on some nodes only.
CONFIG = DhtConfig(k=4, alpha=2, paths=2, rpc_timeout=RPC_TIMEOUT, handshake_timeout=RPC_TIMEOUT)
BOOTSTRAP_TIMEOUT = 90.0


@asynccontextmanager
async def two_tors(testnet: TestnetInfo) -> AsyncIterator[tuple[Tor, Tor]]:
    """Two client tors on the network, bootstrapping side by side."""
    async with AsyncExitStack() as stack:
        tors = [
            await stack.enter_async_context(
                launch_tor(Path(testnet.directory) / "clients" / f"dht-{name}", testnet=testnet)
            )
            for name in ("a", "b")
        ]
        async with trio.open_nursery() as nursery:
            for tor in tors:
                nursery.start_soon(tor.wait_bootstrapped, BOOTSTRAP_TIMEOUT)
        yield tors[0], tors[1]


@dataclass
class RunningNode:
    """One onion DHT node running in a task, which ``leave`` ends as a peer would go offline."""

    dht: OnionDht
    scope: trio.CancelScope
    gone: trio.Event = field(default_factory=trio.Event)

    @property
    def contact(self) -> Contact:
        return self.dht.contact

    async def leave(self) -> None:
        self.scope.cancel()
        await self.gone.wait()


async def _run_node(
    tor: Tor, seed: bytes, *, task_status: trio.TaskStatus[RunningNode] = trio.TASK_STATUS_IGNORED
) -> None:
    gone = trio.Event()
    try:
        with trio.CancelScope() as scope:
            async with start_onion_dht(tor, seed, config=CONFIG) as dht:
                task_status.started(RunningNode(dht=dht, scope=scope, gone=gone))
                await trio.sleep_forever()
    finally:
        gone.set()


async def start_nodes(nursery: trio.Nursery, tors: Sequence[Tor], count: int) -> list[RunningNode]:
    """``count`` nodes spread over ``tors``, published concurrently, in start order."""
    running: list[RunningNode | None] = [None] * count

    async def start(i: int) -> None:
        running[i] = await nursery.start(_run_node, tors[i % len(tors)], os.urandom(32))

    async with trio.open_nursery() as starting:
        for i in range(count):
            starting.start_soon(start, i)
    return [node for node in running if node is not None]


def _record(payload: bytes, *, seq: int = 1) -> DhtRecord:
    key = nacl.signing.SigningKey.generate()

    def sign(message: bytes) -> bytes:
        return bytes(key.sign(message).signature)

    return sign_record(
        sign,
        public_key=bytes(key.verify_key),
        seq=seq,
        expiry=int(time.time()) + 3600,
        payload=payload,
    )


def _closest(nodes: Sequence[RunningNode], key: bytes, n: int) -> list[RunningNode]:
    target = NodeId.from_bytes(key)
    return sorted(nodes, key=lambda node: node.contact.node_id.distance(target))[:n]


async def test_ten_onion_nodes_join_store_find_and_survive_two_leaving(
    testnet: TestnetInfo, tmp_path: Path
) -> None:
    started = trio.current_time()
    timings: dict[str, float] = {}

    def lap(name: str) -> None:
        timings[name] = round(trio.current_time() - started, 1)

    async with two_tors(testnet) as tors, trio.open_nursery() as nursery:
        lap("tors bootstrapped")
        nodes = await start_nodes(nursery, tors, NODES)
        assert len(nodes) == NODES
        lap("nodes published")
        for node in nodes:
            # The node id is the hash of the key its onion address is made of.
            assert node.dht.service.address == node.contact.onion_address
            assert node.contact.node_id == NodeId.from_public_key(node.dht.service.key.public_key)

        # Everyone joins through the one contact the bootstrap list holds.
        bootstrap_list = BootstrapList(tmp_path)
        bootstrap_list.add_self(nodes[0].contact)
        seeds = bootstrap_list.contacts()
        assert seeds == [nodes[0].contact]
        sizes: dict[int, int] = {}

        async def join(i: int) -> None:
            sizes[i] = await nodes[i].dht.node.bootstrap(seeds)
            bootstrap_list.add_self(nodes[i].contact)

        async with trio.open_nursery() as joining:
            for i in range(1, NODES):
                joining.start_soon(join, i)
        lap("joined")
        assert all(size >= 1 for size in sizes.values()), sizes
        assert {c.public_key for c in bootstrap_list.contacts()} == {
            n.contact.public_key for n in nodes
        }
        # The table learnt of nodes beyond the one contact it was given.
        assert max(sizes.values()) >= 3, sizes

        # Store from one node (tor a), find from another (tor b).
        first = _record(b"alice is at some onion")
        assert await nodes[2].dht.node.put(first) >= 2
        lap("stored")
        assert await nodes[7].dht.node.get(first.key) == first
        lap("found")

        # Two of the record's holders (neither the writer nor the next reader) go offline.
        holders = [n for n in _closest(nodes, first.key, 4) if n not in (nodes[0], nodes[2])]
        leaving = holders[:2]
        for node in leaving:
            await node.leave()
        lap("two left")
        staying = [n for n in nodes if n not in leaving]
        now = time.time()
        reader = next(
            n
            for n in reversed(staying)
            if n not in (nodes[2], nodes[7]) and n.dht.node.store.get(first.key, now) is None
        )

        # A lookup still finds the record; the vanished peers cost at most their deadline.
        before = trio.current_time()
        assert await reader.dht.node.get(first.key) == first
        lookup_seconds = trio.current_time() - before
        lap("found after churn")
        assert lookup_seconds < 2 * RPC_TIMEOUT + 2, lookup_seconds

        # A new store still works, and another node finds it.
        second = _record(b"bob moved")
        assert await staying[1].dht.node.put(second) >= 1
        assert await staying[-2].dht.node.get(second.key) == second
        lap("stored and found after churn")

        # A newcomer joins through the list, whose newest entries include the two gone
        # peers: they cost at most their deadline, and it finds the first record.
        before = trio.current_time()
        newcomer = (await start_nodes(nursery, tors[1:], 1))[0]
        seeds = bootstrap_list.contacts()
        assert {n.contact for n in leaving} <= set(seeds)
        assert await newcomer.dht.node.bootstrap(seeds) >= 3
        assert await newcomer.dht.node.get(first.key) == first
        newcomer_seconds = trio.current_time() - before
        lap("newcomer joined and found")
        assert newcomer_seconds < 3 * RPC_TIMEOUT, newcomer_seconds

        # Dialling a vanished peer fails within the dial deadline instead of tor's ~120 s.
        dial = onion_dialer(tors[1], timeout=4.0)
        before = trio.current_time()
        with pytest.raises(OnionError) as failure:
            await dial(leaving[0].contact)
        print("dialling a gone peer:", repr(failure.value))
        assert trio.current_time() - before < 4.0 + 1.0
        lap("dead dial bounded")

        nursery.cancel_scope.cancel()
    print("timings (s since start):", timings)
    print(f"lookup after churn {lookup_seconds:.2f} s, newcomer {newcomer_seconds:.2f} s")
    assert trio.current_time() - started < 90
