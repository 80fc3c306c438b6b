"""The presence service end to end over real sessions and SIP links in memory.

Each ``Peer`` is a real ``PresenceService`` with its own encrypted store,
joined to the others by real Noise sessions and ``PeerLink``s over
in-memory streams (pairs, not mocks). ``Mesh.cut`` breaks a link and makes
a peer unreachable, as a node that went away. Time is trio's autojump
clock (each test asks for it: pytest-trio takes the clock from the test's
own arguments, not from its fixtures').
"""

from __future__ import annotations

import random
import secrets
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
import trio
import trio.testing

from anonsip.identity import Identity
from anonsip.node import Session
from anonsip.node._link import PeerLink
from anonsip.node._links import Unreachable, sip_uri
from anonsip.node._presence import PresenceConfig, PresenceService
from anonsip.presence import Status, WatchState
from anonsip.sip import Availability, RequestReceived, SipEndpoint, SipEvent, subscribe_request
from anonsip.store import ContactState, MessageStore

AWAY = Status(availability=Availability.AWAY, note="back at five")


def _rng(seed: int) -> Callable[[int], bytes]:
    r = random.Random(seed)
    return lambda n: r.randbytes(n)


class Peer:
    def __init__(self, mesh: Mesh, name: str, seed: int, tmp: Path) -> None:
        self.mesh = mesh
        self.identity = Identity.generate(name, rng=_rng(seed))
        self.key = self.identity.public_key
        self.address = self.identity.address.text
        self.store = MessageStore.open(tmp / f"{name}.db", bytes([seed]) * 32)
        self.events: list[dict[str, Any]] = []
        self.service = PresenceService(
            address=self.address,
            store=self.store,
            publish=lambda kind, data: self.events.append({"event": kind, **data}),
            config=PresenceConfig(subscribe_timeout=30.0, notify_timeout=10.0),
        )
        self.links: dict[bytes, PeerLink] = {}
        self.other_requests: list[str] = []
        self.scope = trio.CancelScope()

    def befriend(self, other: Peer, state: ContactState = ContactState.ACCEPTED) -> None:
        self.store.add_contact(other.address, other.identity.nickname, 0.0, state=state)
        self.service.contacts_changed()

    def sees(self, other: Peer) -> tuple[str, str]:
        return self.service.presence_of(other.address)

    # -- LinkSource -----------------------------------------------------------

    def current(self, peer: bytes) -> PeerLink | None:
        link = self.links.get(peer)
        return link if link is not None and link.is_open else None

    async def link_to(self, peer: bytes) -> PeerLink:
        link = self.current(peer)
        if link is not None:
            return link
        return await self.mesh.dial(self, self.mesh.peers[peer])

    async def on_incoming(self, link: PeerLink, event: SipEvent) -> None:
        if isinstance(event, RequestReceived):
            method = event.request.method
            if method == "SUBSCRIBE":
                await self.service.on_subscribe(link, event)
            elif method == "NOTIFY":
                await self.service.on_notify(link, event)
            else:
                self.other_requests.append(method)
                await link.respond(event.request, 405)


