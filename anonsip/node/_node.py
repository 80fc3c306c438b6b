"""The node: a host of services, and everything one pseudonym needs, in one nursery.

Start-up order follows what each part needs: the message store and the
control socket first (so a UI can watch the rest come up), then our own
tor and its bootstrap, the DHT node on its onion service, the identity's
onion service carrying secure sessions, the registrar, and finally the
services (``_service.NodeService``: messaging, contacts, presence, calls,
…), each running in the node's nursery. Shutdown runs the other way:
services say goodbye while the links are up, we unregister, then close
everything, each step with a short deadline; tor dies with us.

The node routes each incoming SIP request to the service that declared
its method (SUBSCRIBE and NOTIFY by their ``Event`` package), each media
stream to the service that takes media, each control operation (arguments
parsed by the schema) to the service that serves it.
"""

from __future__ import annotations

import logging
import random
import secrets
import signal
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import trio

from anonsip._errors import AnonsipError, LocalError
from anonsip.admission import RESTING_EFFORT
from anonsip.control import (
    EVENTS,
    AddressArgs,
    ControlServer,
    DhtView,
    IdentityView,
    InviteArgs,
    InviteView,
    LookupView,
    MailboxView,
    NoArgs,
    NodePhase,
    OnionContactView,
    PresenceView,
    RegistrationView,
    SeedArgs,
    SeedView,
    StatusView,
    TorView,
    View,
)
from anonsip.dht import BootstrapList, DhtConfig, OnionDht, start_onion_dht
from anonsip.dht import Contact as DhtContact
from anonsip.identity import TOR_TIME_PERIODS, Address, TimePeriods
from anonsip.invite import DhtSeed, Invite
from anonsip.node._context import NodeContext, NotReady
from anonsip.node._home import Home, Unlocked
from anonsip.node._link import PeerLink
from anonsip.node._links import LinkTable
from anonsip.node._mailbox import MailboxDht
from anonsip.node._registrar import Registrar, RegistrationState
from anonsip.node._resolver import NotRegistered, Resolver
from anonsip.node._seeds import SeedSource, parse_seed, seed_sources
from anonsip.node._service import NodeService, OperationHandler, ServiceTable
from anonsip.registration import Contact, Registration
from anonsip.sip import RequestReceived, SipEvent
from anonsip.store import ContactState
from onion import (
    BootstrapStatus,
    OnionKey,
    Tor,
    TorDied,
    onion_address_from_public_key,
    open_tor,
)
from onion.testnet import TestnetInfo

__all__ = ["SIP_PORT", "Node", "NodeConfig", "PresenceSource"]

log = logging.getLogger(__name__)

SIP_PORT = 5061
UNREGISTER_TIMEOUT_S = 3.0
SAVE_CONTACTS_INTERVAL_S = 300.0
SAVED_CONTACTS = 32
INVITE_CONTACTS = 4
RESTART_DELAY_S = 1.0  # tor died: start it again after this, doubling up to the maximum
RESTART_MAX_DELAY_S = 60.0
GOODBYE_TIMEOUT_S = 3.0


@dataclass(frozen=True, kw_only=True)
class NodeConfig:
    testnet: Path | None = None
    bootstrap_dirs: tuple[Path, ...] = ()
    periods: TimePeriods = TOR_TIME_PERIODS
    pow_difficulty: int = RESTING_EFFORT
    dht: DhtConfig = field(default_factory=DhtConfig)
    auto_answer: bool = False
    play: Path | None = None
    record: Path | None = None
    echo_bot: bool = False
    restart_command: str = ""  # how the user starts this node again (for a UI's hint)
    bootstrap_timeout: float = 300.0  # tor must reach 100 % within this; else a clear error
    bridges: tuple[str, ...] = ()  # bridge lines our tor enters the network through
    tor_control: str | None = None  # attach to this tor (port, HOST:PORT, socket) instead
    tor_control_password: str | None = field(default=None, repr=False)


