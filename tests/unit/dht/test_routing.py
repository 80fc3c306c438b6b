import random

from anonsip.dht import Contact, NodeId, RoutingTable

from .helpers import contact


def table(
    own: Contact, k: int = 3, refresh_interval: float = 3600.0, stale_after: int = 2
) -> RoutingTable:
    return RoutingTable(
        own.node_id,
        now=0.0,
        rng=random.Random(1),
        k=k,
        refresh_interval=refresh_interval,
        stale_after=stale_after,
    )


def same_bucket(own: Contact, count: int, start: int = 100) -> list[Contact]:
    """``count`` contacts that all fall in own's farthest bucket (255)."""
    out = []
    n = start
    while len(out) < count:
        c = contact(n)
        if own.node_id.bucket_index(c.node_id) == 255:
            out.append(c)
        n += 1
    return out


def test_contacts_go_into_their_bucket_and_self_is_ignored() -> None:
    own = contact(0)
    rt = table(own, k=20)
    for n in range(1, 40):
        assert rt.seen(contact(n)) is None or len(rt) > 0
    assert rt.seen(own) is None
    assert own.node_id not in rt
    for c in rt.contacts():
        assert c.node_id in rt
        assert rt.get(c.node_id) == c


def test_full_bucket_asks_to_ping_the_least_recently_seen() -> None:
    own = contact(0)
    rt = table(own, k=3)
    a, b, c, d, e = same_bucket(own, 5)
    for x in (a, b, c):
        assert rt.seen(x) is None
    rt.seen(a)  # a is now most recently seen: b is the LRS
    assert rt.seen(d) == b
    # Only one check per bucket at a time; e waits in the replacement cache.
    assert rt.seen(e) is None
    assert d.node_id not in rt
    # b answered: it stays (and moves to the tail), the newcomers do not get in.
    rt.ping_result(b, alive=True)
    assert {x.node_id for x in rt.contacts()} == {a.node_id, b.node_id, c.node_id}
    # Next newcomer: now c is the LRS; it is dead, so the freshest replacement replaces it.
    assert rt.seen(d) == c
    rt.ping_result(c, alive=False)
    assert c.node_id not in rt
    assert d.node_id in rt  # d was re-seen after e, so it is the freshest
    assert len(rt) == 3


def test_repeated_failures_drop_a_contact_and_promote_a_replacement() -> None:
    own = contact(0)
    rt = table(own, k=2, stale_after=2)
    a, b, c = same_bucket(own, 3)
    rt.seen(a)
    rt.seen(b)
    rt.seen(c)  # cache
    rt.failed(a)
    assert a.node_id in rt
    rt.seen(a)  # an answer resets the count
    rt.failed(a)
    assert a.node_id in rt
    rt.failed(a)
    assert a.node_id not in rt
    assert c.node_id in rt


def test_table_is_bounded() -> None:
    own = contact(0)
    rt = table(own, k=4)
    for n in range(1, 400):
        ping = rt.seen(contact(n))
        if ping is not None:
            rt.ping_result(ping, alive=True)
    stats = rt.statistics()
    assert stats["contacts"] <= 4 * stats["buckets"]
    assert stats["replacements"] <= 4 * stats["buckets"]


def test_closest_is_sorted_by_xor_distance() -> None:
    own = contact(0)
    rt = table(own, k=20)
    for n in range(1, 200):
        rt.seen(contact(n))
    target = NodeId.random(random.Random(9))
    got = rt.closest(target, 10)
    everyone = sorted(rt.contacts(), key=lambda c: c.node_id.distance(target))
    assert got == everyone[:10]
    assert rt.closest(target, 5, exclude=got[0].node_id) == everyone[1:6]
    assert (
        rt.siblings(3) == sorted(rt.contacts(), key=lambda c: c.node_id.distance(own.node_id))[:3]
    )


def test_refresh_bookkeeping_follows_the_injected_clock() -> None:
    own = contact(0)
    rt = table(own, k=20, refresh_interval=100.0)
    assert rt.refresh_targets(1000.0) == []  # nothing known: nothing to refresh
    for n in range(1, 30):
        rt.seen(contact(n))
    assert rt.refresh_targets(50.0) == []
    due = rt.refresh_targets(150.0)
    assert due
    assert all(own.node_id.bucket_index(t) >= 0 for t in due)
    for target in due:
        rt.touch(target, 150.0)
    assert rt.refresh_targets(200.0) == []
    assert len(rt.refresh_targets(251.0)) == len(due)


def test_contacts_are_handed_out_only_after_their_probation() -> None:
    own = contact(0)
    rt = table(own, k=20)
    old = [contact(n) for n in range(1, 30)]
    for c in old:
        rt.seen(c, 0.0)
    fresh = [contact(n) for n in range(30, 40)]
    for c in fresh:
        rt.seen(c, 100.0)
    in_table = [c for c in fresh if c.node_id in rt]
    assert in_table
    for c in in_table:
        assert c not in rt.closest(c.node_id, 5, mature_at=50.0)
        assert rt.closest(c.node_id, 1, mature_at=100.0) == [c]
        assert rt.closest(c.node_id, 1) == [c]
    # Seeing a contact again keeps the time it entered.
    rt.seen(in_table[0], 200.0)
    assert in_table[0] in rt.mature(100.0)
    # A young table (fewer mature contacts than asked for) hands out what it has.
    young = table(own, k=20)
    for c in fresh:
        young.seen(c, 100.0)
    assert len(young.closest(fresh[0].node_id, 5, mature_at=50.0)) == 5


def test_closer_than_us_counts_mature_contacts_nearer_the_target() -> None:
    own = contact(0)
    rt = table(own, k=20)
    others = [contact(n) for n in range(1, 60)]
    for c in others[:30]:
        rt.seen(c, 0.0)
    for c in others[30:]:
        rt.seen(c, 100.0)
    target = contact(500).node_id
    ours = own.node_id.distance(target)
    assert rt.closer_than_us(target) == sum(
        1 for c in rt.contacts() if c.node_id.distance(target) < ours
    )
    assert rt.closer_than_us(target, mature_at=50.0) == sum(
        1 for c in rt.mature(50.0) if c.node_id.distance(target) < ours
    )
