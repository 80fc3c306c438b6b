"""Registrar and Resolver against in-memory DHT nodes, through the anonymous client, on the
autojump clock.

The wall clock is the DHT tests' ``EPOCH + trio.current_time()``, with
one-hour time periods starting on the hour: EPOCH is 800 s into period P,
whose boundary is 2000 s later. The registrar registers P at once,
re-registers at a random time before expiry and publishes P+1 at a random
time in the last ``next_period_lead`` before the boundary; lookups succeed
on both sides of it, an unregister leaves empty records for both periods,
and an older record served after a newer one is refused. The record
carries, sealed, the proof-of-work effort asked of strangers; a rise is
published again at most once per effort window, a fall waits for the
regular republication. The last tests
let storing and looked-up nodes record everything they see and show they
cannot link a pseudonym's records across periods, nor a lookup to the
node that stores the looker's own record.
"""

from __future__ import annotations

import random
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass

import pytest
import trio
import trio.testing

from anonsip.dht import (
    DhtNode,
    DhtRecord,
    NodeId,
    Proof,
    SharedRandom,
    Store,
    positions,
    registration_record,
)
from anonsip.dht import record_key as dht_key
from anonsip.identity import Identity, TimePeriods, blind_public_key
from anonsip.node._registrar import Registrar, RegistrationState, sequence_number
from anonsip.node._resolver import NotRegistered, Resolver
from anonsip.registration import Contact, Presence, Registration, open_record
from anonsip.registration._record import onion_address
from tests.unit.dht.helpers import SHARED
from tests.unit.dht.memnet import EPOCH, MemoryNet, Seen, clock, network

PERIODS = TimePeriods(length_minutes=60, rotation_offset_minutes=0)
P = PERIODS.number_at(EPOCH)
BOUNDARY = PERIODS.end_of(P) - EPOCH  # trio time of the P -> P+1 boundary
TTL = 1800.0
REFRESH_BEFORE = 300.0
LEAD = 600.0
WINDOW = 120.0  # the admission gate's effort window
ONION = Contact(onion=onion_address(bytes(range(32))), port=5061)


def _rng(seed: int) -> Callable[[int], bytes]:
    r = random.Random(seed)
    return r.randbytes


ALICE = Identity.generate("alice", rng=_rng(1))
BOB = Identity.generate("bob", rng=_rng(3))


def test_the_clock_is_where_the_docstring_says() -> None:
    assert PERIODS.start_of(P) == EPOCH - 800
    assert BOUNDARY == 2800


class StateLog:
    """The registrar's state changes, with the trio time each happened."""

    def __init__(self) -> None:
        self.seen: list[tuple[float, RegistrationState]] = []
        self._changed = trio.Event()

    def __call__(self, state: RegistrationState) -> None:
        self.seen.append((trio.current_time(), state))
        self._changed.set()
        self._changed = trio.Event()

    def stored(self) -> list[tuple[float, RegistrationState]]:
        return [(t, s) for t, s in self.seen if s.state == "registered"]

    async def wait_stored(self, count: int, timeout: float = 4 * 3600) -> None:
        with trio.fail_after(timeout):
            while len(self.stored()) < count:
                await self._changed.wait()


@dataclass
class Put:
    """One record the registrar stored, and when."""

    at: float
    record: DhtRecord
    stored: int


class Recorder:
    """The registrar's DHT client, noting each record put (the puts' times are the test's)."""

    def __init__(self, inner: object) -> None:
        self.inner = inner
        self.puts: list[Put] = []

    async def put(self, record: DhtRecord) -> int:
        stored: int = await self.inner.put(record)  # type: ignore[attr-defined]
        self.puts.append(Put(at=trio.current_time(), record=record, stored=stored))
        return stored

    def of_period(self, period: int, identity: Identity = ALICE) -> list[Put]:
        key = dht_key(blind_public_key(identity.public_key, period, PERIODS))
        return [p for p in self.puts if p.record.key == key]


