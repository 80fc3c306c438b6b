"""Hedged lookups: every stall transition of the sans-IO ``Lookup``, the soft deadline
``ResponseTimes`` keeps, and the trio driver (``drive_lookup``) over real protocol cores
with slow and dead nodes on the autojump clock."""

from __future__ import annotations

import random

import pytest
import trio
import trio.testing
from hypothesis import given, settings
from hypothesis import strategies as st

from anonsip._errors import LocalError
from anonsip.dht import (
    Contact,
    Lookup,
    LookupKind,
    NodeId,
    Nodes,
    Reply,
    Request,
    ResponseTimes,
    Value,
)
from anonsip.dht._peers import Ask, drive_lookup

from .helpers import contact, location, record
from .test_lookup import K, Network


def walk(net: Network, target: NodeId, origin: Contact, **kw: int) -> Lookup:
    """A FIND_VALUE for a record nobody stored: it walks to convergence, and hedges."""
    return net.lookup(LookupKind.FIND_VALUE, target, origin, record_key=record(999).key, **kw)


def first_requests(lookup: Lookup) -> list[Contact]:
    return [peer for peer, _ in lookup.next_requests()]


def test_a_stall_frees_the_slot_and_the_next_closest_is_asked() -> None:
    net = Network(150)
    origin = net.contacts[0]
    lookup = walk(net, NodeId(7), origin, alpha=1)
    (slow,) = first_requests(lookup)
    assert lookup.next_requests() == []  # alpha = 1: the slot is taken
    lookup.on_stalled(slow)
    (hedge,) = first_requests(lookup)
    assert hedge != slow
    assert hedge.node_id.distance(NodeId(7)) > slow.node_id.distance(NodeId(7))
    assert lookup.stalls == 1
    assert lookup.next_requests() == []  # the hedge holds the one slot now


def test_a_stalled_answer_still_counts() -> None:
    net = Network(150)
    origin = net.contacts[0]
    rec = record(3)
    net.store_at_closest(rec)
    lookup = net.find_value(rec, origin, alpha=1)
    (slow,) = first_requests(lookup)
    lookup.on_stalled(slow)
    (hedge,) = first_requests(lookup)
    # The stalled node answers late with the value: the path holds it and ends.
    lookup.on_response(slow, Value(record=rec))
    assert lookup.has_value
    assert lookup.done
    result = lookup.result()
    assert result.record == rec
    assert result.stalls == 1
    lookup.on_response(hedge, Nodes(contacts=()))  # after the end: ignored, no error
    assert slow in lookup.responded()


def test_a_stalled_answer_brings_new_candidates() -> None:
    net = Network(150)
    origin = net.contacts[0]
    lookup = walk(net, NodeId(11), origin, alpha=1)
    (slow,) = first_requests(lookup)
    lookup.on_stalled(slow)
    first_requests(lookup)
    newcomer = contact(50_000)
    lookup.on_response(slow, Nodes(contacts=(newcomer,)))
    assert lookup.path_of(newcomer) == 0


@pytest.mark.parametrize("ending", ["timeout", "failure"])
def test_a_stalled_request_can_still_fail(ending: str) -> None:
    net = Network(150)
    origin = net.contacts[0]
    lookup = walk(net, NodeId(5), origin, alpha=1)
    (slow,) = first_requests(lookup)
    lookup.on_stalled(slow)
    first_requests(lookup)
    if ending == "timeout":
        lookup.on_timeout(slow)
    else:
        lookup.on_failure(slow)
    assert lookup.failures == 1
    assert lookup.timeouts == (1 if ending == "timeout" else 0)
    # Settled: it frees no second slot, and a late answer is ignored.
    assert lookup.next_requests() == []
    lookup.on_response(slow, Nodes(contacts=(contact(50_001),)))
    assert lookup.path_of(contact(50_001)) is None
    assert slow not in lookup.responded()


