"""The node: everything one pseudonym needs, owned by one nursery.

Start-up order follows what each part needs: the message store and the
control socket first (so a UI can watch the rest come up), then our own
tor and its bootstrap, the DHT node on its onion service, the identity's
onion service carrying secure sessions, and finally the registrar, the
outbox and the other services. Shutdown runs the other way: unregister,
then close everything; tor dies with us whatever happens.
"""

from __future__ import annotations

import logging
import secrets
import signal
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import trio

from anonsip._errors import AnonsipError
from anonsip.admission import DEFAULT_DIFFICULTY
from anonsip.control import ControlServer
from anonsip.dht import BootstrapList, DhtConfig, OnionDht, start_onion_dht
from anonsip.dht import Contact as DhtContact
from anonsip.identity import TOR_TIME_PERIODS, Address, TimePeriods
from anonsip.node._home import Home, Unlocked
from anonsip.node._link import PeerLink
from anonsip.node._links import LinkTable
from anonsip.node._messaging import Messenger
from anonsip.node._registrar import Registrar, RegistrationState
from anonsip.node._resolver import Resolver
from anonsip.registration import Contact
from anonsip.sip import AckReceived, InviteCancelled, RequestReceived, SipEvent
from anonsip.store import MessageStore
from onion import BootstrapStatus, OnionKey, Tor, launch_tor
from onion.testnet import TestnetInfo

log = logging.getLogger(__name__)

SIP_PORT = 5061


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


