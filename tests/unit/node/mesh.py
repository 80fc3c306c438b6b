"""Nodes in memory: real services, real Noise sessions and SIP links, no tor.

Each ``MemoryNode`` is what ``build_node`` makes minus tor and the DHT: a
``NodeContext`` over its own encrypted store, the services a test gives it,
and the ``ServiceTable`` that routes SIP requests, media streams and
control operations to them, as the node does. A ``Mesh`` joins nodes by
in-memory streams: ``link_to`` runs the real IK handshake and starts a
``PeerLink`` on both ends; ``open_media`` hands a stream to the peer's
media service. ``cut`` breaks a link; ``down`` makes a node unreachable (a
dial then hangs as a dead onion does, and fails). A node with a
registration in ``registrations`` is looked up (for ``LOOKUP_S``, the
services told what was found) before each dial to it, as the node's links
do. Pairs, not mocks.
"""

from __future__ import annotations

import random
import secrets
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import trio
import trio.testing

from anonsip.control import View
from anonsip.identity import Identity
from anonsip.node import NodeContext, NodeService, ServiceTable, Session
from anonsip.node._link import PeerLink
from anonsip.node._links import (
    CONTACT_TRANSACTIONS,
    STRANGER_TRANSACTIONS,
    Unreachable,
    sip_uri,
)
from anonsip.registration import Registration
from anonsip.sip import RequestReceived, SipEndpoint, SipEvent
from anonsip.store import ContactState, MessageStore

__all__ = ["LOOKUP_S", "MemoryNode", "Mesh", "Recorder", "seeded"]

LOOKUP_S = 2.0  # how long a lookup in the "DHT" of registrations takes


def seeded(seed: int) -> Callable[[int], bytes]:
    r = random.Random(seed)
    return lambda n: r.randbytes(n)


class Recorder:
    """Published events (encoded, as a client gets them), and waiting for one."""

    def __init__(self) -> None:
        self.events: list[tuple[str, dict[str, Any]]] = []
        self._changed = trio.Event()
        # Also handed every event (a real control server's ``publish``, say).
        self.also: list[Callable[[str, dict[str, Any]], None]] = []

    def __call__(self, event: str, view: View) -> None:
        self.events.append((event, view.encode()))
        for publish in self.also:
            publish(event, view.encode())
        self._changed.set()
        self._changed = trio.Event()

    def named(self, name: str) -> list[dict[str, Any]]:
        return [d for e, d in self.events if e == name]

    def calls(self, state: str | None = None, call_id: str | None = None) -> list[dict[str, Any]]:
        return [
            d
            for d in self.named("call")
            if (state is None or d["state"] == state)
            and (call_id is None or d["call_id"] == call_id)
        ]

    async def wait_for(
        self,
        name: str,
        match: Callable[[dict[str, Any]], bool] = lambda _d: True,
        timeout: float = 60,
    ) -> dict[str, Any]:
        with trio.fail_after(timeout):
            while True:
                found = [d for d in self.named(name) if match(d)]
                if found:
                    return found[-1]
                await self._changed.wait()

    async def wait_call(
        self, state: str, call_id: str | None = None, timeout: float = 60
    ) -> dict[str, Any]:
        return await self.wait_for(
            "call",
            lambda d: d["state"] == state and (call_id is None or d["call_id"] == call_id),
            timeout,
        )

    async def wait_event(self, name: str, timeout: float = 60) -> dict[str, Any]:
        return await self.wait_for(name, timeout=timeout)


# One end of an in-memory stream, as ``trio.testing.memory_stream_pair`` makes them.
MemoryEnd = trio.StapledStream[trio.testing.MemorySendStream, trio.testing.MemoryReceiveStream]


class MemoryNode:
    """One node's services over an in-memory overlay."""

    def __init__(
        self,
        mesh: Mesh,
        name: str,
        seed: int,
        store_path: Path,
        max_bytes: int | None = None,
        offload: bool = False,
    ) -> None:
        self.mesh = mesh
        self.name = name
        self.identity = Identity.generate(name, rng=seeded(seed))
        self.key = self.identity.public_key
        self.address = self.identity.address.text
        limit = {} if max_bytes is None else {"max_bytes": max_bytes}
        self.store = MessageStore.open(store_path, bytes([seed % 256]) * 32, **limit)
        self.context = NodeContext(
            identity=self.identity, store=self.store, clock=mesh.clock, offload=offload
        )
        self.recorder = Recorder()
        self.table = ServiceTable([])
        self.links: dict[bytes, PeerLink] = {}
        self.scope = trio.CancelScope()
        self.stopped = trio.Event()
        self.dials = 0
        self.effort_changes = 0  # times a service said the effort asked of strangers changed
        self.context.connect(
            publish=self.recorder,
            contacts_changed=self._contacts_changed,
            status_changed=lambda: None,
            stop=lambda: self.scope.cancel(),
            effort_changed=self._effort_changed,
        )
        self.context.overlay_up(self, self._resolve)

    def use(self, services: Sequence[NodeService]) -> None:
        self.table = ServiceTable(services)

    def service(self, kind: type[Any]) -> Any:
        return next(s for s in self.table.services if isinstance(s, kind))

    async def op(self, name: str, **args: Any) -> Any:
        """A control operation as a client sends it (arguments parsed by the schema)."""
        return await self.table.call(name, args)

    def befriend(self, other: MemoryNode, state: ContactState = ContactState.ACCEPTED) -> None:
        self.store.add_contact(other.address, other.name, 0.0, state=state)
        self._contacts_changed()

    def _effort_changed(self) -> None:
        self.effort_changes += 1

    def _contacts_changed(self) -> None:
        for service in self.table.services:
            service.contacts_changed()

    async def _resolve(self, key: bytes) -> tuple[int, Registration]:
        registration = self.mesh.registrations.get(key)
        if registration is None:
            raise Unreachable("no registration in memory")
        await trio.sleep(LOOKUP_S)
        for service in self.table.services:
            service.registration_found(key, registration)
        return 0, registration

    # -- LinkSource -------------------------------------------------------------

    def current(self, peer: bytes) -> PeerLink | None:
        link = self.links.get(peer)
        return link if link is not None and link.is_open else None

    async def link_to(self, peer: bytes) -> PeerLink:
        link = self.current(peer)
        if link is not None:
            return link
        if peer in self.mesh.registrations:
            await self._resolve(peer)
        return await self.mesh.dial(self, self.mesh.nodes[peer])

    async def open_media(self, peer: bytes) -> trio.abc.Stream:
        other = self.mesh.nodes[peer]
        if peer in self.mesh.down:
            raise Unreachable("the peer could not be reached through Tor")
        ours, theirs = trio.testing.memory_stream_pair()
        self.mesh.media.append((ours, theirs))
        media = other.table.media
        assert media is not None
        self.mesh.nursery.start_soon(media.on_media, theirs)
        return ours

    # -- what the node's router does ----------------------------------------------

    async def on_incoming(self, link: PeerLink, event: SipEvent) -> None:
        service = self.table.route(event)
        if service is not None:
            await service.on_sip(link, event)
        elif isinstance(event, RequestReceived):
            await link.respond(event.request, 405)


