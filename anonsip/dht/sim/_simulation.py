"""An event-driven simulator running the real DHT cores on a simulated network.

The nodes here are the same ``RoutingTable``, ``Lookup``, ``RecordStore`` and
``DhtProtocol`` objects ``DhtNode`` runs; only the transport is replaced by a
heap of timed events (request arrives after a one-way latency, the reply
after another; a request to an offline or dropping node resolves at its
deadline). Lookups run one after another, each on its own virtual clock.

Seeding routing tables. Joining 10,000 nodes one by one through lookups
would take hours of simulated maintenance; instead every node's table is
filled as a converged Kademlia network would have it: for each bucket i,
the nodes whose distance to it has bit length i+1 form one contiguous range
of the sorted id list, and the node learns up to k random members of that
range. Every bucket therefore has the right structure (full where the range
holds k or more nodes, complete where it holds fewer).

Churn. A fraction ``churn`` of the nodes is offline when lookups run, but
still sits in other nodes' tables: half of them left after the tables
converged but before records were published, the other half after records
were published (taking their replicas with them).

Adversaries. A fraction ``adversarial`` of the nodes, chosen at random,
collude. On FIND_NODE and FIND_VALUE each request is dropped (answered by
the deadline) with probability ``drop``; otherwise the adversary answers
with the k adversaries closest to the target (the self-serving, eclipsing
answer, which looks closer than anything honest nodes know) or, if it
holds an older version of the record, serves that stale version. It
accepts STOREs but keeps only the first version it saw.

Success of a FIND_VALUE: the lookup returns the newest version.
"""

from __future__ import annotations

import bisect
import heapq
import math
import random
import statistics
from collections.abc import Callable
from dataclasses import dataclass, field

import nacl.signing

from anonsip.dht._identity import ID_BITS, Contact, NodeId
from anonsip.dht._lookup import Lookup, LookupKind, LookupResult
from anonsip.dht._messages import FindNode, FindValue, Nodes, Reply, Request, Store, Value
from anonsip.dht._protocol import DhtProtocol
from anonsip.dht._record import DhtRecord, sign_record
from anonsip.dht._routing import RoutingTable
from anonsip.dht._store import RecordStore

__all__ = ["LookupStats", "SimConfig", "Simulation", "summarize"]


@dataclass(frozen=True, slots=True, kw_only=True)
class SimConfig:
    nodes: int = 10_000
    adversarial: float = 0.0
    churn: float = 0.0
    k: int = 20
    alpha: int = 3
    paths: int = 1
    records: int = 200
    drop: float = 0.3
    rtt_median: float = 0.5  # seconds, a warm onion-service stream round trip is 0.06-0.3 s
    rtt_sigma: float = 0.6
    rpc_timeout: float = 5.0
    seed: int = 1


@dataclass(frozen=True, slots=True, kw_only=True)
class LookupStats:
    success: bool
    hops: int
    messages: int
    timeouts: int
    latency: float


@dataclass(slots=True)
class _Node:
    contact: Contact
    protocol: DhtProtocol
    online: bool = True
    adversary: bool = False
    kept: dict[bytes, DhtRecord] = field(default_factory=dict)  # an adversary's stale copies