def make_registrar(
    net: MemoryNet,
    node: DhtNode,
    identity: Identity,
    seed: int,
    log: StateLog | None = None,
    effort: Callable[[], int] = lambda: 0,
) -> tuple[Registrar, Recorder]:
    recorder = Recorder(net.client(node))
    registrar = Registrar(
        identity,
        recorder,
        rng=_rng(seed),
        clock=clock,
        periods=PERIODS,
        ttl=TTL,
        refresh_before=REFRESH_BEFORE,
        next_period_lead=LEAD,
        reposition_within=60.0,
        on_change=log,
        effort=effort,
        effort_window=WINDOW,
    )
    registrar.set_contacts((ONION,))
    return registrar, recorder


@asynccontextmanager
async def registered(
    size: int = 8,
) -> AsyncIterator[
    tuple[MemoryNet, list[DhtNode], Registrar, StateLog, Recorder, trio.CancelScope]
]:
    """A DHT of ``size`` nodes and alice's registrar running beside node 0."""
    async with network(size) as (net, nodes), trio.open_nursery() as nursery:
        log = StateLog()
        registrar, recorder = make_registrar(net, nodes[0], ALICE, 2, log)
        scope = trio.CancelScope()

        async def run() -> None:
            with scope:
                await registrar.run()

        nursery.start_soon(run)
        await log.wait_stored(1)
        yield net, nodes, registrar, log, recorder, scope
        nursery.cancel_scope.cancel()


def resolver(net: MemoryNet, node: DhtNode, skew: float = 0.0) -> Resolver:
    return Resolver(net.client(node), clock=lambda: clock() + skew, periods=PERIODS)


