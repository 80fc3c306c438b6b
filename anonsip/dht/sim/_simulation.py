"""An event-driven simulator running the real DHT cores on a simulated network.

The nodes here are the same ``RoutingTable``, ``Lookup``, ``RecordStore`` and
``DhtProtocol`` objects ``DhtNode`` runs; only the transport is replaced by a
heap of timed events (request arrives after a one-way latency, the reply
after another; a request to an offline or dropping node resolves at its
deadline). Lookups run one after another, each on its own virtual clock,
and end at ``operation_timeout`` with what they found, as the client's do.
Records are real registration records (the only kind nodes store), placed
as ``DhtClient`` places them: ``replicas`` positions under the shared random
value, each stored on the ``store_spread`` closest nodes a FIND_NODE walk
finds; a FIND_VALUE walks every replica position, as the client does.

Seeding routing tables. Joining 10,000 nodes one by one through lookups
would take hours of simulated maintenance; instead every node's table is
filled as a converged Kademlia network would have it: for each bucket i,
the nodes whose distance to it has bit length i+1 form one contiguous range
of the sorted id list, and the node learns up to k random members of that
range. Every bucket therefore has the right structure (full where the range
holds k or more nodes, complete where it holds fewer). Those contacts are
old: they have passed any probation.

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
accepts STOREs but keeps only the first version it saw (in the targeted
eclipse below it keeps nothing: it withholds the record).

Targeted eclipse (``targeted``). The adversary knows the address behind
one record (the target) and moves nodes to the ids nearest its storage
positions that it can afford, then the target is published (so its own
FIND_NODE walk meets them) and looked up from random honest nodes:

* with ``shared_random`` on (what anonsip does), positions depend on a
  value the adversary learns only when the period starts. Its ids must be
  minted after that: it can afford ``grind`` times its fleet in valid ids
  (each costs the id puzzle), all uniformly random, and moves that many of
  its nodes (no more than its fleet) to the ones nearest the target's
  positions. They are young: honest nodes admit them (they answer a dial
  back) but, with ``probation`` on, never hand them out;
* with ``shared_random`` off, positions are known for every future period,
  so the adversary grinds at leisure: ``3k`` nodes per position, each id
  within ``1 / (16 nodes)`` of the key space of it (nearer than any honest
  node, fifteen times in sixteen), minted long ago (mature).

Each target is attacked in turn (the adversary's moved nodes go back
between targets). Success of a FIND_VALUE: the lookup returns the newest
version.
"""

from __future__ import annotations

import bisect
import hashlib
import heapq
import math
import random
import statistics
from collections.abc import Callable
from dataclasses import dataclass, field

import nacl.signing

from anonsip.dht._identity import ID_BITS, Contact, NodeId
from anonsip.dht._kinds import registration_record
from anonsip.dht._lookup import Lookup, LookupKind, LookupResult, ResponseTimes
from anonsip.dht._messages import FindNode, FindValue, Nodes, Reply, Request, Store, Value
from anonsip.dht._node import DhtConfig
from anonsip.dht._placement import SharedRandom, positions
from anonsip.dht._protocol import DhtProtocol
from anonsip.dht._record import DhtRecord
from anonsip.dht._routing import RoutingTable
from anonsip.dht._store import RecordStore
from anonsip.identity import TOR_TIME_PERIODS, Identity
from anonsip.registration import Contact as Reachable
from anonsip.registration import Presence, Registration, onion_address

__all__ = ["LookupStats", "SimConfig", "Simulation", "summarize"]

_PROBATION = 48 * 3600.0
_ONION = onion_address(bytes(range(32)))


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
    operation_timeout: float = 60.0  # a lookup is cut here and keeps what it found (DhtConfig)
    hedge: bool = True  # hedged requests, with DhtConfig's soft deadline (off: the old driver)
    value_grace: bool = True  # DhtConfig.value_grace (off: wait for every path)
    replicas: int = 2
    store_spread: int = 20
    targeted: bool = False
    targets: int = 10
    shared_random: bool = True
    grind: float = 1.0
    probation: bool = True
    seed: int = 1


@dataclass(frozen=True, slots=True, kw_only=True)
class LookupStats:
    success: bool
    hops: int
    messages: int
    timeouts: int
    latency: float
    stalls: int = 0