class Simulation:
    def __init__(self, config: SimConfig) -> None:
        self.config = config
        # Simulated keys and choices are meant to repeat from the seed.
        self.rng = random.Random(config.seed)  # noqa: S311
        self.now = 1_700_000_000.0
        self._build()

    # -- construction -----------------------------------------------------------

    def _build(self) -> None:
        c = self.config
        contacts = []
        for _ in range(c.nodes):
            key = nacl.signing.SigningKey(self.rng.randbytes(32))
            contacts.append(Contact.from_public_key(bytes(key.verify_key), 1))
        contacts.sort(key=lambda x: x.node_id.value)
        self.contacts = contacts
        self._ids = [x.node_id.value for x in contacts]
        self.nodes: dict[NodeId, _Node] = {}
        for contact in contacts:
            routing = RoutingTable(contact.node_id, now=self.now, rng=self.rng, k=c.k)
            store = RecordStore(max_per_peer=1_000_000, rate=1e9, burst=1e9)
            protocol = DhtProtocol(contact=contact, routing=routing, store=store)
            self.nodes[contact.node_id] = _Node(contact=contact, protocol=protocol)
        for contact in contacts:
            self._seed_table(self.nodes[contact.node_id].protocol.routing)
        for contact in self.rng.sample(contacts, int(c.nodes * c.adversarial)):
            self.nodes[contact.node_id].adversary = True
        self.adversaries = sorted(
            (n.contact for n in self.nodes.values() if n.adversary), key=lambda x: x.node_id.value
        )
        self._adversary_ids = [x.node_id.value for x in self.adversaries]

    def _seed_table(self, routing: RoutingTable) -> None:
        x = routing.own_id.value
        k = self.config.k
        for i in range(ID_BITS - 1, -1, -1):
            block = (x >> (i + 1)) << (i + 1)
            lo_all = bisect.bisect_left(self._ids, block)
            hi_all = bisect.bisect_left(self._ids, block + (1 << (i + 1)))
            if hi_all - lo_all <= 1:
                break  # only ourselves left in this subtree: deeper buckets are empty
            start = ((x >> i) ^ 1) << i
            lo = bisect.bisect_left(self._ids, start)
            hi = bisect.bisect_left(self._ids, start + (1 << i))
            for j in self.rng.sample(range(lo, hi), min(k, hi - lo)):
                routing.seen(self.contacts[j])

    def _go_offline(self, fraction: float) -> None:
        online = [n for n in self.nodes.values() if n.online]
        for node in self.rng.sample(online, int(len(self.nodes) * fraction)):
            node.online = False

    # -- the simulated network --------------------------------------------------

    def _rtt(self) -> float:
        c = self.config
        return c.rtt_median * math.exp(self.rng.gauss(0.0, c.rtt_sigma))

    def _answer(self, origin: _Node, target: _Node, request: Request) -> Reply | None:
        """What ``target`` answers, or None if the request goes unanswered."""
        if not target.online:
            return None
        if target.adversary:
            return self._adversary_answer(target, request)
        handled = target.protocol.handle(origin.contact, request, self.now)
        if handled.ping is not None:  # a liveness check, answered at once
            pinged = self.nodes[handled.ping.node_id]
            target.protocol.routing.ping_result(handled.ping, alive=pinged.online)
        return handled.reply

    def _adversary_answer(self, node: _Node, request: Request) -> Reply | None:
        if isinstance(request, Store):
            node.kept.setdefault(request.record.key, request.record)
            return None
        if self.rng.random() < self.config.drop:
            return None
        if isinstance(request, FindValue) and request.key in node.kept:
            return Value(record=node.kept[request.key])
        target = request.target if isinstance(request, FindNode) else None
        if isinstance(request, FindValue):
            target = NodeId.from_bytes(request.key)
        if target is None:
            return None
        return Nodes(contacts=self._closest_adversaries(target))

    def _closest_adversaries(self, target: NodeId) -> tuple[Contact, ...]:
        k = self.config.k
        i = bisect.bisect_left(self._adversary_ids, target.value)
        window = self.adversaries[max(0, i - 4 * k) : i + 4 * k]
        return tuple(heapq.nsmallest(k, window, key=lambda x: x.node_id.value ^ target.value))

    def run_lookup(
        self,
        origin: _Node,
        kind: LookupKind,
        target: NodeId,
        *,
        paths: int,
        alpha: int,
        stop_at_first_value: bool = True,
        value_quorum: int | None = None,
    ) -> tuple[LookupResult, float]:
        """Drive one lookup to the end on the event heap; returns its result and duration."""
        c = self.config
        lookup = Lookup(
            kind=kind,
            target=target,
            own_id=origin.contact.node_id,
            seeds=origin.protocol.routing.closest(target, c.k),
            now=self.now,
            k=c.k,
            alpha=alpha,
            paths=paths,
            stop_at_first_value=stop_at_first_value,
            value_quorum=value_quorum,
        )
        events: list[tuple[float, int, Contact, Reply | None]] = []
        clock = 0.0
        serial = 0
        while True:
            for contact, request in lookup.next_requests():
                target_node = self.nodes[contact.node_id]
                reply = self._answer(origin, target_node, request)
                delay = c.rpc_timeout if reply is None else min(self._rtt(), c.rpc_timeout)
                if reply is None or delay >= c.rpc_timeout:
                    reply = None
                serial += 1
                heapq.heappush(events, (clock + delay, serial, contact, reply))
            if lookup.done or not events:
                break
            clock, _, contact, reply = heapq.heappop(events)
            routing = origin.protocol.routing
            if reply is None:
                lookup.on_timeout(contact)
                routing.failed(contact)
            else:
                lookup.on_response(contact, reply)
                ping = routing.seen(contact)
                if ping is not None:
                    routing.ping_result(ping, alive=self.nodes[ping.node_id].online)
        return lookup.result(), clock

    # -- the experiment ------------------------------------------------------------

    def _honest_online(self) -> list[_Node]:
        return [n for n in self.nodes.values() if n.online and not n.adversary]

    def _publish(self, publisher: _Node, record: DhtRecord) -> None:
        c = self.config
        target = NodeId.from_bytes(record.key)
        result, _ = self.run_lookup(
            publisher, LookupKind.FIND_NODE, target, paths=c.paths, alpha=c.alpha
        )
        for contact in result.closest:
            self._answer(publisher, self.nodes[contact.node_id], Store(record=record))

    def run(
        self,
        lookups: int,
        *,
        paths: int | None = None,
        alpha: int | None = None,
        stop_at_first_value: bool = True,
        value_quorum: int | None = None,
    ) -> list[LookupStats]:
        """Publish records (two versions each), apply churn, then time FIND_VALUE lookups."""
        c = self.config
        paths = c.paths if paths is None else paths
        alpha = c.alpha if alpha is None else alpha
        if not hasattr(self, "_published"):
            self._published = self._prepare()
        out = []
        honest = self._honest_online()
        for _ in range(lookups):
            fresh = self.rng.choice(self._published)
            origin = self.rng.choice(honest)
            result, latency = self.run_lookup(
                origin,
                LookupKind.FIND_VALUE,
                NodeId.from_bytes(fresh.key),
                paths=paths,
                alpha=alpha,
                stop_at_first_value=stop_at_first_value,
                value_quorum=value_quorum,
            )
            out.append(
                LookupStats(
                    success=result.record == fresh,
                    hops=result.hops,
                    messages=result.messages,
                    timeouts=result.timeouts,
                    latency=latency,
                )
            )
        return out

    def _prepare(self) -> list[DhtRecord]:
        c = self.config
        self._go_offline(c.churn / 2)
        published = []
        for n in range(c.records):
            seed = random.Random(f"sim-record-{c.seed}-{n}").randbytes(32)  # noqa: S311 - repeatable
            key = nacl.signing.SigningKey(seed)

            def sign(message: bytes, key: nacl.signing.SigningKey = key) -> bytes:
                return bytes(key.sign(message).signature)

            versions = [
                sign_record(
                    sign,
                    public_key=bytes(key.verify_key),
                    seq=seq,
                    expiry=int(self.now) + 3600,
                    payload=b"registration %d v%d" % (n, seq),
                )
                for seq in (1, 2)
            ]
            publisher = self.rng.choice(self._honest_online())
            for version in versions:
                self._publish(publisher, version)
            published.append(versions[-1])
        self._go_offline(c.churn - c.churn / 2)
        return published


def _percentile(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, math.ceil(q * len(ordered)) - 1)]


def summarize(stats: list[LookupStats]) -> dict[str, float]:
    hops = [float(s.hops) for s in stats]
    messages = [float(s.messages) for s in stats]
    latency = [s.latency for s in stats]
    metric: Callable[[list[float]], float] = statistics.median
    return {
        "lookups": len(stats),
        "success_rate": sum(s.success for s in stats) / max(1, len(stats)),
        "median_hops": metric(hops) if hops else 0.0,
        "p95_hops": _percentile(hops, 0.95),
        "median_messages": metric(messages) if messages else 0.0,
        "p95_messages": _percentile(messages, 0.95),
        "mean_messages": statistics.fmean(messages) if messages else 0.0,
        "median_timeouts": metric([float(s.timeouts) for s in stats]) if stats else 0.0,
        "median_latency_s": metric(latency) if latency else 0.0,
        "p95_latency_s": _percentile(latency, 0.95),
    }