class Mesh:
    def __init__(self, nursery: trio.Nursery, tmp: Path) -> None:
        self.nursery = nursery
        self.tmp = tmp
        self.peers: dict[bytes, Peer] = {}
        self.down: set[bytes] = set()
        self.dials = 0

    def add(self, name: str, seed: int) -> Peer:
        peer = Peer(self, name, seed, self.tmp)
        self.peers[peer.key] = peer
        return peer

    async def start(self, peer: Peer) -> None:
        async def serve() -> None:
            with peer.scope:
                await peer.service.run(peer)

        peer.scope = trio.CancelScope()
        self.down.discard(peer.key)
        self.nursery.start_soon(serve)

    async def dial(self, a: Peer, b: Peer) -> PeerLink:
        if b.key in self.down or a.key in self.down:
            await trio.sleep(20)  # a dead onion makes a dial hang, then fail
            raise Unreachable("the peer could not be reached through Tor")
        self.dials += 1
        a_stream, b_stream = trio.testing.memory_stream_pair()
        sessions: dict[str, Session] = {}

        async def accept() -> None:
            sessions["b"] = await Session.accept(b_stream, b.identity, rng=secrets.token_bytes)

        async with trio.open_nursery() as nursery:
            nursery.start_soon(accept)
            sessions["a"] = await Session.connect(
                a_stream, a.identity, b.key, rng=secrets.token_bytes
            )
        link_a = self._link(a, b, sessions["a"])
        link_b = self._link(b, a, sessions["b"])
        await self.nursery.start(link_a.run)
        await self.nursery.start(link_b.run)
        a.links[b.key] = link_a
        b.links[a.key] = link_b
        return link_a

    @staticmethod
    def _link(me: Peer, other: Peer, session: Session) -> PeerLink:
        endpoint = SipEndpoint(
            local_aor=sip_uri(me.key), peer_aor=sip_uri(other.key), rng=secrets.token_bytes
        )
        return PeerLink(session, endpoint, me.on_incoming)

    async def cut(self, peer: Peer) -> None:
        """``peer`` vanishes: its links break and nobody can dial it."""
        self.down.add(peer.key)
        peer.scope.cancel()
        for other in self.peers.values():
            for link in [other.links.get(peer.key), peer.links.get(other.key)]:
                if link is not None:
                    await link.aclose()


@pytest.fixture
async def mesh(tmp_path: Path) -> AsyncIterator[Mesh]:
    async with trio.open_nursery() as nursery:
        m = Mesh(nursery, tmp_path)
        yield m
        nursery.cancel_scope.cancel()
    for peer in m.peers.values():
        peer.store.close()


async def friends(mesh: Mesh) -> tuple[Peer, Peer]:
    a, b = mesh.add("alice", 1), mesh.add("bob", 2)
    a.befriend(b)
    b.befriend(a)
    await mesh.start(a)
    await mesh.start(b)
    await trio.sleep(1)
    return a, b


async def test_mutual_contacts_see_each_other_and_changes_are_pushed(
    mesh: Mesh, autojump_clock: trio.testing.MockClock
) -> None:
    a, b = await friends(mesh)
    assert a.sees(b) == ("available", "")
    assert b.sees(a) == ("available", "")
    b.service.set_status(AWAY)
    await trio.sleep(1)
    assert a.sees(b) == ("away", "back at five")
    assert {
        "event": "contact",
        "address": b.address,
        "presence": "away",
        "note": "back at five",
    } in a.events
    await b.service.presence_set({"status": "busy"})
    await trio.sleep(1)
    assert a.sees(b) == ("busy", "")
    assert b.sees(a) == ("available", "")


async def test_subscriptions_are_refreshed_before_they_expire(
    mesh: Mesh, autojump_clock: trio.testing.MockClock
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
    mesh: Mesh, autojump_clock: trio.testing.MockClock
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
    assert not any(e.get("presence") not in (None, "unknown") for e in c.events)
    # A requested (not accepted) contact is refused the same way.
    b.befriend(c, ContactState.REQUESTED)
    response = await link.request(subscribe_request(link.endpoint))
    assert response.status_code == 403


async def test_a_blocked_contact_is_cut_off(
    mesh: Mesh, autojump_clock: trio.testing.MockClock
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
    mesh: Mesh, autojump_clock: trio.testing.MockClock
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
    mesh: Mesh, autojump_clock: trio.testing.MockClock
) -> None:
    a, b = await friends(mesh)
    b.scope.cancel()  # the service ends: it says goodbye while the link is up
    await trio.sleep(0.5)
    assert a.sees(b) == ("offline", "")
    assert a.service.watches[b.address].state is WatchState.WAITING
    assert len(b.service.notifier) == 0


async def test_accepting_later_starts_watching(
    mesh: Mesh, autojump_clock: trio.testing.MockClock
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