class Mesh:
    def __init__(self, nursery: trio.Nursery, tmp: Path, *, clock: Callable[[], float]) -> None:
        self.nursery = nursery
        self.tmp = tmp
        self.clock = clock
        self.nodes: dict[bytes, MemoryNode] = {}
        # each dial's two ends, (dialler, dialled): a test can break one half
        self.streams: dict[tuple[bytes, bytes], tuple[MemoryEnd, MemoryEnd]] = {}
        self.down: set[bytes] = set()
        self.registrations: dict[bytes, Registration] = {}
        self.media: list[tuple[trio.abc.Stream, trio.abc.Stream]] = []
        self.dials = 0

    def add(
        self, name: str, seed: int, *, max_bytes: int | None = None, offload: bool = False
    ) -> MemoryNode:
        """A node; ``max_bytes`` caps its store as a small disk would; ``offload`` runs
        its store calls in worker threads, as a node does (real time only)."""
        node = MemoryNode(self, name, seed, self.tmp / f"{name}.sqlite", max_bytes, offload)
        self.nodes[node.key] = node
        return node

    async def start(self, node: MemoryNode) -> None:
        """Run the node's services (as the node does once it is reachable)."""
        node.scope = trio.CancelScope()
        node.stopped = trio.Event()
        self.down.discard(node.key)

        async def serve(task_status: trio.TaskStatus[None]) -> None:
            try:
                with node.scope:
                    async with trio.open_nursery() as services:
                        for service in node.table.services:
                            await services.start(service.run)
                        task_status.started()
            finally:
                node.stopped.set()

        await self.nursery.start(serve)

    async def stop(self, node: MemoryNode) -> None:
        """The node's goodbye (links still up), then its services stop and it is gone."""
        with trio.move_on_after(5):
            async with trio.open_nursery() as goodbyes:
                for service in node.table.services:
                    goodbyes.start_soon(service.stopping)
        node.scope.cancel()
        await node.stopped.wait()
        self.down.add(node.key)
        for link in list(node.links.values()):
            await link.aclose()

    async def dial(self, a: MemoryNode, b: MemoryNode) -> PeerLink:
        if b.key in self.down or a.key in self.down:
            await trio.sleep(20)  # a dead onion makes a dial hang, then fail
            raise Unreachable("the peer could not be reached through Tor")
        self.dials += 1
        a.dials += 1
        a_stream, b_stream = trio.testing.memory_stream_pair()
        self.streams[(a.key, b.key)] = (a_stream, b_stream)
        sessions: dict[str, Session] = {}

        async def accept() -> None:
            sessions["b"] = await Session.accept(b_stream, b.identity, rng=secrets.token_bytes)

        async with trio.open_nursery() as handshake:
            handshake.start_soon(accept)
            sessions["a"] = await Session.connect(
                a_stream, a.identity, b.key, rng=secrets.token_bytes
            )
        link_a = self._link(a, b, sessions["a"])
        link_b = self._link(b, a, sessions["b"])
        await self.nursery.start(link_a.run)
        await self.nursery.start(link_b.run)
        for node, peer in ((a, b), (b, a)):
            for service in node.table.services:
                service.link_up(peer.key)
        return link_a

    def _link(self, me: MemoryNode, peer: MemoryNode, session: Session) -> PeerLink:
        # The link table's bound (its own tests show it): more for a contact.
        contact = me.store.contact(peer.address)
        known = contact is not None and contact.state is not ContactState.BLOCKED
        endpoint = SipEndpoint(
            local_aor=sip_uri(me.key),
            peer_aor=sip_uri(peer.key),
            rng=secrets.token_bytes,
            max_transactions=CONTACT_TRANSACTIONS if known else STRANGER_TRANSACTIONS,
        )
        link = PeerLink(session, endpoint, me.on_incoming)
        me.links[peer.key] = link
        return link

    async def cut(self, a: MemoryNode, b: MemoryNode) -> None:
        for node, peer in ((a, b), (b, a)):
            link = node.links.pop(peer.key, None)
            if link is not None:
                await link.aclose()
