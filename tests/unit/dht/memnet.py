"""In-memory DHT networks for the tests: DhtNodes and anonymous DhtClients wired together over
trio memory streams, on the autojump clock. ``MemoryNet`` records what every node receives on
every stream (a storing node's whole view), and the isolation token every anonymous stream was
dialled with."""

from __future__ import annotations

import contextlib
import random
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

import trio
import trio.testing

from anonsip.dht import (
    Contact,
    DepositStore,
    DhtClient,
    DhtConfig,
    DhtNode,
    FrameDecoder,
    Message,
    NodeId,
    NodeIdentity,
)

from .helpers import SHARED

EPOCH = 1_700_000_000.0
CONFIG = DhtConfig(
    k=8,
    alpha=2,
    paths=2,
    difficulty=0,
    probation=0.0,
    store_spread=8,
    rpc_timeout=5.0,
    handshake_timeout=5.0,
    operation_timeout=60.0,
    maintenance_interval=60.0,
)


def clock() -> float:
    return EPOCH + trio.current_time()


@dataclass
class Seen:
    """One incoming stream as the node that served it saw it."""

    node: NodeId
    opened_at: float
    received: bytearray = field(default_factory=bytearray)
    ended: bool = False  # the caller closed it

    def messages(self) -> list[Message]:
        decoder = FrameDecoder()
        decoder.feed(bytes(self.received))
        out = []
        while (envelope := decoder.next_message()) is not None:
            out.append(envelope.message)
        return out


class _Recording(trio.abc.Stream):
    """The server's end of a memory stream, keeping a copy of every byte it receives."""

    def __init__(self, inner: trio.abc.Stream, seen: Seen) -> None:
        self._inner = inner
        self._seen = seen

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        await self._inner.send_all(data)

    async def wait_send_all_might_not_block(self) -> None:
        await self._inner.wait_send_all_might_not_block()

    async def receive_some(self, max_bytes: int | None = None) -> bytes | bytearray:
        data = await self._inner.receive_some(max_bytes)
        self._seen.received += data
        self._seen.ended = self._seen.ended or not data
        return data

    async def send_eof(self) -> None:
        pass

    async def aclose(self) -> None:
        await self._inner.aclose()


class MemoryNet:
    """Dialers handing one end of a memory stream pair to the target's serve_stream."""

    def __init__(self, nursery: trio.Nursery) -> None:
        self.nursery = nursery
        self.nodes: dict[NodeId, DhtNode] = {}
        self.vanished: set[NodeId] = set()
        self.silent: set[NodeId] = set()  # accept streams and never say a word
        self.dial_delay = 0.0  # how long every dial takes (a cold rendezvous)
        self.dials = 0
        self.seen: list[Seen] = []
        self.isolations: list[str] = []
        self.shared = SHARED
        self._leave: dict[NodeId, tuple[trio.Event, trio.Event]] = {}

    async def dial(self, contact: Contact) -> trio.abc.Stream:
        self.dials += 1
        await trio.sleep(self.dial_delay)
        if contact.node_id in self.vanished:
            await trio.sleep_forever()  # like tor waiting on a dead onion's descriptor
        if contact.node_id in self.silent:
            ours, _theirs = trio.testing.memory_stream_pair()
            return ours
        node = self.nodes.get(contact.node_id)
        if node is None:
            raise OSError("no such onion service")
        ours, theirs = trio.testing.memory_stream_pair()
        seen = Seen(node=contact.node_id, opened_at=trio.current_time())
        self.seen.append(seen)
        self.nursery.start_soon(node.serve_stream, _Recording(theirs, seen))
        return ours

    async def dial_anonymous(self, contact: Contact, isolation: str) -> trio.abc.Stream:
        self.isolations.append(isolation)
        return await self.dial(contact)

    def new(
        self, n: int, config: DhtConfig = CONFIG, deposits: DepositStore | None = None
    ) -> DhtNode:
        identity = NodeIdentity.from_seed(random.Random(n).randbytes(32), 9000 + n)
        return DhtNode(
            identity,
            dial=self.dial,
            config=config,
            clock=clock,
            rng=random.Random(n),
            shared_random=lambda: self.shared,
            deposits=deposits,
        )

    def client(self, node: DhtNode, config: DhtConfig = CONFIG) -> DhtClient:
        """The anonymous client beside ``node`` (seeded from its table, as the node wires it)."""
        return DhtClient(
            dial=self.dial_anonymous,
            seeds=node.seeds,
            shared_random=lambda: self.shared,
            config=config,
            clock=clock,
        )

    async def start(
        self, n: int, config: DhtConfig = CONFIG, deposits: DepositStore | None = None
    ) -> DhtNode:
        """Run a node in its own task until ``leave`` (each node owns its nursery)."""
        node = self.new(n, config, deposits)
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
async def network(
    size: int, deposits: Callable[[], DepositStore] | None = None
) -> AsyncIterator[tuple[MemoryNet, list[DhtNode]]]:
    """``size`` nodes joined through the first; ``deposits`` makes each node's deposit store."""
    async with trio.open_nursery() as nursery:
        net = MemoryNet(nursery)
        nodes = [await net.start(n, deposits=deposits and deposits()) for n in range(size)]
        for node in nodes[1:]:
            await node.bootstrap([nodes[0].contact])
        yield net, nodes
        nursery.cancel_scope.cancel()


def holders(nodes: list[DhtNode], where: bytes) -> list[DhtNode]:
    return [n for n in nodes if n.store.get(where, clock()) is not None]


def deposit_holders(nodes: list[DhtNode], where: bytes) -> list[DhtNode]:
    return [n for n in nodes if n.deposits.deposits(where, clock())]