def test_a_placement_walk_ignores_stalls() -> None:
    net = Network(150)
    origin = net.contacts[0]
    lookup = net.lookup(LookupKind.FIND_NODE, NodeId(7), origin, alpha=1)
    (slow,) = first_requests(lookup)
    lookup.on_stalled(slow)
    assert lookup.stalls == 0
    assert lookup.next_requests() == []  # its slot stays taken until it answers
    lookup.on_response(slow, Nodes(contacts=()))
    assert slow in lookup.responded()


def test_only_a_request_in_flight_can_stall() -> None:
    net = Network(150)
    origin = net.contacts[0]
    lookup = walk(net, NodeId(9), origin, alpha=1)
    (asked,) = first_requests(lookup)
    lookup.on_stalled(contact(60_000))  # nobody we know
    lookup.on_stalled(asked)
    lookup.on_stalled(asked)  # a second stall of the same request
    assert lookup.stalls == 1
    (hedge,) = first_requests(lookup)
    lookup.on_response(hedge, Nodes(contacts=()))
    lookup.on_stalled(hedge)  # answered already
    assert lookup.stalls == 1
    (after,) = first_requests(lookup)  # exactly one slot came free, by the answer
    assert after not in (asked, hedge)


def test_convergence_does_not_wait_for_a_stalled_node() -> None:
    net = Network(150)
    origin = net.contacts[2]
    target = NodeId.random(random.Random(21))
    slow = net.closest(target)[0]
    lookup = walk(net, target, origin, alpha=2)
    rounds = 0
    while not lookup.done:
        for peer, request in lookup.next_requests():
            if peer == slow:
                lookup.on_stalled(peer)  # it never answers within the lookup
                continue
            lookup.on_response(peer, net.nodes[peer.node_id].handle(origin, request, 0.0).reply)
        rounds += 1
        assert rounds < 500
    result = lookup.result()
    assert slow not in result.closest
    truth = [c for c in net.closest(target, K + 2) if c not in (origin, slow)][:K]
    assert list(result.closest) == truth


def test_with_fewer_than_k_left_a_stalled_node_is_waited_for() -> None:
    net = Network(6)  # fewer nodes than k: every answer is needed
    origin = net.contacts[0]
    lookup = walk(net, NodeId(3), origin, alpha=K)
    asked = first_requests(lookup)
    slow, rest = asked[0], asked[1:]
    lookup.on_stalled(slow)
    for peer in rest:
        lookup.on_response(peer, Nodes(contacts=()))
    assert not lookup.done  # a late answer may still bring candidates
    lookup.on_response(slow, Nodes(contacts=()))
    assert lookup.done
    assert set(lookup.result().closest) == set(asked)


def test_cut_ends_the_lookup_with_what_it_has() -> None:
    net = Network(150)
    origin = net.contacts[0]
    rec = record(8)
    net.store_at_closest(rec)
    lookup = net.find_value(rec, origin, paths=2, alpha=1)
    assert not lookup.has_value
    peers = first_requests(lookup)
    lookup.on_response(peers[0], Value(record=rec))
    assert lookup.has_value
    assert not lookup.done  # the other path has not found it yet
    lookup.cut()
    assert lookup.done
    assert lookup.next_requests() == []
    assert lookup.result().record == rec
    assert lookup.result().paths_with_value == 1


events = st.lists(st.sampled_from(["answer", "stall", "timeout", "late"]), max_size=400)