class Node:
    """One running anonsip node."""

    def __init__(
        self,
        home: Home,
        keys: Unlocked,
        config: NodeConfig,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.home = home
        self.keys = keys
        self.identity = keys.identity
        self.address = self.identity.address.text
        self.config = config
        self.clock = clock
        self.store = MessageStore.open(home.store_path, keys.store_key)
        self.tor: Tor | None = None
        self.dht: OnionDht | None = None
        self.links: LinkTable | None = None
        self.messenger: Messenger | None = None
        self.registrar: Registrar | None = None
        self.resolver: Resolver | None = None
        self.onion_address = ""
        self.bootstrap = BootstrapStatus(progress=0, tag="starting", summary="Starting tor")
        self.phase = "starting"
        self._control: ControlServer | None = None
        self._stop = trio.Event()
        self._ready = trio.Event()
        self._extensions: dict[str, Callable[[PeerLink, SipEvent], Awaitable[None]]] = {}
        self.media_handler: Callable[[trio.abc.Stream], Awaitable[None]] | None = None
        # Services (presence, calls) add control ops and hooks here before run().
        self.extra_handlers: dict[str, Callable[[Mapping[str, Any]], Awaitable[Any]]] = {}
        self.presence_of: Callable[[str], tuple[str, str]] = lambda _address: ("unknown", "")
        self.own_presence: Callable[[], dict[str, str]] = lambda: {"status": "available"}
        self.contacts_changed: Callable[[], None] = lambda: None
        # Long-running service tasks, started once the node is reachable.
        self.background: list[Callable[[], Awaitable[None]]] = []

    # -- events ----------------------------------------------------------------

    def publish(self, event: str, data: dict[str, Any]) -> None:
        if self._control is not None:
            self._control.publish(event, data)

    def _publish_status(self) -> None:
        self.publish("status", self.status())

    def status(self) -> dict[str, Any]:
        reg = self.registrar.state if self.registrar else RegistrationState(state="unregistered")
        dht_stats = self.dht.node.statistics() if self.dht else None
        return {
            "phase": self.phase,
            "tor": {"progress": self.bootstrap.progress, "phase": self.bootstrap.summary},
            "onion_address": self.onion_address,
            "identity": {"nick": self.identity.nickname, "address": self.address},
            "dht": {
                "routing_table": dht_stats.routing_contacts if dht_stats else 0,
                "records": dht_stats.stored_records if dht_stats else 0,
            },
            "registration": {
                "state": reg.state,
                "period": reg.period,
                "seq": reg.seq,
                "expires": reg.expires,
                "stored_at": reg.stored_at,
            },
            "outbox": self.store.outbox_size(),
            "presence": self.own_presence(),
            "links": self.links.statistics()["links"] if self.links else 0,
        }

    def stop(self) -> None:
        self._stop.set()

    async def wait_stopping(self) -> None:
        """Wait until the node was asked to stop (services say goodbye then)."""
        await self._stop.wait()

    async def wait_ready(self) -> None:
        await self._ready.wait()

    def register_sip_method(
        self, method: str, handler: Callable[[PeerLink, SipEvent], Awaitable[None]]
    ) -> None:
        """Services (calls, presence) take the requests of their SIP methods."""
        self._extensions[method] = handler

    # -- running -----------------------------------------------------------------

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        from anonsip.node._api import ControlApi  # the API reads the node's parts

        api = ControlApi(self)
        try:
            async with (
                ControlServer(self.home.control_path, api.handlers()) as control,
                trio.open_nursery() as nursery,
            ):
                self._control = control
                nursery.start_soon(self._watch_signals)
                task_status.started()
                await self._run_overlay(nursery)
                nursery.cancel_scope.cancel()
        finally:
            self._control = None
            self.store.close()

    async def _watch_signals(self) -> None:
        with trio.open_signal_receiver(signal.SIGTERM, signal.SIGHUP) as signals:
            async for _ in signals:
                log.info("stopping on signal")
                self._stop.set()

    async def _run_overlay(self, nursery: trio.Nursery) -> None:
        testnet = TestnetInfo.load(self.config.testnet) if self.config.testnet else None
        async with launch_tor(self.home.tor_dir, testnet=testnet) as tor:
            self.tor = tor
            self.phase = "bootstrapping tor"
            await tor.wait_bootstrapped(on_progress=self._on_bootstrap)
            self.phase = "joining the DHT"
            self._publish_status()
            async with start_onion_dht(tor, self.keys.dht_seed, config=self.config.dht) as dht:
                self.dht = dht
                await self._join_dht(dht)
                self.resolver = Resolver(dht.client, clock=self.clock, periods=self.config.periods)
                await self._run_services(tor, dht, nursery)

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
                log.warning("could not add ourselves to %s: %s", bl.path, exc)

    async def _run_services(self, tor: Tor, dht: OnionDht, nursery: trio.Nursery) -> None:
        assert self.resolver is not None
        resolver = self.resolver

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
            )
            self.links = links
            self._load_contact_cache(links)
            self.messenger = Messenger(
                self.identity,
                self.store,
                links,
                clock=self.clock,
                publish=self.publish,
                pow_difficulty=self.config.pow_difficulty,
            )
            links.link_up_listeners.append(self.messenger.peer_online)
            self.messenger.on_accepted = lambda: self.contacts_changed()
            self.registrar = Registrar(
                self.identity,
                dht.client,
                rng=secrets.token_bytes,
                clock=self.clock,
                periods=self.config.periods,
                on_change=lambda _state: self._publish_status(),
                shared_random_changed=dht.shared_random.wait_changed,
            )
            key = OnionKey.from_seed(self.keys.onion_seed)
            async with tor.publish_service(links.serve, virtual_port=SIP_PORT, key=key) as svc:
                self.onion_address = svc.address
                self.phase = "publishing"
                self._publish_status()
                await svc.wait_published()
                self.registrar.set_contacts((Contact(onion=svc.hostname, port=SIP_PORT),))
                await services.start(self.registrar.run)
                await services.start(self.messenger.run)
                for task in self.background:
                    services.start_soon(task)
                self.phase = "running"
                self._ready.set()
                self._publish_status()
                log.info("node %s is running as %s.onion", self.address, svc.address)
                await self._stop.wait()
                self.phase = "stopping"
                self._publish_status()
                with trio.move_on_after(15) as scope:
                    scope.shield = True
                    try:
                        await self.registrar.unregister()
                    except AnonsipError as exc:
                        log.info("could not unregister: %s", exc)
                services.cancel_scope.cancel()
            await links.aclose()

    # -- peers -----------------------------------------------------------------------

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
        if isinstance(event, RequestReceived):
            method = event.request.method
            if method == "MESSAGE" and self.messenger is not None:
                await self.messenger.on_message(link, event)
                return
            if method == "OPTIONS":
                await link.respond(event.request, 200)
                return
            handler = self._extensions.get(method)
            if handler is None:
                await link.respond(event.request, 405)
                return
            await handler(link, event)
        elif isinstance(event, AckReceived | InviteCancelled):
            handler = self._extensions.get("ACK" if isinstance(event, AckReceived) else "CANCEL")
            if handler is not None:
                await handler(link, event)

    async def _on_media(self, stream: trio.abc.Stream) -> None:
        if self.media_handler is None:
            await trio.aclose_forcefully(stream)
            return
        await self.media_handler(stream)
