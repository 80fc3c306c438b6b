"""Registrar and Resolver against in-memory DHT nodes on the autojump clock.

The wall clock is the DHT tests' ``EPOCH + trio.current_time()``, with
one-hour time periods starting on the hour: EPOCH is 800 s into period P,
whose boundary is 2000 s later. The registrar re-registers ``refresh_before``
seconds before expiry and publishes P+1 ``next_period_lead`` before the
boundary; lookups succeed on both sides of it, an unregister leaves an
empty record, and an older record served after a newer one is refused.
"""

from __future__ import annotations

import random
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import pytest
import trio
import trio.testing

from anonsip.dht import DhtNode, DhtRecord, sign_record
from anonsip.dht import record_key as dht_key
from anonsip.identity import BlindedKey, Identity, TimePeriods, blind_public_key
from anonsip.node._registrar import Registrar, RegistrationState
from anonsip.node._resolver import NotRegistered, Resolver
from anonsip.registration import Contact, Presence, Registration, seal
from anonsip.registration._record import onion_address
from tests.unit.dht.test_node import EPOCH, clock, network

PERIODS = TimePeriods(length_minutes=60, rotation_offset_minutes=0)
P = PERIODS.number_at(EPOCH)
BOUNDARY = PERIODS.end_of(P) - EPOCH  # trio time of the P -> P+1 boundary
TTL = 1800.0
REFRESH_BEFORE = 300.0
LEAD = 600.0
ONION = Contact(onion=onion_address(bytes(range(32))), port=5061)


def _rng(seed: int) -> Callable[[int], bytes]:
    r = random.Random(seed)
    return r.randbytes


ALICE = Identity.generate("alice", rng=_rng(1))


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


@asynccontextmanager
async def registered(
    size: int = 8,
) -> AsyncIterator[tuple[list[DhtNode], Registrar, StateLog, trio.CancelScope]]:
    """A DHT of ``size`` nodes and alice's registrar running on node 0."""
    async with network(size) as (_net, nodes), trio.open_nursery() as nursery:
        log = StateLog()
        registrar = Registrar(
            ALICE,
            nodes[0],
            rng=_rng(2),
            clock=clock,
            periods=PERIODS,
            ttl=TTL,
            refresh_before=REFRESH_BEFORE,
            next_period_lead=LEAD,
            on_change=log,
        )
        registrar.set_contacts((ONION,))
        scope = trio.CancelScope()

        async def run() -> None:
            with scope:
                await registrar.run()

        nursery.start_soon(run)
        await log.wait_stored(1)
        yield nodes, registrar, log, scope
        nursery.cancel_scope.cancel()


def resolver(node: DhtNode, skew: float = 0.0) -> Resolver:
    return Resolver(node, clock=lambda: clock() + skew, periods=PERIODS)


async def test_registers_and_is_found_by_address_alone(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with registered() as (nodes, registrar, log, _):
        (when, state), *_ = log.stored()
        assert state.period == P
        assert state.stored_at >= 6
        assert state.expires == EPOCH + when + TTL
        assert registrar.state == state
        period, found = await resolver(nodes[5]).lookup(ALICE.public_key)
        assert period == P
        assert found.contacts == (ONION,)
        assert found.presence is Presence.AVAILABLE
        assert found.sequence == state.seq


async def test_re_registers_before_expiry(autojump_clock: trio.testing.MockClock) -> None:
    async with registered() as (nodes, _registrar, log, _):
        await log.wait_stored(2)
        (_, first), (t2, second) = log.stored()[:2]
        # Refreshed refresh_before ahead of expiry, never after it.
        assert EPOCH + t2 == pytest.approx(first.expires - REFRESH_BEFORE, abs=1.5)
        assert second.seq > first.seq
        assert second.expires > first.expires
        _, found = await resolver(nodes[3]).lookup(ALICE.public_key)
        assert found.sequence == second.seq


async def test_publishes_the_next_period_before_the_boundary(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with registered() as (nodes, _registrar, _log, _):
        await trio.sleep_until(BOUNDARY - LEAD + 60)
        # P+1's record is in the DHT before P ends...
        next_key = dht_key(blind_public_key(ALICE.public_key, P + 1, PERIODS))
        record = await nodes[6].get(next_key)
        assert record is not None
        # ...so a node whose clock already runs past the boundary finds it.
        period, found = await resolver(nodes[6], skew=LEAD).lookup(ALICE.public_key)
        assert period == P + 1
        assert found.contacts == (ONION,)
        assert trio.current_time() < BOUNDARY


async def test_lookups_succeed_across_the_period_boundary(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with registered() as (nodes, _registrar, log, _):
        seen = []
        for at in (BOUNDARY - 5, BOUNDARY + 5, BOUNDARY + 1200, BOUNDARY + 3100):
            await trio.sleep_until(at)
            period, found = await resolver(nodes[7]).lookup(ALICE.public_key)
            assert found.contacts == (ONION,)
            seen.append(period)
        assert seen[0] == P
        assert seen[2:] == [P + 1, P + 1]
        # The registration moved to P+1 just after the boundary, and P+2's is out early.
        assert next(s.period for t, s in log.stored() if t > BOUNDARY) == P + 1
        after_next = dht_key(blind_public_key(ALICE.public_key, P + 2, PERIODS))
        assert await nodes[2].get(after_next) is not None


async def test_unregister_publishes_an_empty_record(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with registered() as (nodes, registrar, _log, scope):
        before = registrar.state.seq
        scope.cancel()
        await registrar.unregister()
        assert registrar.state.state == "unregistered"
        _, found = await resolver(nodes[4]).lookup(ALICE.public_key)
        assert found.contacts == ()
        assert found.presence is Presence.OFFLINE
        assert found.sequence > before


def _record(seq: int, contacts: tuple[Contact, ...]) -> DhtRecord:
    """Alice's sealed and signed record for P, as the registrar makes it."""
    expires = int(EPOCH + TTL)
    registration = Registration(
        contacts=contacts, presence=Presence.AVAILABLE, expires=expires, sequence=seq
    )
    value = seal(ALICE, P, registration, rng=_rng(seq), periods=PERIODS)
    blinded = BlindedKey.for_identity(ALICE, P, PERIODS)
    return sign_record(
        blinded.sign, public_key=blinded.public_key, seq=seq, expiry=expires, payload=value
    )


async def test_an_older_record_after_a_newer_one_is_refused(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with network(8) as (net, nodes):
        asker, newer_holders, older_holders = nodes[7], nodes[:3], nodes[3:6]
        old, new = _record(100, (ONION,)), _record(200, (ONION,))
        for node in older_holders:
            node.store.put(old, peer=node.contact.node_id, now=clock())
        for node in newer_holders:
            node.store.put(new, peer=node.contact.node_id, now=clock())
        lookup = resolver(asker)
        _, found = await lookup.lookup(ALICE.public_key)
        assert found.sequence == 200
        # The nodes with the new record disappear; only the replayed old one is left.
        for node in newer_holders:
            net.vanished.add(node.contact.node_id)
        for conn in list(asker._connections.values()):
            await conn.aclose()
        assert await asker.get(old.key) == old
        with pytest.raises(NotRegistered, match="older"):
            await lookup.lookup(ALICE.public_key)
        # A resolver that never saw the new one takes the old one: the check is per resolver.
        for conn in list(nodes[6]._connections.values()):
            await conn.aclose()
        _, found = await resolver(nodes[6]).lookup(ALICE.public_key)
        assert found.sequence == 100