@settings(max_examples=60, deadline=None)
@given(script=events, alpha=st.integers(1, 3), paths=st.integers(1, 3), seed=st.integers(0, 9))
def test_any_order_of_stalls_and_answers_keeps_the_bounds_and_ends(
    script: list[str], alpha: int, paths: int, seed: int
) -> None:
    """Whatever the order of stalls, answers, timeouts and late answers: never more than
    alpha unstalled requests per path, nobody asked twice, and the lookup ends."""
    net = Network(80, seed=seed)
    origin = net.contacts[0]
    lookup = walk(net, NodeId.random(random.Random(seed)), origin, alpha=alpha, paths=paths)
    in_flight: list[tuple[Contact, Request]] = []
    stalled: list[tuple[Contact, Request]] = []
    asked: set[Contact] = set()
    moves = iter(script)
    for _ in range(10_000):
        if lookup.done:
            break
        for peer, request in lookup.next_requests():
            assert peer not in asked
            asked.add(peer)
            in_flight.append((peer, request))
        assert len(in_flight) <= alpha * paths
        move = next(moves, "answer")
        pool = stalled if move == "late" and stalled else in_flight
        if not pool:
            pool = stalled
        assert pool, "a lookup that is not done has something outstanding"
        peer, request = pool.pop(0)
        if move == "stall" and pool is in_flight:
            lookup.on_stalled(peer)
            stalled.append((peer, request))
        elif move == "timeout":
            lookup.on_timeout(peer)
        else:
            reply = net.nodes[peer.node_id].handle(origin, request, 0.0).reply
            lookup.on_response(peer, reply)
    assert lookup.done
    assert lookup.messages == len(asked)


# -- the soft deadline -------------------------------------------------------------


@given(
    durations=st.lists(st.floats(min_value=-1.0, max_value=1e6, allow_nan=False), max_size=200),
    floor=st.floats(min_value=0.01, max_value=5.0),
    span=st.floats(min_value=0.0, max_value=20.0),
)
def test_the_soft_deadline_stays_within_its_bounds(
    durations: list[float], floor: float, span: float
) -> None:
    times = ResponseTimes(initial=2.0, floor=floor, ceiling=floor + span)
    for seconds in durations:
        times.add(seconds)
        assert floor <= times.hedge_after() <= floor + span
        assert times.grace() == times.hedge_after()


def test_the_soft_deadline_is_twice_the_median_once_enough_were_seen() -> None:
    times = ResponseTimes(initial=2.0, floor=0.1, ceiling=10.0, minimum=3, window=4)
    times.add(0.3)
    times.add(0.3)
    assert times.hedge_after() == 2.0  # not enough answers yet
    times.add(0.5)
    assert times.hedge_after() == pytest.approx(0.6)
    for _ in range(4):  # the window forgets the old answers
        times.add(3.0)
    assert times.hedge_after() == pytest.approx(6.0)


@pytest.mark.parametrize(
    "bad",
    [{"floor": 0.0}, {"floor": 2.0, "ceiling": 1.0}, {"factor": 0.5}, {"window": 0}],
)
def test_a_soft_deadline_needs_sane_bounds(bad: dict[str, float]) -> None:
    options: dict[str, float] = {"initial": 1.0, "floor": 0.5, "ceiling": 5.0, **bad}
    with pytest.raises(LocalError):
        ResponseTimes(**options)  # the mix of floats and ints


# -- the trio driver ---------------------------------------------------------------

RPC_TIMEOUT = 5.0


def asker(net: Network, origin: Contact, delays: dict[NodeId, float]) -> tuple[list[Contact], Ask]:
    """An ``ask`` over the network's cores: a node in ``delays`` answers that late (or never,
    past the request deadline), a dead one times out."""
    asked: list[Contact] = []

    async def ask(peer: Contact, request: Request) -> tuple[Reply | None, bool]:
        asked.append(peer)
        delay = delays.get(peer.node_id, 0.01)
        if peer.node_id in net.dead or delay >= RPC_TIMEOUT:
            await trio.sleep(RPC_TIMEOUT)
            return None, True
        await trio.sleep(delay)
        return net.nodes[peer.node_id].handle(origin, request, 0.0).reply, False

    return asked, ask


def hedge() -> ResponseTimes:
    return ResponseTimes(initial=0.5, floor=0.2, ceiling=RPC_TIMEOUT / 2)


