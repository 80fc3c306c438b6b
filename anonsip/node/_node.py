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
import secrets
import signal
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import trio

from anonsip._errors import AnonsipError
from anonsip.admission import DEFAULT_DIFFICULTY
from anonsip.control import (
    EVENTS,
    AddressArgs,
    ControlServer,
    DhtView,
    IdentityView,
    LookupView,
    NoArgs,
    NodePhase,
    OnionContactView,
    PresenceView,
    RegistrationView,
    StatusView,
    TorView,
    View,
)
from anonsip.dht import BootstrapList, DhtConfig, OnionDht, start_onion_dht
from anonsip.dht import Contact as DhtContact
from anonsip.identity import TOR_TIME_PERIODS, Address, TimePeriods
from anonsip.node._context import NodeContext
from anonsip.node._home import Home, Unlocked
from anonsip.node._link import PeerLink
from anonsip.node._links import LinkTable
from anonsip.node._registrar import Registrar, RegistrationState
from anonsip.node._resolver import NotRegistered, Resolver
from anonsip.node._service import NodeService, OperationHandler, ServiceTable
from anonsip.registration import Contact
from anonsip.sip import RequestReceived, SipEvent
from anonsip.store import ContactState
from onion import BootstrapStatus, OnionKey, Tor, TorDied, open_tor
from onion.testnet import TestnetInfo

__all__ = ["SIP_PORT", "Node", "NodeConfig", "PresenceSource"]

log = logging.getLogger(__name__)

SIP_PORT = 5061
UNREGISTER_TIMEOUT_S = 3.0
RESTART_DELAY_S = 1.0  # tor died: start it again after this, doubling up to the maximum
RESTART_MAX_DELAY_S = 60.0
GOODBYE_TIMEOUT_S = 3.0


@dataclass(frozen=True, kw_only=True)
class NodeConfig:
    testnet: Path | None = None
    bootstrap_dirs: tuple[Path, ...] = ()
    periods: TimePeriods = TOR_TIME_PERIODS
    pow_difficulty: int = DEFAULT_DIFFICULTY
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
            "shutdown": self.op_shutdown,
        }

    async def op_status(self, args: NoArgs) -> StatusView:
        return self._node.status()

    async def op_identity(self, args: NoArgs) -> IdentityView:
        return self._node.identity_view()

    async def op_lookup(self, args: AddressArgs) -> LookupView:
        ctx = self._node.context
        address = Address.parse(ctx.peer_address(args.address))
        try:
            period, registration = await ctx.resolve(address.public_key)
        except NotRegistered as exc:
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

    def identity_view(self) -> IdentityView:
        ident = self.identity
        return IdentityView(
            nick=ident.nickname,
            address=ident.address.text,
            sip_uri=ident.address.sip_uri,
            onion_address=self.onion_address,
        )

    def status(self) -> StatusView:
        reg = self.registrar.state if self.registrar else RegistrationState(state="unregistered")
        dht_stats = self.dht.node.statistics() if self.dht else None
        return StatusView(
            phase=self.phase,
            tor=TorView(progress=self.bootstrap.progress, phase=self.bootstrap.summary),
            onion_address=self.onion_address,
            identity=self.identity_view(),
            dht=DhtView(
                routing_table=dht_stats.routing_contacts if dht_stats else 0,
                records=dht_stats.stored_records if dht_stats else 0,
            ),
            registration=RegistrationView(
                state=reg.state,
                period=reg.period,
                seq=reg.seq,
                expires=reg.expires,
                stored_at=reg.stored_at,
            ),
            outbox=self.store.outbox_size(),
            presence=self._presence.own(),
            links=self.links.statistics()["links"] if self.links else 0,
            restart=self.config.restart_command,
        )

    def _set_phase(self, phase: NodePhase) -> None:
        self.phase = phase
        self._publish_status()

    def stop(self) -> None:
        self._stop.set()

    async def wait_ready(self) -> None:
        await self._ready.wait()

    def _contacts_changed(self) -> None:
        self._contact_keys = None  # read again on next use
        for service in self.services.services:
            service.contacts_changed()

    def _link_up(self, peer_key: bytes) -> None:
        for service in self.services.services:
            service.link_up(peer_key)

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

    def _bootstrap_lists(self) -> list[BootstrapList]:
        dirs = list(self.config.bootstrap_dirs)
        if self.config.testnet is not None:
            dirs.append(self.config.testnet)
        return [BootstrapList(d) for d in dirs]

    async def _join_dht(self, dht: OnionDht) -> None:
        lists = self._bootstrap_lists()

        def listed() -> list[DhtContact]:
            return [c for bl in lists for c in bl.contacts() if c != dht.contact]

        # Others keep adding themselves to the list: read it again when alone.
        dht.node.bootstrap_source = listed
        contacts = listed()
        if contacts:
            joined = await dht.node.bootstrap(contacts)
            log.info("joined the DHT through %d of %d contacts", joined, len(contacts))
        for bl in lists:
            try:
                bl.add_self(dht.contact)
            except OSError as exc:
                log.warning("could not add ourselves to a bootstrap list: %s", exc.strerror)

    async def _run_services(self, tor: Tor, dht: OnionDht, running: trio.Event) -> None:
        resolver = Resolver(dht.node, clock=self.clock, periods=self.config.periods)

        async def lookup(peer: bytes) -> tuple[Contact, ...]:
            _, registration = await resolver.lookup(peer)
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
            links.link_up_listeners.append(self._link_up)
            self._load_contact_cache(links)
            self.registrar = Registrar(
                self.identity,
                dht.node,
                rng=secrets.token_bytes,
                clock=self.clock,
                periods=self.config.periods,
                on_change=lambda _state: self._publish_status(),
            )
            key = OnionKey.from_seed(self.keys.onion_seed)
            async with tor.publish_service(links.serve, virtual_port=SIP_PORT, key=key) as svc:
                self.onion_address = svc.address
                self._set_phase(NodePhase.PUBLISHING)
                await svc.wait_published()
                self.context.overlay_up(links, resolver.lookup)
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
            with trio.CancelScope(shield=True):
                await links.aclose()

    async def _say_goodbye(self) -> None:
        """Services first (links still up), then unregister; each bounded in time."""
        self._set_phase(NodePhase.STOPPING)
        with trio.CancelScope(shield=True):
            with trio.move_on_after(GOODBYE_TIMEOUT_S):
                async with trio.open_nursery() as goodbyes:
                    for service in self.services.services:
                        goodbyes.start_soon(service.stopping)
            with trio.move_on_after(UNREGISTER_TIMEOUT_S):
                try:
                    assert self.registrar is not None
                    await self.registrar.unregister()
                except AnonsipError as exc:
                    log.info("could not unregister: %s", exc)

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