@dataclass(frozen=True, slots=True, kw_only=True)
class _Walk:
    """How a FIND_VALUE walk runs (the variants ``bench.dht --compare`` sets side by side)."""

    paths: int
    alpha: int
    stop_at_first_value: bool
    value_quorum: int | None


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
        self.shared = SharedRandom.single(self.rng.randbytes(32))
        defaults = DhtConfig()
        # One estimator for every simulated client: each has seen many answers before.
        self.response_times = ResponseTimes(
            initial=defaults.hedge_after,
            floor=defaults.hedge_floor,
            ceiling=max(defaults.hedge_floor, config.rpc_timeout / 2),
        )
        self._build()

    # -- construction -----------------------------------------------------------

    def _new_contact(self) -> Contact:
        key = nacl.signing.SigningKey(self.rng.randbytes(32))
        return Contact.from_public_key(bytes(key.verify_key), 1)

    def _new_node(self, contact: Contact) -> _Node:
        c = self.config
        routing = RoutingTable(contact.node_id, now=self.now, rng=self.rng, k=c.k)
        store = RecordStore(replicas=c.replicas, key_burst=1e9)
        protocol = DhtProtocol(
            contact=contact,
            routing=routing,
            store=store,
            shared_random=lambda: self.shared,
            probation=_PROBATION if c.probation else 0.0,
        )
        return _Node(contact=contact, protocol=protocol)

    def _build(self) -> None:
        c = self.config
        contacts = sorted((self._new_contact() for _ in range(c.nodes)), key=lambda x: x.node_id)
        self.contacts = contacts
        self._ids = [x.node_id.value for x in contacts]
        self.nodes: dict[NodeId, _Node] = {x.node_id: self._new_node(x) for x in contacts}
        for contact in contacts:
            self._seed_table(self.nodes[contact.node_id].protocol.routing)
        for contact in self.rng.sample(contacts, int(c.nodes * c.adversarial)):
            self.nodes[contact.node_id].adversary = True
        self._index_adversaries()

    def _index_adversaries(self) -> None:
        self.adversaries = sorted(
            (n.contact for n in self.nodes.values() if n.adversary and n.online),
            key=lambda x: x.node_id.value,
        )
        self._adversary_ids = [x.node_id.value for x in self.adversaries]

    def _seed_table(self, routing: RoutingTable) -> None:
        x = routing.own_id.value
        k = self.config.k
        old = self.now - 10 * _PROBATION
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
                routing.seen(self.contacts[j], old)

    def _go_offline(self, fraction: float) -> None:
        online = [n for n in self.nodes.values() if n.online]
        for node in self.rng.sample(online, int(len(self.nodes) * fraction)):
            node.online = False
        self._index_adversaries()

    # -- the simulated network --------------------------------------------------

    def _rtt(self) -> float:
        c = self.config
        return c.rtt_median * math.exp(self.rng.gauss(0.0, c.rtt_sigma))

    def _answer(self, target: _Node, request: Request) -> Reply | None:
        """What ``target`` answers an anonymous client, or None if the request goes unanswered."""
        if not target.online:
            return None
        if target.adversary:
            return self._adversary_answer(target, request)
        return target.protocol.handle(None, request, self.now).reply

    def _adversary_answer(self, node: _Node, request: Request) -> Reply | None:
        if isinstance(request, Store):
            if not self.config.targeted:  # an eclipse withholds; otherwise it serves stale copies
                node.kept.setdefault(request.location, request.record)
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
        record_key: bytes | None = None,
        stop_at_first_value: bool = True,
        value_quorum: int | None = None,
    ) -> tuple[LookupResult, float]:
        """Drive one anonymous lookup to the end on the event heap; its result and duration."""
        results, elapsed = self.run_lookups(
            origin,
            kind,
            [target],
            paths=paths,
            alpha=alpha,
            record_key=record_key,
            stop_at_first_value=stop_at_first_value,
            value_quorum=value_quorum,
        )
        return results[0], elapsed

    def run_lookups(
        self,
        origin: _Node,
        kind: LookupKind,
        targets: list[NodeId],
        *,
        paths: int,
        alpha: int,
        record_key: bytes | None = None,
        stop_at_first_value: bool = True,
        value_quorum: int | None = None,
    ) -> tuple[list[LookupResult], float]:
        """Lookups of ``targets`` side by side as one client operation, as ``DhtClient.get``
        runs a record's positions: each is cut a grace period (``ResponseTimes.grace``) after
        its first value, and once one has ended with a value the others get a grace period
        more. Their results and how long the operation took."""
        c = self.config
        mature_at = self.now - _PROBATION if c.probation else None
        lookups = [
            Lookup(
                kind=kind,
                target=target,
                own_id=None,
                seeds=origin.protocol.routing.closest(target, c.k, mature_at=mature_at),
                now=self.now,
                record_key=record_key,
                k=c.k,
                alpha=alpha,
                paths=paths,
                stop_at_first_value=stop_at_first_value,
                value_quorum=value_quorum,
            )
            for target in targets
        ]
        # (time, serial, lookup, answered, contact, reply): answered False is the soft
        # deadline passing.
        events: list[tuple[float, int, int, bool, Contact, Reply | None]] = []
        clock = 0.0
        serial = 0
        hedge = self.response_times if c.hedge else None
        never = float("inf")
        cut_at = [never] * len(lookups)
        while True:
            for i, lookup in enumerate(lookups):
                for contact, request in lookup.next_requests():
                    reply = self._answer(self.nodes[contact.node_id], request)
                    delay = c.rpc_timeout if reply is None else min(self._rtt(), c.rpc_timeout)
                    if reply is None or delay >= c.rpc_timeout:
                        reply = None
                    serial += 1
                    heapq.heappush(events, (clock + delay, serial, i, True, contact, reply))
                    if hedge is not None and delay > hedge.hedge_after():
                        serial += 1
                        stall = (clock + hedge.hedge_after(), serial, i, False, contact, None)
                        heapq.heappush(events, stall)
                    if reply is not None and hedge is not None:
                        hedge.add(delay)
            running = [i for i, lookup in enumerate(lookups) if not lookup.done]
            if not running or not events:
                break
            if c.value_grace and hedge is not None:
                grace = hedge.grace()
                for i in running:
                    if cut_at[i] == never and lookups[i].has_value:
                        cut_at[i] = clock + grace
                if any(lookup.done and lookup.has_value for lookup in lookups):
                    for i in running:
                        cut_at[i] = min(cut_at[i], clock + grace)
            deadline = min([c.operation_timeout, *(cut_at[i] for i in running)])
            if events[0][0] > deadline:
                clock = deadline  # cut: what they found is the answer
                for i in running:
                    if cut_at[i] <= clock or clock >= c.operation_timeout:
                        lookups[i].cut()
                continue
            clock, _, i, answered, contact, reply = heapq.heappop(events)
            lookup = lookups[i]
            if lookup.done:
                continue
            if not answered:
                lookup.on_stalled(contact)
            elif reply is None:
                lookup.on_timeout(contact)
            else:
                lookup.on_response(contact, reply)
        return [lookup.result() for lookup in lookups], clock

    # -- the experiment ------------------------------------------------------------

    def _honest_online(self) -> list[_Node]:
        return [n for n in self.nodes.values() if n.online and not n.adversary]

    def _publish(self, publisher: _Node, record: DhtRecord) -> None:
        c = self.config
        for p in positions(record.key, self.shared, c.replicas):
            result, _ = self.run_lookup(
                publisher,
                LookupKind.FIND_NODE,
                NodeId.from_bytes(p.location),
                paths=c.paths,
                alpha=c.alpha,
            )
            for contact in result.closest[: c.store_spread]:
                self._answer(self.nodes[contact.node_id], Store(location=p.location, record=record))

    def _versions(self, n: int) -> list[DhtRecord]:
        """Two versions of a real registration record for record number ``n``."""
        c = self.config
        identity = Identity(seed=random.Random(f"sim-record-{c.seed}-{n}").randbytes(32))  # noqa: S311
        period = TOR_TIME_PERIODS.number_at(self.now)
        rng = random.Random(f"sim-seal-{c.seed}-{n}")  # noqa: S311 - repeatable
        return [
            registration_record(
                identity,
                period,
                Registration(
                    contacts=(Reachable(onion=_ONION, port=5061),),
                    presence=Presence.AVAILABLE,
                    expires=int(self.now) + 3600,
                    sequence=seq,
                ),
                rng=rng.randbytes,
            )
            for seq in (1, 2)
        ]

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
        options = _Walk(
            paths=c.paths if paths is None else paths,
            alpha=c.alpha if alpha is None else alpha,
            stop_at_first_value=stop_at_first_value,
            value_quorum=value_quorum,
        )
        if c.targeted:
            return self._run_targeted(lookups, options)
        if not hasattr(self, "_published"):
            self._published = self._prepare()
        honest = self._honest_online()
        out = []
        for _ in range(lookups):
            out.append(
                self._get(self.rng.choice(honest), self.rng.choice(self._published), options)
            )
        return out

    def _get(self, origin: _Node, fresh: DhtRecord, options: _Walk) -> LookupStats:
        """One client get: every replica position of the current value, newest wins."""
        results, elapsed = self.run_lookups(
            origin,
            LookupKind.FIND_VALUE,
            [
                NodeId.from_bytes(p.location)
                for p in positions(fresh.key, self.shared, self.config.replicas)
            ],
            record_key=fresh.key,
            paths=options.paths,
            alpha=options.alpha,
            stop_at_first_value=options.stop_at_first_value,
            value_quorum=options.value_quorum,
        )
        found = [r.record for r in results if r.record is not None]
        newest = max(found, key=lambda r: r.seq, default=None)
        return LookupStats(
            success=newest == fresh,
            hops=max(r.hops for r in results),
            messages=sum(r.messages for r in results),
            timeouts=sum(r.timeouts for r in results),
            latency=elapsed,
            stalls=sum(r.stalls for r in results),
        )

    def _prepare(self) -> list[DhtRecord]:
        c = self.config
        self._go_offline(c.churn / 2)
        published = []
        for n in range(c.records):
            versions = self._versions(n)
            publisher = self.rng.choice(self._honest_online())
            for version in versions:
                self._publish(publisher, version)
            published.append(versions[-1])
        self._go_offline(c.churn - c.churn / 2)
        return published

    # -- the targeted eclipse -----------------------------------------------------

    def _run_targeted(self, lookups: int, options: _Walk) -> list[LookupStats]:
        c = self.config
        self._go_offline(c.churn / 2)
        out: list[LookupStats] = []
        for t in range(c.targets):
            versions = self._versions(10_000 + t)
            moved = self._move_fleet(versions[-1].key)
            publisher = self.rng.choice(self._honest_online())
            for version in versions:
                self._publish(publisher, version)
            honest = self._honest_online()
            for _ in range(lookups // c.targets):
                out.append(self._get(self.rng.choice(honest), versions[-1], options))
            self._move_back(moved)
        return out

    def _move_fleet(self, key: bytes) -> tuple[list[_Node], list[_Node], list[_Node]]:
        """Place adversary nodes nearest the target's positions; returns what to undo."""
        c = self.config
        locations = [
            int.from_bytes(p.location, "big") for p in positions(key, self.shared, c.replicas)
        ]
        fleet = [n for n in self.nodes.values() if n.adversary and n.online]
        placed: list[Contact] = []
        if c.shared_random:
            # Minted after the value was published: random ids, the nearest kept, all young.
            # (Keys are random strings: nothing checks the adversary's signatures, and
            # hashing is all minting costs here.)
            keep = min(len(fleet), 3 * c.k * len(locations))
            minted = (self.rng.randbytes(32) for _ in range(int(c.grind * len(fleet))))
            nearest = heapq.nsmallest(
                keep,
                minted,
                key=lambda pk: min(
                    int.from_bytes(hashlib.sha3_256(pk).digest(), "big") ^ loc for loc in locations
                ),
            )
            placed = [Contact.from_public_key(pk, 1) for pk in nearest]
            since = self.now
        else:
            # Positions known for ever: ids ground at leisure next to them, long mature.
            for loc in locations:
                placed += self._grind_near(loc, 3 * c.k, (1 << ID_BITS) // (16 * c.nodes))
            since = self.now - 10 * _PROBATION
        retired = self.rng.sample(fleet, min(len(fleet), len(placed)))
        for node in retired:
            node.online = False
        newcomers = []
        for contact in placed:
            node = self._new_node(contact)
            node.adversary = True
            self.nodes[contact.node_id] = node
            newcomers.append(node)
        # They contact the honest nodes around the positions and answer the dial back.
        honest = [n for n in self.nodes.values() if not n.adversary]
        touched: dict[NodeId, _Node] = {}
        for loc in locations:
            for node in heapq.nsmallest(
                4 * c.k, honest, key=lambda n: n.contact.node_id.value ^ loc
            ):
                touched[node.contact.node_id] = node
                for newcomer in newcomers:
                    ping = node.protocol.routing.seen(newcomer.contact, since)
                    if ping is not None:
                        alive = self.nodes[ping.node_id].online
                        node.protocol.routing.ping_result(ping, alive=alive)
        for newcomer in newcomers:
            self._seed_table(newcomer.protocol.routing)
        self._index_adversaries()
        return newcomers, retired, list(touched.values())

    def _grind_near(self, location: int, count: int, radius: int) -> list[Contact]:
        """``count`` contacts whose ids are within ``radius`` of ``location``, by trial.

        The keys are random 32-byte strings, not Ed25519 points: nothing in the
        simulator checks a signature of the adversary's, and hashing is
        what grinding costs (key generation would only make it slower).
        """
        found: list[Contact] = []
        while len(found) < count:
            public_key = self.rng.randbytes(32)
            node_id = int.from_bytes(hashlib.sha3_256(public_key).digest(), "big")
            if node_id ^ location < radius:
                found.append(Contact.from_public_key(public_key, 1))
        return found

    def _move_back(self, moved: tuple[list[_Node], list[_Node], list[_Node]]) -> None:
        newcomers, retired, touched = moved
        for newcomer in newcomers:
            del self.nodes[newcomer.contact.node_id]
            for node in touched:
                node.protocol.routing.remove(newcomer.contact.node_id)
        for node in retired:
            node.online = True
        self._index_adversaries()


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
        "median_stalls": metric([float(s.stalls) for s in stats]) if stats else 0.0,
        "median_latency_s": metric(latency) if latency else 0.0,
        "p95_latency_s": _percentile(latency, 0.95),
    }