@pytest.mark.parametrize("hedged", [True, False])
async def test_dead_nodes_cost_a_soft_deadline_not_a_timeout(
    autojump_clock: trio.testing.MockClock, hedged: bool
) -> None:
    net = Network(150)
    origin = net.contacts[1]
    target = NodeId.random(random.Random(30))
    seeds = net.nodes[origin.node_id].routing.closest(target)
    net.dead = {c.node_id for c in seeds[:3]}  # the closest it knows are gone
    lookup = walk(net, target, origin, alpha=1, paths=1)
    _, ask = asker(net, origin, {})
    start = trio.current_time()
    result = await drive_lookup(
        lookup,
        ask,
        timeout=60.0,
        hedge=hedge() if hedged else None,
    )
    elapsed = trio.current_time() - start
    truth = [c for c in net.closest(target, K + 1) if c != origin][:K]
    assert list(result.closest) == truth
    if hedged:
        assert result.stalls >= 3
        assert elapsed < RPC_TIMEOUT  # three dead nodes, less than one deadline
    else:
        assert result.stalls == 0
        assert elapsed >= 3 * RPC_TIMEOUT  # alpha = 1 waits out each of them


async def test_a_slow_answer_is_used_when_it_comes(
    autojump_clock: trio.testing.MockClock,
) -> None:
    net = Network(150)
    origin = net.contacts[4]
    rec = record(12)
    net.store_at_closest(rec)
    lookup = net.find_value(rec, origin, alpha=1, paths=1)
    # Everyone is slow (but under the request deadline): each request is hedged and the
    # hedges are slow too; the value still arrives, from whichever answers.
    delays = {c.node_id: 1.0 for c in net.contacts}
    asked, ask = asker(net, origin, delays)
    result = await drive_lookup(lookup, ask, timeout=60.0, hedge=hedge())
    assert result.record == rec
    assert result.stalls >= 1
    assert len(asked) == len(set(asked))


async def test_the_other_paths_get_a_grace_period_after_the_first_value(
    autojump_clock: trio.testing.MockClock,
) -> None:
    net = Network(150)
    origin = net.contacts[6]
    rec = record(13)
    net.store_at_closest(rec)
    lookup = net.find_value(rec, origin, alpha=1, paths=2)
    # Path 1's nodes are dead; path 0 finds the value quickly.
    seeds = net.nodes[origin.node_id].routing.closest(NodeId.from_bytes(location(rec)))
    times = hedge()
    _, ask = asker(net, origin, {})
    for peer in seeds:
        if lookup.path_of(peer) == 1:
            net.dead.add(peer.node_id)
    start = trio.current_time()
    result = await drive_lookup(lookup, ask, timeout=60.0, hedge=times, value_grace=True)
    elapsed = trio.current_time() - start
    assert result.record == rec
    assert result.paths_with_value == 1
    assert elapsed < RPC_TIMEOUT  # not the dead path's walk to its end


async def test_a_caller_can_cut_a_lookup_short(autojump_clock: trio.testing.MockClock) -> None:
    net = Network(150)
    origin = net.contacts[7]
    target = NodeId.random(random.Random(40))
    lookup = walk(net, target, origin, alpha=1)
    delays = {c.node_id: 1.0 for c in net.contacts}
    _, ask = asker(net, origin, delays)
    cut = trio.CancelScope(deadline=trio.current_time() + 1.5)
    result = await drive_lookup(lookup, ask, timeout=60.0, cut=cut)
    assert cut.cancelled_caught
    assert lookup.done
    assert len(result.closest) == 1  # one answer came before the cut


async def test_a_grace_period_needs_response_times() -> None:
    net = Network(20)
    lookup = walk(net, NodeId(1), net.contacts[0])
    _, ask = asker(net, net.contacts[0], {})
    with pytest.raises(LocalError):
        await drive_lookup(lookup, ask, timeout=1.0, value_grace=True)
