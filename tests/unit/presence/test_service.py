"""The presence service end to end over real sessions and SIP links in memory.

Each ``Peer`` is a real ``PresenceService`` on a node in memory
(``tests.unit.node.mesh``) with its own encrypted store, joined to the
others by real Noise sessions and ``PeerLink``s over in-memory streams
(pairs, not mocks). ``Mesh.cut`` breaks a link and makes
a peer unreachable, as a node that went away. Time is trio's autojump
clock (each test asks for it: pytest-trio takes the clock from the test's
own arguments, not from its fixtures').
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import trio
import trio.testing

from anonsip.node._link import PeerLink
from anonsip.node._presence import PresenceConfig, PresenceService
from anonsip.presence import Status, WatchState
from anonsip.sip import Availability, subscribe_request
from anonsip.store import ContactState
from tests.unit.node.mesh import MemoryNode, Mesh

AWAY = Status(availability=Availability.AWAY, note="back at five")


class Peer:
    """A node in memory with only the presence service, as these tests speak of it."""

    def __init__(self, node: MemoryNode) -> None:
        self.node = node
        self.service = PresenceService(
            node.context, PresenceConfig(subscribe_timeout=30.0, notify_timeout=10.0)
        )
        node.use([self.service])
        self.key, self.address, self.store = node.key, node.address, node.store

    @property
    def events(self) -> list[dict[str, Any]]:
        return [{"event": name, **data} for name, data in self.node.recorder.events]

    def befriend(self, other: Peer, state: ContactState = ContactState.ACCEPTED) -> None:
        self.node.befriend(other.node, state)

    def sees(self, other: Peer) -> tuple[str, str]:
        return self.service.presence_of(other.address)

    async def link_to(self, peer: bytes) -> PeerLink:
        return await self.node.link_to(peer)

    @property
    def scope(self) -> trio.CancelScope:
        return self.node.scope


class PresenceMesh:
    def __init__(self, mesh: Mesh) -> None:
        self.mesh = mesh
        self.peers: dict[bytes, Peer] = {}

    @property
    def dials(self) -> int:
        return self.mesh.dials

    def add(self, name: str, seed: int) -> Peer:
        peer = Peer(self.mesh.add(name, seed))
        self.peers[peer.key] = peer
        return peer

    async def start(self, peer: Peer) -> None:
        await self.mesh.start(peer.node)

    async def cut(self, peer: Peer) -> None:
        """``peer`` vanishes: its links break and nobody can dial it."""
        self.mesh.down.add(peer.key)
        peer.scope.cancel()
        for other in self.peers.values():
            if other is not peer:
                await self.mesh.cut(peer.node, other.node)


@pytest.fixture
async def mesh(tmp_path: Path) -> AsyncIterator[PresenceMesh]:
    async with trio.open_nursery() as nursery:
        m = PresenceMesh(Mesh(nursery, tmp_path, clock=trio.current_time))
        yield m
        nursery.cancel_scope.cancel()
    for peer in m.peers.values():
        peer.store.close()


async def friends(mesh: PresenceMesh) -> tuple[Peer, Peer]:
    a, b = mesh.add("alice", 1), mesh.add("bob", 2)
    a.befriend(b)
    b.befriend(a)
    await mesh.start(a)
    await mesh.start(b)
    await trio.sleep(1)
    return a, b


async def test_mutual_contacts_see_each_other_and_changes_are_pushed(
    mesh: PresenceMesh, autojump_clock: trio.testing.MockClock
) -> None:
    a, b = await friends(mesh)
    assert a.sees(b) == ("available", "")
    assert b.sees(a) == ("available", "")
    b.service.set_status(AWAY)
    await trio.sleep(1)
    assert a.sees(b) == ("away", "back at five")
    assert {
        "event": "presence",
        "address": b.address,
        "status": "away",
        "note": "back at five",
    } in a.events
    await b.node.op("presence.set", status="busy")
    await trio.sleep(1)
    assert a.sees(b) == ("busy", "")
    assert b.sees(a) == ("available", "")


async def test_subscriptions_are_refreshed_before_they_expire(
    mesh: PresenceMesh, autojump_clock: trio.testing.MockClock
) -> None:
    a, b = await friends(mesh)
    (row,) = [r for r in b.service.notifier.subscribers() if r.key.peer == a.address]
    first_expiry = row.expires_at
    assert first_expiry - trio.current_time() <= 300
    for _ in range(10):
        await trio.sleep(300)
        assert a.service.watches[b.address].state is WatchState.ACTIVE
        assert a.sees(b) == ("available", "")
    (row,) = [r for r in b.service.notifier.subscribers() if r.key.peer == a.address]
    assert row.expires_at > first_expiry + 2500
    assert mesh.dials <= 2  # the links of the first dials carried it all


async def test_only_accepted_contacts_may_subscribe(
    mesh: PresenceMesh, autojump_clock: trio.testing.MockClock
) -> None:
    _a, b = await friends(mesh)
    c = mesh.add("carol", 3)
    c.befriend(b)  # Carol thinks Bob is her contact; Bob never accepted her
    await mesh.start(c)
    b.service.set_status(AWAY)
    await trio.sleep(5)
    assert c.sees(b) == ("unknown", "")
    assert c.service.watches[b.address].refusals == 1
    # A hand-made SUBSCRIBE meets the same 403, and no NOTIFY follows it.
    link = await c.link_to(b.key)
    response = await link.request(subscribe_request(link.endpoint))
    assert response.status_code == 403
    assert response.body == b""
    await trio.sleep(5)
    assert all(r.key.peer != c.address for r in b.service.notifier.subscribers())
    assert not any(e["event"] == "presence" and e["status"] != "unknown" for e in c.events)
    # A requested (not accepted) contact is refused the same way.
    b.befriend(c, ContactState.REQUESTED)
    response = await link.request(subscribe_request(link.endpoint))
    assert response.status_code == 403


async def test_a_blocked_contact_is_cut_off(
    mesh: PresenceMesh, autojump_clock: trio.testing.MockClock
) -> None:
    a, b = await friends(mesh)
    b.store.block(a.address, 0.0)
    b.service.contacts_changed()
    await trio.sleep(1)
    assert a.sees(b) == ("unknown", "")
    b.service.set_status(AWAY)
    await trio.sleep(600)
    assert a.sees(b) == ("unknown", "")


async def test_a_node_that_goes_away_is_offline_and_comes_back(
    mesh: PresenceMesh, autojump_clock: trio.testing.MockClock
) -> None:
    a, b = await friends(mesh)
    b.service.set_status(AWAY)
    await trio.sleep(1)
    assert a.sees(b) == ("away", "back at five")
    gone = trio.current_time()
    await mesh.cut(b)
    with trio.fail_after(60):
        while a.sees(b) != ("offline", ""):
            await trio.sleep(1)
    offline_after = trio.current_time() - gone
    assert offline_after <= 30  # one failed re-subscribe (the dial gives up at 20 s)
    await mesh.start(b)
    b.service.set_status(AWAY)
    with trio.fail_after(400):
        while a.sees(b) != ("away", "back at five"):
            await trio.sleep(1)


async def test_goodbye_marks_us_offline_at_once(
    mesh: PresenceMesh, autojump_clock: trio.testing.MockClock
) -> None:
    a, b = await friends(mesh)
    b.scope.cancel()  # the service ends: it says goodbye while the link is up
    await trio.sleep(0.5)
    assert a.sees(b) == ("offline", "")
    assert a.service.watches[b.address].state is WatchState.WAITING
    assert len(b.service.notifier) == 0


async def test_accepting_later_starts_watching(
    mesh: PresenceMesh, autojump_clock: trio.testing.MockClock
) -> None:
    a, b = mesh.add("alice", 1), mesh.add("bob", 2)
    a.befriend(b, ContactState.REQUESTED)
    b.befriend(a)
    await mesh.start(a)
    await mesh.start(b)
    await trio.sleep(5)
    assert b.sees(a) == ("unknown", "")  # Alice has not accepted Bob: 403
    assert a.address not in [w for w in b.service.watches if b.service.watches[w].refusals == 0]
    a.befriend(b)  # accepted now (as a message from Bob would do)
    a.service.heard_from(b.address, "hi")
    await trio.sleep(5)
    assert a.sees(b) == ("available", "")
    assert b.sees(a) == ("available", "")  # Alice's SUBSCRIBE kicked Bob's watch


async def test_messages_from_a_watched_contact_do_not_reread_the_contact_list(
    mesh: PresenceMesh, autojump_clock: trio.testing.MockClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A burst of messages read every contact once per message on the event loop."""
    a, b = await friends(mesh)
    reads = 0
    contacts = a.store.contacts

    def counted() -> Any:
        nonlocal reads
        reads += 1
        return contacts()

    monkeypatch.setattr(a.store, "contacts", counted)
    for _ in range(50):
        a.service.heard_from(b.address, "hi")
        await trio.testing.wait_all_tasks_blocked()  # a rescan it asked for has run
    assert reads == 0
    assert a.sees(b) == ("available", "")  # still a sign of life: the watch is kicked