class PresenceSource(Protocol):
    """Where ``status`` reads our own presence (the presence service)."""

    def own(self) -> PresenceView: ...


class MailboxSource(Protocol):
    """The mailbox service, as the node sees it: it gets the DHT client, reports in status."""

    last_collected: float

    def attach(self, dht: MailboxDht | None) -> None: ...

    def waiting(self) -> int: ...


class _NoPresence:
    def own(self) -> PresenceView:
        return PresenceView()


class _NodeOps(NodeService):
    """The node's own operations: status, identity, lookup, shutdown."""

    name = "node"

    def __init__(self, node: Node) -> None:
        self._node = node

    def operations(self) -> Mapping[str, OperationHandler]:
        return {
            "status": self.op_status,
            "identity": self.op_identity,
            "lookup": self.op_lookup,
            "invite": self.op_invite,
            "bootstrap.add": self.op_bootstrap_add,
            "bootstrap.list": self.op_bootstrap_list,
            "bootstrap.remove": self.op_bootstrap_remove,
            "shutdown": self.op_shutdown,
        }

    async def op_status(self, args: NoArgs) -> StatusView:
        return self._node.status()

    async def op_identity(self, args: NoArgs) -> IdentityView:
        return self._node.identity_view(with_invite=True)

    async def op_invite(self, args: InviteArgs) -> InviteView:
        if not 1 <= args.days <= 365:
            raise LocalError("an invite lasts 1 to 365 days")
        if self._node.dht is None:
            raise NotReady("the node has not joined the DHT yet; try again in a moment")
        invite = self._node.invite(args.days)
        return InviteView(
            invite=invite.text,
            address=invite.address.text,
            contacts=len(invite.seeds),
            expires=float(invite.expires),
        )

    async def op_bootstrap_add(self, args: SeedArgs) -> None:
        await self._node.join_through(parse_seed(args.contact), "configured")

    async def op_bootstrap_list(self, args: NoArgs) -> list[SeedView]:
        return [
            SeedView(contact=f"{onion_address_from_public_key(key)}.onion:{port}", source=source)
            for key, port, source in self._node.store.dht_seeds()
        ]

    async def op_bootstrap_remove(self, args: SeedArgs) -> None:
        removed = [
            self._node.store.remove_dht_seed(c.public_key, c.port) for c in parse_seed(args.contact)
        ]
        if not any(removed):
            raise LocalError("this node was not joining through that contact")

    async def op_lookup(self, args: AddressArgs) -> LookupView:
        ctx = self._node.context
        address = Address.parse(ctx.peer_address(args.address))
        try:
            period, registration = await ctx.resolve(address.public_key)
        except NotRegistered as exc:
            dht = self._node.dht
            if dht is not None and len(dht.node.routing) == 0:
                return LookupView(
                    found=False,
                    reason=f"{exc}; this node knows no other DHT node yet (add a contact's invite)",
                )
            return LookupView(found=False, reason=str(exc))
        return LookupView(
            found=bool(registration.contacts),
            reason="" if registration.contacts else "the pseudonym unregistered (it is offline)",
            period=period,
            seq=registration.sequence,
            expires=float(registration.expires),
            contacts=tuple(
                OnionContactView(onion=c.onion, port=c.port) for c in registration.contacts
            ),
        )

    async def op_shutdown(self, args: NoArgs) -> None:
        self._node.stop()