async def test_registers_and_is_found_by_address_alone(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with registered() as (net, nodes, registrar, log, _, _):
        (when, state), *_ = log.stored()
        assert state.period == P
        assert state.stored_at >= 6
        # A random share (75-100 %) of the ttl.
        assert EPOCH + when + 0.75 * TTL - 1 <= state.expires <= EPOCH + when + TTL
        assert registrar.state == state
        period, found = await resolver(net, nodes[5]).lookup(ALICE.public_key)
        assert period == P
        assert found.contacts == (ONION,)
        assert found.presence is Presence.AVAILABLE
        assert found.sequence == state.seq


async def test_re_registers_at_a_random_time_before_expiry(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with registered() as (net, nodes, _registrar, log, _, _):
        await log.wait_stored(2)
        (_, first), (t2, second) = log.stored()[:2]
        # Refreshed refresh_before to twice that ahead of expiry, never after it.
        assert first.expires - 2 * REFRESH_BEFORE - 1 <= EPOCH + t2
        assert EPOCH + t2 <= first.expires - REFRESH_BEFORE + 1
        assert second.seq > first.seq
        assert second.expires != first.expires
        _, found = await resolver(net, nodes[3]).lookup(ALICE.public_key)
        assert found.sequence == second.seq


async def test_publishes_the_next_period_on_its_own_before_the_boundary(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with registered() as (net, nodes, _registrar, _log, recorder, _):
        await trio.sleep_until(BOUNDARY - 1)
        (nxt, *_) = recorder.of_period(P + 1)
        # At a random time in the lead window, not together with a refresh of P.
        assert BOUNDARY - LEAD <= nxt.at <= BOUNDARY - LEAD / 4
        assert all(abs(p.at - nxt.at) > 1 for p in recorder.of_period(P))
        # Its own expiry and its own sequence numbers, unrelated to P's.
        current = recorder.of_period(P)[-1].record
        assert nxt.record.expiry != current.expiry
        assert abs(nxt.record.seq - current.seq) > 2**40
        # A node whose clock already runs past the boundary finds it.
        period, found = await resolver(net, nodes[6], skew=LEAD).lookup(ALICE.public_key)
        assert period == P + 1
        assert found.contacts == (ONION,)
        assert trio.current_time() < BOUNDARY


async def test_lookups_succeed_across_the_period_boundary(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with registered() as (net, nodes, _registrar, log, recorder, _):
        seen = []
        for at in (BOUNDARY - 5, BOUNDARY + 5, BOUNDARY + 1200, BOUNDARY + 3100):
            await trio.sleep_until(at)
            period, found = await resolver(net, nodes[7]).lookup(ALICE.public_key)
            assert found.contacts == (ONION,)
            seen.append(period)
        assert seen[0] == P
        assert seen[2:] == [P + 1, P + 1]
        # The registration shows P+1 after the boundary, and P+2's is out early.
        assert next(s.period for t, s in log.stored() if t > BOUNDARY) == P + 1
        await trio.sleep_until(BOUNDARY + 3600 - LEAD / 4 + 1)
        assert recorder.of_period(P + 2)


async def test_unregister_empties_the_records_of_both_periods(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with registered() as (net, nodes, registrar, _log, recorder, scope):
        await trio.sleep_until(BOUNDARY - LEAD / 8)  # P+1 is out
        before = {p: recorder.of_period(p)[-1].record.seq for p in (P, P + 1)}
        scope.cancel()
        await registrar.unregister()
        assert registrar.state.state == "unregistered"
        for period, skew in ((P, 0.0), (P + 1, LEAD)):
            got, found = await resolver(net, nodes[4], skew=skew).lookup(ALICE.public_key)
            assert got == period
            assert found.contacts == ()
            assert found.presence is Presence.OFFLINE
            assert found.sequence > before[period]


async def test_sequence_numbers_grow_across_restarts_and_hide_the_clock() -> None:
    now = EPOCH
    seqs = [sequence_number(ALICE, P, now + dt, PERIODS) for dt in (0.0, 0.01, 10.0, 1000.0)]
    assert seqs == sorted(seqs)
    assert len(set(seqs)) == len(seqs)
    # Another period (or identity) starts from an unrelated offset, 62 random-looking bits.
    offsets = {
        sequence_number(who, period, now, PERIODS)
        - int((now - PERIODS.start_of(period - 1)) * 1000)
        for who in (ALICE, BOB)
        for period in (P, P + 1, P + 2)
    }
    assert len(offsets) == 6
    assert all(0 <= o < 2**62 for o in offsets)
    assert min(abs(a - b) for a in offsets for b in offsets if a != b) > 2**40
    # The next period's record, published before it starts, still counts up.
    early = sequence_number(ALICE, P + 1, PERIODS.start_of(P + 1) - LEAD, PERIODS)
    assert early < sequence_number(ALICE, P + 1, PERIODS.start_of(P + 1), PERIODS)


async def test_a_restarted_registrar_supersedes_its_records(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with network(8) as (net, nodes):
        first, _ = make_registrar(net, nodes[0], ALICE, 5)
        state = await first.publish(P, (ONION,))
        await trio.sleep(30)
        # A new process (nothing stored) publishes a newer record all the same.
        second, _ = make_registrar(net, nodes[0], ALICE, 6)
        newer = await second.publish(P, ())
        assert newer.seq > state.seq
        _, found = await resolver(net, nodes[5]).lookup(ALICE.public_key)
        assert found.contacts == ()


async def test_a_node_that_joins_again_stores_its_records_where_lookups_go(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """A node whose join failed stores its record with itself alone, where the network's
    lookups do not go; once it has joined, ``rejoined`` stores it again at once (not at
    the next refresh), where they do."""
    async with network(6) as (net, nodes), trio.open_nursery() as nursery:
        lonely = await net.start(50)  # its join failed: it knows nobody
        log = StateLog()
        recorder = Recorder(net.client(lonely))
        registrar = Registrar(
            ALICE,
            recorder,
            rng=_rng(4),
            clock=clock,
            periods=PERIODS,
            ttl=TTL,
            refresh_before=REFRESH_BEFORE,
            on_change=log,
        )
        registrar.set_contacts((ONION,))
        nursery.start_soon(registrar.run)
        await log.wait_stored(1)
        [alone] = recorder.puts
        assert alone.stored >= 1  # our own node took it
        with pytest.raises(NotRegistered):
            await resolver(net, nodes[3]).lookup(ALICE.public_key)

        assert await lonely.bootstrap([nodes[0].contact]) > 0
        joined_at = trio.current_time()
        registrar.rejoined()
        await log.wait_stored(2, timeout=10.0)  # the refresh is half an hour away
        [_, again] = recorder.puts
        assert again.at - joined_at < 10.0
        assert again.stored > alone.stored
        period, found = await resolver(net, nodes[3]).lookup(ALICE.public_key)
        assert (period, found.contacts, found.sequence) == (P, (ONION,), registrar.state.seq)

        # The next period's first record keeps its own time before the boundary (stored
        # now, it could not live into its period: sealing it would fail).
        await trio.sleep(120.0)
        assert recorder.of_period(P + 1) == []
        await trio.sleep_until(BOUNDARY)
        [first_next] = recorder.of_period(P + 1)
        assert BOUNDARY - 1800.0 <= first_next.at < BOUNDARY
        nursery.cancel_scope.cancel()


async def test_a_new_shared_random_value_moves_the_records(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with network(8) as (net, nodes), trio.open_nursery() as nursery:
        changes = [trio.Event()]

        async def wait_changed() -> None:
            await changes[-1].wait()

        recorder = Recorder(net.client(nodes[0]))
        registrar = Registrar(
            ALICE,
            recorder,
            rng=_rng(9),
            clock=clock,
            periods=PERIODS,
            ttl=TTL,
            reposition_within=60.0,
            shared_random_changed=wait_changed,
        )
        registrar.set_contacts((ONION,))
        nursery.start_soon(registrar.run)
        await trio.sleep(10)
        assert len(recorder.puts) == 1
        net.shared = SharedRandom(current=bytes(32), previous=SHARED.current)
        changes.append(trio.Event())
        changes[-2].set()
        await trio.sleep(61)
        assert len(recorder.puts) == 2
        assert 10 <= recorder.puts[1].at <= 71
        # Found where lookers with the new value look first.
        key = recorder.puts[1].record.key
        where = positions(key, SharedRandom.single(bytes(32)))[0].location
        assert any(n.store.get(where, clock()) for n in nodes)
        nursery.cancel_scope.cancel()


# -- the proof-of-work effort a registration advertises (proposal 327) ----------------------


def _effort_of(put: Put, period: int = P) -> int:
    """The effort sealed in a stored record, as someone who knows the address reads it."""
    payload = put.record.payload
    return open_record(ALICE.public_key, period, payload, clock(), periods=PERIODS).effort


async def test_the_record_advertises_the_effort_asked_of_strangers(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with network(8) as (net, nodes), trio.open_nursery() as nursery:
        log = StateLog()
        registrar, recorder = make_registrar(net, nodes[0], ALICE, 2, log, effort=lambda: 20)
        nursery.start_soon(registrar.run)
        await log.wait_stored(1)
        assert registrar.state.effort == 20
        assert _effort_of(recorder.puts[0]) == 20
        _, found = await resolver(net, nodes[5]).lookup(ALICE.public_key)
        assert found.effort == 20
        # The value a storing node keeps does not carry it in the clear.
        assert bytes([0xA1, ord("e"), 20]) not in recorder.puts[0].record.payload
        nursery.cancel_scope.cancel()


async def test_a_rising_effort_is_published_again_at_most_once_a_window(
    autojump_clock: trio.testing.MockClock,
) -> None:
    asked = [16]
    async with network(8) as (net, nodes), trio.open_nursery() as nursery:
        log = StateLog()
        registrar, recorder = make_registrar(net, nodes[0], ALICE, 2, log, effort=lambda: asked[-1])
        nursery.start_soon(registrar.run)
        await log.wait_stored(1)
        first = recorder.puts[0].at
        assert _effort_of(recorder.puts[0]) == 16
        # A flood: the effort rises, and the messaging service says so at every request.
        for second in range(1, 300):
            await trio.sleep_until(first + second)
            if second in (10, 50, 100, 150):
                asked.append(asked[-1] + 2)
            registrar.effort_changed()
        puts = recorder.of_period(P)
        # Not at once (the first record is younger than a window), then once a window.
        assert [round(p.at - first) for p in puts] == [0, 120, 240]
        # Each carries the effort asked when it went out: strangers learn the newest.
        assert [_effort_of(p) for p in puts] == [16, 22, 24]
        _, found = await resolver(net, nodes[5]).lookup(ALICE.public_key)
        assert found.effort == 24
        # Calm: the effort falls back; no extra publication, the next regular one says so.
        asked.append(16)
        registrar.effort_changed()
        await trio.sleep(60)
        assert len(recorder.of_period(P)) == 3
        await log.wait_stored(4)
        (_, third), (_, fourth) = log.stored()[2:4]
        assert fourth.seq == recorder.of_period(P)[3].record.seq
        assert recorder.of_period(P)[3].at >= third.expires - EPOCH - 2 * REFRESH_BEFORE - 1
        assert _effort_of(recorder.of_period(P)[3]) == 16
        nursery.cancel_scope.cancel()


async def test_an_effort_that_does_not_rise_publishes_nothing(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with network(8) as (net, nodes), trio.open_nursery() as nursery:
        log = StateLog()
        registrar, recorder = make_registrar(net, nodes[0], ALICE, 2, log, effort=lambda: 20)
        nursery.start_soon(registrar.run)
        await log.wait_stored(1)
        for _ in range(600):
            await trio.sleep(1)
            registrar.effort_changed()
        assert len(recorder.puts) == 1
        nursery.cancel_scope.cancel()


def _record(seq: int, contacts: tuple[Contact, ...]) -> DhtRecord:
    """Alice's sealed and signed record for P, as the registrar makes it."""
    expires = int(EPOCH + TTL)
    registration = Registration(
        contacts=contacts, presence=Presence.AVAILABLE, expires=expires, sequence=seq
    )
    return registration_record(ALICE, P, registration, rng=_rng(seq), periods=PERIODS)


async def test_an_older_record_after_a_newer_one_is_refused(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with network(8) as (net, nodes):
        asker, newer_holders, older_holders = nodes[7], nodes[:3], nodes[3:6]
        old, new = _record(100, (ONION,)), _record(200, (ONION,))
        for rec, holders in ((old, older_holders), (new, newer_holders)):
            for node in holders:
                for p in positions(rec.key, SHARED):
                    node.store.put(p.location, rec, now=clock(), shared=SHARED)
        lookup = resolver(net, asker)
        _, found = await lookup.lookup(ALICE.public_key)
        assert found.sequence == 200
        # The nodes with the new record disappear; only the replayed old one is left.
        for node in newer_holders:
            net.vanished.add(node.contact.node_id)
        assert await net.client(asker).get(old.key) == old
        with pytest.raises(NotRegistered, match="older"):
            await lookup.lookup(ALICE.public_key)
        # A resolver that never saw the new one takes the old one: the check is per resolver.
        _, found = await resolver(net, nodes[6]).lookup(ALICE.public_key)
        assert found.sequence == 100


# -- what storing and looked-up nodes can learn -------------------------------------------


@dataclass(frozen=True)
class Observed:
    """A STORE as the node that received it saw it: all a storing node has."""

    node: NodeId
    stream: int
    opened_at: float
    proofs: tuple[bytes, ...]  # node keys proven on that stream (none if anonymous)
    record: DhtRecord


def stores_seen(net: MemoryNet) -> list[Observed]:
    out = []
    for i, seen in enumerate(net.seen):
        messages = seen.messages()
        proofs = tuple(m.public_key for m in messages if isinstance(m, Proof))
        for m in messages:
            if isinstance(m, Store):
                out.append(Observed(seen.node, i, seen.opened_at, proofs, m.record))
    return out


def linked(a: Observed, b: Observed) -> str:
    """Every clue a storing node could use to say two records come from one user."""
    if a.stream == b.stream:
        return "same stream"
    if set(a.proofs) & set(b.proofs):
        return "same node key"
    if abs(a.record.seq - b.record.seq) < 10**9:  # within ~12 days of milliseconds
        return "close sequence numbers"
    if a.record.expiry == b.record.expiry:
        return "same expiry"
    if abs(a.opened_at - b.opened_at) < 1.0:
        return "stored together"
    return ""


def of(observed: list[Observed], identity: Identity, period: int) -> list[Observed]:
    key = dht_key(blind_public_key(identity.public_key, period, PERIODS))
    return [o for o in observed if o.record.key == key]


async def test_storing_nodes_cannot_link_a_pseudonyms_records_across_periods(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with network(10) as (net, nodes), trio.open_nursery() as nursery:
        net.seen.clear()
        for node, who, seed in ((nodes[0], ALICE, 11), (nodes[1], BOB, 12)):
            registrar, _ = make_registrar(net, node, who, seed)
            nursery.start_soon(registrar.run)
        await trio.sleep_until(BOUNDARY + 60)
        observed = stores_seen(net)
        for who in (ALICE, BOB):
            assert of(observed, who, P)
            assert of(observed, who, P + 1)
        # No STORE of anyone's registration carried a node key.
        assert all(not o.proofs for o in observed)
        # Between a pseudonym's own two periods there is no clue at all...
        for who in (ALICE, BOB):
            for a in of(observed, who, P):
                for b in of(observed, who, P + 1):
                    assert linked(a, b) == "", (who, linked(a, b))
        # ...just as between two different pseudonyms' records.
        for a in of(observed, ALICE, P):
            for b in of(observed, BOB, P + 1):
                assert linked(a, b) == ""
        nursery.cancel_scope.cancel()


async def test_the_clues_would_link_records_stored_the_old_way(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """The control for the test above: records stored through the long-term node with a
    millisecond-clock sequence number (the design before) are linked by the same clues."""
    async with network(10) as (net, nodes):
        seq = int(clock() * 1000)
        for period, add in ((P, 0), (P + 1, 1)):
            registration = Registration(
                contacts=(ONION,),
                presence=Presence.AVAILABLE,
                expires=PERIODS.end_of(P) + 60,
                sequence=seq + add,
            )
            rec = registration_record(ALICE, period, registration, rng=_rng(7), periods=PERIODS)
            for p in positions(rec.key, SHARED):
                await nodes[0]._replicate(p.location, rec)  # as the node, proving its key
        observed = stores_seen(net)
        pairs = [(a, b) for a in of(observed, ALICE, P) for b in of(observed, ALICE, P + 1)]
        assert pairs
        assert all(linked(a, b) for a, b in pairs)


async def test_a_lookup_cannot_be_tied_to_the_node_storing_the_lookers_record(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with network(10) as (net, nodes), trio.open_nursery() as nursery:
        alice_node, bob_node = nodes[0], nodes[1]
        net.seen.clear()
        for node, who, seed in ((alice_node, ALICE, 21), (bob_node, BOB, 22)):
            registrar, _ = make_registrar(net, node, who, seed)
            nursery.start_soon(registrar.run)
        await trio.sleep(120)
        stored_until = len(net.seen)
        first_isolation = len(net.isolations)
        _, found = await resolver(net, alice_node).lookup(BOB.public_key)
        assert found.contacts == (ONION,)
        lookup_streams = net.seen[stored_until:]
        store_streams = [s for s in net.seen[:stored_until] if _stores_of(s, ALICE)]
        assert lookup_streams
        assert store_streams
        # What the looked-up nodes and alice's storing nodes saw, pooled: alice's node key,
        # id and onion address appear nowhere, and every stream opened anonymously.
        own = alice_node.contact
        for seen in [*lookup_streams, *store_streams]:
            data = bytes(seen.received)
            assert own.public_key not in data
            assert own.node_id.to_bytes() not in data
            assert own.onion_address.encode() not in data
            assert not any(isinstance(m, Proof) for m in seen.messages())
        # The lookup went out on circuits of its own (Tor isolation): no token of a store.
        lookup_tokens = {t.split("-")[3] for t in net.isolations[first_isolation:]}
        store_tokens = {t.split("-")[3] for t in net.isolations[:first_isolation]}
        assert lookup_tokens
        assert not lookup_tokens & store_tokens
        nursery.cancel_scope.cancel()


def _stores_of(seen: Seen, identity: Identity) -> bool:
    keys = {dht_key(blind_public_key(identity.public_key, p, PERIODS)) for p in (P, P + 1)}
    return any(isinstance(m, Store) and m.record.key in keys for m in seen.messages())
