"""Mailboxes in the DHT, end to end on in-memory nodes: anonymous deposit, collect and delete;
deposits outliving their sender and their holders; floods, replays and forged deletions."""

from __future__ import annotations

import dataclasses

import pytest
import trio
import trio.testing

from anonsip._errors import LocalError
from anonsip.dht import (
    Anonymous,
    Collect,
    Delete,
    DepositStore,
    DhtConfig,
    NodeId,
    Proof,
    SharedRandom,
    StoreDeposit,
)
from anonsip.mailbox import Deposit, dht_key

from .helpers import SHARED, deletion, deposit, deposit_location, mailbox
from .memnet import EPOCH, clock, deposit_holders, network

DAY = int(EPOCH) + 86400


def ids(deposits: list[Deposit]) -> list[bytes]:
    return sorted(d.deposit_id for d in deposits)


async def test_deposit_collect_and_delete_anonymously(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with network(14) as (net, nodes):
        net.seen.clear()
        letters = [deposit(1, i, expiry=DAY) for i in range(3)]
        depositor = net.client(nodes[3])
        for d in letters:
            assert await depositor.deposit(d) >= 12  # two positions, on most of 8 nodes each
        key = dht_key(mailbox(1))
        collector = net.client(nodes[11])
        assert ids(await collector.collect(key)) == ids(letters)
        assert await net.client(nodes[5]).collect(dht_key(mailbox(2))) == []
        # Only the owner's mailbox key signs a deletion; a node deletes what it names.
        gone = deletion(1, tuple(letters[:2]), int(clock()))
        assert await collector.delete(gone) >= 12
        assert ids(await net.client(nodes[7]).collect(key)) == ids(letters[2:])
        # Every stream of every operation was anonymous (so no table could learn of it).
        assert net.seen
        for seen in net.seen:
            messages = seen.messages()
            assert messages[0] == Anonymous()
            assert not any(isinstance(m, Proof) for m in messages)
        mailbox_requests = [
            m
            for seen in net.seen
            for m in seen.messages()
            if isinstance(m, StoreDeposit | Collect | Delete)
        ]
        assert {type(m) for m in mailbox_requests} == {StoreDeposit, Collect, Delete}


async def test_operations_use_isolation_tokens_of_their_own(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with network(10) as (net, nodes):
        client = net.client(nodes[2])
        d = deposit(1, 0, expiry=DAY)
        tokens = []
        for operation in (
            client.deposit(d),
            client.collect(d.key),
            client.delete(deletion(1, (d,), int(clock()))),
        ):
            start = len(net.isolations)
            await operation
            tokens.append({t.split("-")[3] for t in net.isolations[start:]})
        assert all(len(t) == 1 for t in tokens)  # one token per operation...
        assert len(set().union(*tokens)) == 3  # ...never shared between two


async def test_a_deposit_outlives_its_sender_and_every_node_that_first_held_it(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with network(40) as (net, nodes):
        d = deposit(1, 0, expiry=DAY)
        sender = nodes[4]
        assert await net.client(sender).deposit(d) >= 12
        wheres = [deposit_location(d, r) for r in (0, 1)]
        first = [deposit_holders(nodes, where) for where in wheres]
        everyone_first = {n.contact.node_id: n for held in first for n in held}
        # The sender goes offline, and a third of each position's holders with it.
        await net.leave(sender)
        for held in first:
            for node in [n for n in held if n is not sender][: len(held) // 3]:
                if node.contact.node_id in net.nodes:
                    await net.leave(node)
        # An interval later the holders left have republished it to the nodes now closest.
        await trio.sleep(DhtConfig().replicate_interval + 2 * 60)
        live = list(net.nodes.values())
        newcomers: set[NodeId] = set()
        for where in wheres:
            closest = sorted(live, key=lambda n: n.contact.node_id.value ^ int.from_bytes(where))
            held = deposit_holders(closest[:8], where)
            assert len(held) >= 6, len(held)  # (dead contacts may still count as closer)
            newcomers |= {n.contact.node_id for n in held} - set(everyone_first)
        assert newcomers  # nodes that never saw the sender's deposit hold it now
        # Now every node that held it at first leaves too: the new holders still have it.
        for node in everyone_first.values():
            if node.contact.node_id in net.nodes:
                await net.leave(node)
        reader = next(iter(net.nodes.values()))
        assert ids(await net.client(reader).collect(d.key)) == [d.deposit_id]


async def test_without_republishing_the_same_departures_lose_it(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """The control of the test above: holders that never republish lose the deposit."""
    async with network(40) as (net, nodes):
        for node in nodes:
            node.config = dataclasses.replace(node.config, replicate_interval=1e9)
        d = deposit(1, 0, expiry=DAY)
        assert await net.client(nodes[4]).deposit(d) >= 12
        await trio.sleep(DhtConfig().replicate_interval + 2 * 60)
        first = {
            n.contact.node_id: n
            for r in (0, 1)
            for n in deposit_holders(nodes, deposit_location(d, r))
        }
        for node in first.values():
            await net.leave(node)
        reader = next(iter(net.nodes.values()))
        assert await net.client(reader).collect(d.key) == []


async def test_deposits_follow_a_new_shared_random_value_on_their_own(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with network(14) as (net, nodes):
        d = deposit(1, 0, expiry=DAY)
        assert await net.client(nodes[3]).deposit(d) >= 12
        new = bytes(range(1, 33))
        net.shared = SharedRandom(current=new, previous=SHARED.current)
        await trio.sleep(2 * 60)  # a maintenance round or two: the holders move it
        moved = SharedRandom.single(new)
        assert deposit_holders(nodes, deposit_location(d, 0, moved))
        assert deposit_holders(nodes, deposit_location(d, 1, moved))
        # One value later the first placement is out of use and dropped; the deposit is not.
        net.shared = SharedRandom(current=bytes(range(2, 34)), previous=new)
        await trio.sleep(2 * 60)
        assert not deposit_holders(nodes, deposit_location(d, 0))
        assert ids(await net.client(nodes[9]).collect(d.key)) == [d.deposit_id]


async def test_a_flooded_mailbox_takes_a_sender_who_pays_the_floor(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with network(12, deposits=lambda: DepositStore(max_per_mailbox=4)) as (net, nodes):
        flood = [deposit(1, i, expiry=DAY, difficulty=14) for i in range(100, 104)]
        attacker = net.client(nodes[2])
        for d in flood:
            assert await attacker.deposit(d) >= 8
        honest = next(
            d
            for d in (deposit(1, i, expiry=DAY) for i in range(200, 400))
            if d.work < min(f.work for f in flood)
        )
        report = await net.client(nodes[6]).deposit_report(honest)
        assert report.stored == 0
        assert report.refused.get("full", 0) >= 8
        assert report.floor == min(f.work for f in flood) + 1
        # The sender pays what the nodes asked for and gets through.
        paid = deposit(1, 500, expiry=DAY, difficulty=report.floor)
        assert await net.client(nodes[6]).deposit(paid) >= 8
        got = await net.client(nodes[9]).collect(paid.key)
        assert paid.deposit_id in ids(got)
        assert len(got) <= 5  # a full mailbox per position; the copies agree


async def test_a_deleted_deposit_replayed_is_refused_and_only_the_owner_deletes(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with network(12) as (net, nodes):
        d = deposit(1, 0, expiry=DAY)
        client = net.client(nodes[2])
        assert await client.deposit(d) >= 8
        # A deletion signed by another pseudonym's mailbox key for this mailbox: the client
        # will not send it, and no node takes it.
        forged = dataclasses.replace(deletion(2, (d,), int(clock())), mailbox=mailbox(1))
        with pytest.raises(LocalError):
            await client.delete(forged)
        where = deposit_location(d)
        for node in deposit_holders(nodes, where):
            reply = node.protocol.handle(
                None, Delete(location=where, deletion=forged.encode()), clock()
            ).reply
            assert reply.outcome == "refused"  # type: ignore[union-attr]  # a DeleteResult
        assert ids(await client.collect(d.key)) == [d.deposit_id]
        # The owner deletes it; whoever kept a copy cannot put it back.
        assert await client.delete(deletion(1, (d,), int(clock()))) >= 8
        assert await net.client(nodes[7]).deposit(d) == 0
        assert await client.collect(d.key) == []


async def test_a_node_paging_for_ever_costs_the_collector_a_bounded_amount(
    autojump_clock: trio.testing.MockClock,
) -> None:
    class Endless(DepositStore):
        def page(
            self, location: bytes, after: bytes, now: float, *, max_items: int, max_bytes: int
        ) -> tuple[list[bytes], bool]:
            junk = deposit(1, 0, expiry=DAY, difficulty=0)
            return [junk.encode(), b"not a deposit", deposit(2, 0, expiry=DAY).encode()], True

    async with network(8, deposits=Endless) as (net, nodes):
        d = deposit(1, 1, expiry=DAY)
        await net.client(nodes[1]).deposit(d)
        got = await net.client(nodes[3]).collect(d.key)
        # Only valid deposits of this mailbox, each once; the other mailbox's is dropped.
        assert {g.key for g in got} <= {d.key}
        assert len(got) <= 1
        collects = sum(isinstance(m, Collect) for s in net.seen for m in s.messages())
        assert collects <= 16 * 4 * 8  # pages per node x positions x nodes


async def test_a_deposit_of_a_wrong_or_expired_kind_is_refused_locally(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with network(4) as (net, nodes):
        with pytest.raises(LocalError):
            await net.client(nodes[1]).deposit(deposit(1, 0, expiry=int(EPOCH) - 1))
        with pytest.raises(LocalError):
            await net.client(nodes[1]).collect(b"short")