class Node:
    """One running anonsip node."""

    def __init__(
        self,
        home: Home,
        keys: Unlocked,
        config: NodeConfig,
        *,
        context: NodeContext,
        services: Sequence[NodeService],
        presence: PresenceSource | None = None,
        mailbox: MailboxSource | None = None,
        effort: Callable[[], int] = lambda: 0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.home = home
        self.keys = keys
        self.identity = keys.identity
        self.address = self.identity.address.text
        self.config = config
        self.clock = clock
        self.context = context
        self.store = context.store
        self._presence: PresenceSource = presence or _NoPresence()
        self._mailbox = mailbox
        self._effort = effort  # what our registration advertises (the messaging gate's)
        self.services = ServiceTable([_NodeOps(self), *services])
        self.tor: Tor | None = None
        self.dht: OnionDht | None = None
        self.links: LinkTable | None = None
        self.registrar: Registrar | None = None
        self.onion_address = ""
        self.bootstrap = BootstrapStatus(progress=0, tag="starting", summary="Starting tor")
        self.phase = NodePhase.STARTING
        self._control: ControlServer | None = None
        self._stop = trio.Event()
        self._ready = trio.Event()
        self._contact_keys: set[bytes] | None = None
        context.connect(
            publish=self.publish,
            contacts_changed=self._contacts_changed,
            status_changed=self._publish_status,
            stop=self.stop,
            seeds_learned=self.join_through,
            effort_changed=self._effort_changed,
        )

    # -- events and status --------------------------------------------------------------

    def publish(self, event: str, view: View) -> None:
        expected = EVENTS.get(event)
        if expected is None or not isinstance(view, expected):
            raise TypeError(f"the control schema has no {event!r} event of {type(view).__name__}")
        if self._control is not None:
            self._control.publish(event, view.encode())

    def _publish_status(self) -> None:
        self.publish("status", self.status())

    def identity_view(self, *, with_invite: bool = False) -> IdentityView:
        ident = self.identity
        return IdentityView(
            nick=ident.nickname,
            address=ident.address.text,
            sip_uri=ident.address.sip_uri,
            onion_address=self.onion_address,
            invite=self.invite().text if with_invite and self.dht is not None else "",
        )

    def status(self) -> StatusView:
        reg = self.registrar.state if self.registrar else RegistrationState(state="unregistered")
        return StatusView(
            phase=self.phase,
            tor=TorView(progress=self.bootstrap.progress, phase=self.bootstrap.summary),
            onion_address=self.onion_address,
            identity=self.identity_view(),
            dht=self._dht_view(),
            registration=RegistrationView(
                state=reg.state,
                period=reg.period,
                seq=reg.seq,
                expires=reg.expires,
                stored_at=reg.stored_at,
            ),
            outbox=self.store.outbox_size(),
            mailbox=MailboxView(
                last_collected=self._mailbox.last_collected if self._mailbox else 0.0,
                waiting=self._mailbox.waiting() if self._mailbox else 0,
            ),
            presence=self._presence.own(),
            links=self.links.statistics()["links"] if self.links else 0,
            restart=self.config.restart_command,
        )

    def _dht_view(self) -> DhtView:
        if self.dht is None:
            return DhtView()
        stats = self.dht.node.statistics()
        alone = stats.routing_contacts == 0
        hint = (
            "this node knows no other node of the DHT yet, so nobody can find you and you "
            "can find nobody: add a contact's invite (anonsip contacts add INVITE --nick NAME)"
            if alone
            else ""
        )
        return DhtView(
            routing_table=stats.routing_contacts,
            records=stats.stored_records,
            deposits=stats.stored_deposits,
            deposit_bytes=stats.deposit_bytes,
            alone=alone,
            hint=hint,
        )

    def invite(self, days: int = 7) -> Invite:
        """An invite: our address and up to four DHT contacts we know, not our own DHT node
        (unless we know nobody else), so it does not tie the pseudonym to its DHT node."""
        seeds: list[DhtSeed] = []
        if self.dht is not None:
            known = [c for c in self.dht.node.routing.contacts() if c != self.dht.contact]
            random.SystemRandom().shuffle(known)
            chosen = known[:INVITE_CONTACTS] or [self.dht.contact]
            seeds = [DhtSeed(key=c.public_key, port=c.port) for c in chosen]
        expires = int(self.clock()) + days * 86400
        return Invite(address=self.identity.address, seeds=tuple(seeds), expires=expires)

    def _set_phase(self, phase: NodePhase) -> None:
        self.phase = phase
        self._publish_status()

    def stop(self) -> None:
        self._stop.set()

    async def wait_ready(self) -> None:
        await self._ready.wait()

    def _contacts_changed(self) -> None:
        self._contact_keys = None  # read again on next use
        if self.links is not None:
            self.links.contacts_changed()
        for service in self.services.services:
            service.contacts_changed()

    def _link_up(self, peer_key: bytes) -> None:
        for service in self.services.services:
            service.link_up(peer_key)

    def _registration_found(self, peer_key: bytes, registration: Registration) -> None:
        for service in self.services.services:
            service.registration_found(peer_key, registration)

    def _effort_changed(self) -> None:
        if self.registrar is not None:
            self.registrar.effort_changed()

    # -- the control API ----------------------------------------------------------------

    def _control_handlers(self) -> dict[str, Callable[[Mapping[str, Any]], Any]]:
        table = self.services

        def handler(name: str) -> Callable[[Mapping[str, Any]], Any]:
            async def run(raw: Mapping[str, Any]) -> Any:
                return await table.call(name, raw)

            return run

        return {name: handler(name) for name in table.ops}

    # -- running ------------------------------------------------------------------------

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        try:
            async with (
                ControlServer(self.home.control_path, self._control_handlers()) as control,
                trio.open_nursery() as nursery,
            ):
                self._control = control
                nursery.start_soon(self._watch_signals)
                task_status.started()
                await self._run_overlay()
                nursery.cancel_scope.cancel()
        finally:
            self._control = None
            self.store.close()

    async def _watch_signals(self) -> None:
        with trio.open_signal_receiver(signal.SIGTERM, signal.SIGHUP, signal.SIGINT) as signals:
            async for _ in signals:
                log.info("stopping on a signal")
                self._stop.set()

    async def _run_overlay(self) -> None:
        """Tor, the DHT and the services; if tor dies under us, start it all again."""
        testnet = TestnetInfo.load(self.config.testnet) if self.config.testnet else None
        failures = 0
        while True:
            try:
                await self._run_overlay_once(testnet)
            except TorDied as exc:
                if self._stop.is_set():
                    return
                failures += 1
                self.context.overlay_down()
                self.tor, self.dht, self.links, self.registrar = None, None, None, None
                self._set_phase(NodePhase.RECONNECTING)
                delay = min(RESTART_MAX_DELAY_S, RESTART_DELAY_S * 2 ** (failures - 1))
                log.warning(
                    "tor died (exit status %s); starting it again in %.0f s", exc.returncode, delay
                )
                with trio.move_on_after(delay):  # a back-off, or the user's stop
                    await self._stop.wait()
                if self._stop.is_set():
                    return
            else:
                return

    async def _run_overlay_once(self, testnet: TestnetInfo | None) -> None:
        running = trio.Event()
        # open_tor outermost: TorDied then comes out of it as itself, not in a group.
        async with (
            open_tor(
                self.home.tor_dir,
                testnet=testnet,
                bridges=self.config.bridges,
                control=self.config.tor_control,
                control_password=self.config.tor_control_password,
            ) as tor,
            trio.open_nursery() as nursery,
        ):
            # A stop asked for while tor (re)starts ends the start-up at once.
            nursery.start_soon(self._cancel_on_stop_before_running, nursery.cancel_scope, running)
            self.tor = tor
            self._set_phase(NodePhase.BOOTSTRAPPING)
            await tor.wait_bootstrapped(
                self.config.bootstrap_timeout, on_progress=self._on_bootstrap
            )
            self._set_phase(NodePhase.JOINING)
            async with start_onion_dht(tor, self.keys.dht_seed, config=self.config.dht) as dht:
                self.dht = dht
                await self._join_dht(dht)
                await self._run_services(tor, dht, running)
            nursery.cancel_scope.cancel()

    async def _cancel_on_stop_before_running(
        self, scope: trio.CancelScope, running: trio.Event
    ) -> None:
        await self._stop.wait()
        if not running.is_set():
            scope.cancel()

    def _on_bootstrap(self, status: BootstrapStatus) -> None:
        self.bootstrap = status
        self._publish_status()

    def _seed_sources(self, dht: OnionDht) -> list[SeedSource]:
        sources = seed_sources(self.store, self.config.bootstrap_dirs, self.config.testnet)
        return [
            SeedSource(name=s.name, contacts=tuple(c for c in s.contacts if c != dht.contact))
            for s in sources
        ]

    async def _join_dht(self, dht: OnionDht) -> None:
        """Join through the first source that works: saved, invites, configured, network."""

        def everyone() -> list[DhtContact]:
            # Re-read when the table empties: the network's list keeps growing.
            return [c for source in self._seed_sources(dht) for c in source.contacts]

        dht.node.bootstrap_source = everyone
        dht.node.on_rejoined = self._rejoined
        for source in self._seed_sources(dht):
            if not source.contacts:
                continue
            joined = await dht.node.bootstrap(list(source.contacts))
            log.info("joined the DHT through %s contacts: %d nodes known", source.name, joined)
            if joined:
                break
        else:
            log.warning("this node knows no other DHT node yet: add a contact's invite")
        if self.config.testnet is not None:
            try:
                BootstrapList(self.config.testnet).add_self(dht.contact)
            except OSError as exc:
                log.warning("could not add ourselves to a bootstrap list: %s", exc.strerror)

    def _rejoined(self) -> None:
        """The DHT node joined again an empty table: clients see it fill, and the
        registrar stores again what it stored while the node was alone."""
        self._publish_status()
        if self.registrar is not None:
            self.registrar.rejoined()

    async def join_through(self, contacts: Sequence[DhtContact], source: str) -> None:
        """New contacts to join through (an invite, ``bootstrap add``): keep them, and use
        them now if this node is alone."""
        seeds = [(c.public_key, c.port) for c in contacts]
        self.store.add_dht_seeds(source, seeds, self.clock())
        dht = self.dht
        if dht is not None and len(dht.node.routing) == 0 and contacts:
            joined = await dht.node.bootstrap(list(contacts))
            log.info("joined the DHT through new %s contacts: %d nodes known", source, joined)
            if joined:
                self._rejoined()
            else:
                self._publish_status()

    async def _keep_good_contacts(self, dht: OnionDht) -> None:
        """Every few minutes, the routing table's contacts go to the store for the next start."""
        while True:
            await trio.sleep(SAVE_CONTACTS_INTERVAL_S)
            self._save_contacts(dht)

    def _save_contacts(self, dht: OnionDht) -> None:
        good = [c for c in dht.node.routing.contacts() if c != dht.contact][:SAVED_CONTACTS]
        if good:
            self.store.add_dht_seeds("saved", [(c.public_key, c.port) for c in good], self.clock())

    async def _run_services(self, tor: Tor, dht: OnionDht, running: trio.Event) -> None:
        resolver = Resolver(dht.client, clock=self.clock, periods=self.config.periods)

        async def resolve(peer: bytes) -> tuple[int, Registration]:
            period, registration = await resolver.lookup(peer)
            self._registration_found(peer, registration)
            return period, registration

        async def lookup(peer: bytes) -> tuple[Contact, ...]:
            _, registration = await resolve(peer)
            return registration.contacts

        async def open_stream(onion: str, port: int, *, isolation: str) -> trio.abc.Stream:
            return await tor.open_stream(onion, port, isolation=isolation, timeout=30)

        async with trio.open_nursery() as services:
            links = LinkTable(
                self.identity,
                open_stream=open_stream,
                lookup=lookup,
                on_incoming=self._on_incoming,
                on_media=self._on_media,
                on_contact=self._remember_contact,
                rng=secrets.token_bytes,
                nursery=services,
                is_contact=self._is_contact,
            )
            self.links = links
            services.start_soon(links.sweep_idle)
            services.start_soon(self._keep_good_contacts, dht)
            links.link_up_listeners.append(self._link_up)
            self._load_contact_cache(links)
            self.registrar = Registrar(
                self.identity,
                dht.client,
                rng=secrets.token_bytes,
                clock=self.clock,
                periods=self.config.periods,
                on_change=lambda _state: self._publish_status(),
                shared_random_changed=dht.shared_random.wait_changed,
                effort=self._effort,
            )
            key = OnionKey.from_seed(self.keys.onion_seed)
            async with tor.publish_service(links.serve, virtual_port=SIP_PORT, key=key) as svc:
                self.onion_address = svc.address
                self._set_phase(NodePhase.PUBLISHING)
                await svc.wait_published()
                self.context.overlay_up(links, resolve)
                if self._mailbox is not None:
                    self._mailbox.attach(dht.client)
                self.registrar.set_contacts((Contact(onion=svc.hostname, port=SIP_PORT),))
                await services.start(self.registrar.run)
                for service in self.services.services:
                    await services.start(service.run)
                running.set()
                self._ready.set()
                self._set_phase(NodePhase.RUNNING)
                log.info("the node is running")
                await self._stop.wait()
                await self._say_goodbye()
                services.cancel_scope.cancel()
            self.context.overlay_down()
            if self._mailbox is not None:
                self._mailbox.attach(None)
            with trio.CancelScope(shield=True):
                await links.aclose()

    async def _say_goodbye(self) -> None:
        """Services first (links still up), then unregister; each bounded in time."""
        self._set_phase(NodePhase.STOPPING)
        if self.dht is not None:
            self._save_contacts(self.dht)
        with trio.CancelScope(shield=True):
            with trio.move_on_after(GOODBYE_TIMEOUT_S):
                async with trio.open_nursery() as goodbyes:
                    for service in self.services.services:
                        goodbyes.start_soon(service.stopping)
            with trio.move_on_after(UNREGISTER_TIMEOUT_S):
                try:
                    assert self.registrar is not None
                    await self.registrar.unregister()
                except* AnonsipError as group:  # each period is unregistered in a task
                    log.info("could not unregister: %s", group.exceptions[0])

    # -- peers ----------------------------------------------------------------------------

    def _is_contact(self, peer: bytes) -> bool:
        """A peer whose link we keep: a contact (asked or accepted), not a blocked one."""
        if self._contact_keys is None:
            self._contact_keys = {
                Address.parse(c.address).public_key
                for c in self.store.contacts()
                if c.state is not ContactState.BLOCKED
            }
        return peer in self._contact_keys

    def _remember_contact(self, peer: bytes, contact: Contact) -> None:
        address = Address(peer).text
        if self.store.contact(address) is not None:
            blob = f"{contact.onion}:{contact.port}".encode()
            self.store.set_contact_cache(address, blob, int(self.clock() * 1000))

    def _load_contact_cache(self, links: LinkTable) -> None:
        for contact in self.store.contacts():
            if contact.cache is None:
                continue
            onion, _, port = contact.cache.decode(errors="replace").partition(":")
            try:
                links.remember(
                    Address.parse(contact.address).public_key,
                    Contact(onion=onion, port=int(port)),
                )
            except (AnonsipError, ValueError):
                continue

    async def _on_incoming(self, link: PeerLink, event: SipEvent) -> None:
        service = self.services.route(event)
        if service is not None:
            await service.on_sip(link, event)
            return
        if not isinstance(event, RequestReceived):
            return
        method = event.request.method
        if method == "OPTIONS":
            await link.respond(event.request, 200)
        elif method in ("SUBSCRIBE", "NOTIFY"):
            await link.respond(event.request, 489)  # Bad Event (RFC 6665 8.3.1)
        else:
            await link.respond(event.request, 405)

    async def _on_media(self, stream: trio.abc.Stream) -> None:
        if self.services.media is None:
            await trio.aclose_forcefully(stream)
            return
        await self.services.media.on_media(stream)
