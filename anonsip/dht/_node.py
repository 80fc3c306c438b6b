"""``DhtNode``: the trio adapter that runs the sans-IO DHT cores on real streams.

It serves incoming streams handed to ``serve_stream`` (the onion listener
calls it for every connection) and reaches other nodes through an injected
``dial(contact) -> trio.abc.Stream``, so the same code runs over Tor onion
streams and over in-memory streams in tests. Outbound RPCs share one
persistent stream per peer (a bounded pool, least-recently-used and idle
streams closed first); every request, including the dial and handshake it
may need, has its own deadline. Background work (bucket refresh, republish
of our own records, replication of stored ones, expiry sweep, idle close,
re-bootstrap when the table empties) runs in the nursery the node owns
while inside ``async with``.
"""

from __future__ import annotations

import contextlib
import logging
import random
import secrets
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from types import TracebackType

import trio

from anonsip._errors import AnonsipError, LocalError, RemoteProtocolError
from anonsip.dht._identity import Contact, NodeId, NodeIdentity, verify_identity_proof
from anonsip.dht._lookup import Lookup, LookupKind, LookupResult
from anonsip.dht._messages import (
    Challenge,
    Envelope,
    Error,
    FindNode,
    FindValue,
    Ping,
    Proof,
    Reply,
    Request,
    Store,
    StoreResult,
)
from anonsip.dht._protocol import DhtProtocol
from anonsip.dht._record import DhtRecord
from anonsip.dht._routing import RoutingTable
from anonsip.dht._rpc import Connection, MessageStream, refusal
from anonsip.dht._store import RecordStore, StoreOutcome

__all__ = ["DhtConfig", "DhtNode", "DhtStatistics", "Dialer"]

log = logging.getLogger(__name__)

Dialer = Callable[[Contact], Awaitable[trio.abc.Stream]]
_REQUEST_TYPES = (Ping, FindNode, FindValue, Store)


@dataclass(frozen=True, slots=True, kw_only=True)
class DhtConfig:
    k: int = 20
    alpha: int = 3
    paths: int = 2
    difficulty: int = 0
    rpc_timeout: float = 10.0
    handshake_timeout: float = 10.0
    max_connections: int = 64
    max_pending_per_connection: int = 32
    max_inbound: int = 256
    idle_timeout: float = 120.0
    maintenance_interval: float = 30.0
    refresh_interval: float = 3600.0
    republish_interval: float = 1800.0
    replicate_interval: float = 3600.0
    max_replications_per_round: int = 256
    max_own_records: int = 64


@dataclass(frozen=True, slots=True, kw_only=True)
class DhtStatistics:
    routing_contacts: int
    stored_records: int
    own_records: int
    open_streams: int
    inbound_streams: int


class DhtNode:
    """One DHT node; use as ``async with DhtNode(...) as node:``."""

    def __init__(
        self,
        identity: NodeIdentity,
        *,
        dial: Dialer,
        config: DhtConfig | None = None,
        clock: Callable[[], float] = time.time,
        rng: random.Random | None = None,
        store: RecordStore | None = None,
        dial_errors: tuple[type[BaseException], ...] = (),
    ) -> None:
        self.identity = identity
        self.config = config or DhtConfig()
        self._dial = dial
        self._clock = clock
        # Only picks bucket-refresh targets, never keys or nonces.
        self._rng = rng or random.Random(secrets.randbits(64))  # noqa: S311
        self._dial_errors: tuple[type[BaseException], ...] = (
            OSError,
            AnonsipError,
            trio.BrokenResourceError,
            *dial_errors,
        )
        self.contact = identity.contact
        self.routing = RoutingTable(
            self.contact.node_id,
            now=clock(),
            rng=self._rng,
            k=self.config.k,
            refresh_interval=self.config.refresh_interval,
        )
        self.store = store or RecordStore()
        self.protocol = DhtProtocol(contact=self.contact, routing=self.routing, store=self.store)
        self._connections: OrderedDict[NodeId, Connection] = OrderedDict()
        self._dialing: dict[NodeId, trio.Event] = {}
        self._inbound: set[trio.abc.Stream] = set()
        self._own: OrderedDict[bytes, DhtRecord] = OrderedDict()
        self._bootstrap: list[Contact] = []
        # Re-read when the table is empty (a bootstrap file other nodes keep
        # adding to); without it the node retries the contacts it was given.
        self.bootstrap_source: Callable[[], Sequence[Contact]] | None = None
        self._nursery: trio.Nursery | None = None
        self._nursery_manager: contextlib.AbstractAsyncContextManager[trio.Nursery] | None = None
        self._last_republish = clock()
        self._last_replicate = clock()

    # -- lifetime -------------------------------------------------------------

    async def __aenter__(self) -> DhtNode:
        manager = trio.open_nursery()
        self._nursery = await manager.__aenter__()
        self._nursery_manager = manager
        self._nursery.start_soon(self._maintenance)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool | None:
        assert self._nursery is not None
        assert self._nursery_manager is not None
        manager = self._nursery_manager
        try:
            self._nursery.cancel_scope.cancel()
            # Shielded: the nursery's own scope is cancelled, and the nursery
            # must be exited below whatever happens here.
            with trio.CancelScope(shield=True):
                for stream in list(self._inbound):
                    await trio.aclose_forcefully(stream)
                for conn in list(self._connections.values()):
                    await conn.aclose()
        finally:
            self._nursery, self._nursery_manager = None, None
            result: bool | None = await manager.__aexit__(exc_type, exc, tb)
        return result

    def _running(self) -> trio.Nursery:
        if self._nursery is None:
            raise LocalError("use the DHT node inside 'async with'")
        return self._nursery

    def statistics(self) -> DhtStatistics:
        return DhtStatistics(
            routing_contacts=len(self.routing),
            stored_records=len(self.store),
            own_records=len(self._own),
            open_streams=sum(1 for c in self._connections.values() if c.usable),
            inbound_streams=len(self._inbound),
        )

    # -- serving ----------------------------------------------------------------

    async def serve_stream(self, stream: trio.abc.Stream) -> None:
        """Serve one incoming stream until it ends; returns quietly on peer errors."""
        self._running()
        if len(self._inbound) >= self.config.max_inbound:
            await trio.aclose_forcefully(stream)
            return
        self._inbound.add(stream)
        messages = MessageStream(stream)
        try:
            peer = await self._verify_caller(messages)
            if peer is not None:
                await self._serve_requests(peer, messages)
        except RemoteProtocolError as exc:
            log.info("closing an incoming DHT stream: %s", exc)
            try:
                with trio.move_on_after(1):
                    await messages.send(refusal(str(exc)))
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                pass
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass
        finally:
            self._inbound.discard(stream)
            await trio.aclose_forcefully(stream)

    async def _verify_caller(self, messages: MessageStream) -> Contact | None:
        nonce = secrets.token_bytes(32)
        await messages.send(Envelope(request_id=0, message=Challenge(nonce=nonce)))
        with trio.move_on_after(self.config.handshake_timeout):
            envelope = await messages.receive()
            if envelope is None:
                return None
            proof = envelope.message
            if not isinstance(proof, Proof):
                raise RemoteProtocolError("a DHT caller must prove its identity first")
            return verify_identity_proof(
                callee_public_key=self.identity.public_key,
                nonce=nonce,
                caller_public_key=proof.public_key,
                caller_port=proof.port,
                signature=proof.signature,
                difficulty=self.config.difficulty,
            )
        return None

    async def _serve_requests(self, peer: Contact, messages: MessageStream) -> None:
        while True:
            with trio.move_on_after(self.config.idle_timeout):
                envelope = await messages.receive()
                if envelope is None:
                    return
                request = envelope.message
                if not isinstance(request, _REQUEST_TYPES):
                    raise RemoteProtocolError("expected a DHT request")
                handled = self.protocol.handle(peer, request, self._clock())
                if handled.ping is not None:
                    self._running().start_soon(self._check_liveness, handled.ping)
                await messages.send(Envelope(request_id=envelope.request_id, message=handled.reply))
                continue
            return  # idle for too long

    async def _check_liveness(self, contact: Contact) -> None:
        alive = await self._call(contact, Ping()) is not None
        self.routing.ping_result(contact, alive=alive)

    # -- calling out -------------------------------------------------------------

    async def _connection(self, contact: Contact) -> Connection:
        while True:
            conn = self._connections.get(contact.node_id)
            if conn is not None and conn.usable:
                self._connections.move_to_end(contact.node_id)
                return conn
            if conn is not None:
                del self._connections[contact.node_id]
            dialing = self._dialing.get(contact.node_id)
            if dialing is None:
                break
            await dialing.wait()  # share a dial already in progress
        done = self._dialing[contact.node_id] = trio.Event()
        try:
            stream = await self._dial(contact)
            try:
                conn = await Connection.open(
                    stream,
                    identity=self.identity,
                    contact=contact,
                    max_pending=self.config.max_pending_per_connection,
                )
            except BaseException:
                await trio.aclose_forcefully(stream)
                raise
            await self._make_room()
            self._connections[contact.node_id] = conn
            self._running().start_soon(conn.read_loop)
            return conn
        finally:
            del self._dialing[contact.node_id]
            done.set()

    async def _make_room(self) -> None:
        while len(self._connections) >= self.config.max_connections:
            idle = [n for n, c in self._connections.items() if c.pending == 0]
            victim = idle[0] if idle else next(iter(self._connections))
            await self._connections.pop(victim).aclose()

    async def _call(self, contact: Contact, request: Request) -> Reply | None:
        """One RPC with its deadline; None if the peer did not answer in time or at all."""
        with trio.move_on_after(self.config.rpc_timeout):
            try:
                conn = await self._connection(contact)
                reply = await conn.request(request)
            except self._dial_errors as exc:
                log.debug("DHT request to %r failed: %s", contact, exc)
                self.routing.failed(contact)
                return None
            ping = self.routing.seen(contact)  # it answered on its own onion: verified
            if ping is not None:
                self._running().start_soon(self._check_liveness, ping)
            return reply
        self.routing.failed(contact)
        return None

    async def _run_lookup(self, kind: LookupKind, target: NodeId) -> LookupResult:
        seeds = self.routing.closest(target, self.config.k) or list(self._bootstrap)
        lookup = Lookup(
            kind=kind,
            target=target,
            own_id=self.contact.node_id,
            seeds=seeds,
            now=self._clock(),
            k=self.config.k,
            alpha=self.config.alpha,
            paths=self.config.paths,
            difficulty=self.config.difficulty,
        )
        capacity = self.config.alpha * self.config.paths
        wake_send, wake_receive = trio.open_memory_channel[None](capacity)

        async def ask(contact: Contact, request: Request) -> None:
            reply = None
            timed_out = True
            with trio.move_on_after(self.config.rpc_timeout):
                reply = await self._call(contact, request)
                timed_out = False
            if reply is not None:
                lookup.on_response(contact, reply)
            elif timed_out:
                lookup.on_timeout(contact)
            else:
                lookup.on_failure(contact)
            await wake_send.send(None)

        async with trio.open_nursery() as nursery:
            in_flight = 0
            while not lookup.done:
                for contact, request in lookup.next_requests():
                    in_flight += 1
                    nursery.start_soon(ask, contact, request)
                if lookup.done or in_flight == 0:
                    break
                await wake_receive.receive()
                in_flight -= 1
            nursery.cancel_scope.cancel()  # answers we no longer need
        self.routing.touch(target, self._clock())
        return lookup.result()

    # -- public API -----------------------------------------------------------------

    async def bootstrap(self, contacts: Sequence[Contact]) -> int:
        """Join through ``contacts``; returns how many contacts the table holds afterwards.

        They are remembered: if every contact is later lost, the node joins
        through them again.
        """
        self._bootstrap = [c for c in contacts if c.node_id != self.contact.node_id]
        async with trio.open_nursery() as nursery:
            for contact in self._bootstrap:
                nursery.start_soon(self._call, contact, Ping())
        if len(self.routing) == 0:
            return 0
        await self._run_lookup(LookupKind.FIND_NODE, self.contact.node_id)
        await self._refresh(force=True)
        return len(self.routing)

    async def find_node(self, node_id: NodeId) -> list[Contact]:
        """The k live nodes closest to ``node_id`` that answered."""
        result = await self._run_lookup(LookupKind.FIND_NODE, node_id)
        return list(result.closest)

    async def get(self, key: bytes) -> DhtRecord | None:
        """The newest valid record under ``key`` (SHA3-256 of its public key), if found."""
        if len(key) != 32:
            raise LocalError("a DHT key is 32 bytes")
        result = await self._run_lookup(LookupKind.FIND_VALUE, NodeId.from_bytes(key))
        now = self._clock()
        candidates = [r for r in (result.record, self.store.get(key, now)) if r is not None]
        valid = [r for r in candidates if r.is_valid_for(key, now)]
        return max(valid, key=lambda r: r.seq, default=None)

    async def put(self, record: DhtRecord) -> int:
        """Store ``record`` on the k closest nodes; returns how many accepted it.

        The node republishes it until it expires or a newer version is put.
        """
        now = self._clock()
        if not record.is_valid_for(record.key, now):
            raise LocalError("refusing to publish an expired or badly signed record")
        self._own[record.key] = record
        self._own.move_to_end(record.key)
        while len(self._own) > self.config.max_own_records:
            self._own.popitem(last=False)
        return await self._publish(record)

    async def _publish(self, record: DhtRecord) -> int:
        target = NodeId.from_bytes(record.key)
        closest = await self.find_node(target)
        accepted = 0
        # We are one of the k closest nodes too when fewer than k are closer:
        # keep a copy, so a small network (or a lone first node) still serves it.
        own = self.contact.node_id
        if len(closest) < self.config.k or own.distance(target) < max(
            c.node_id.distance(target) for c in closest
        ):
            outcome = self.store.put(record, peer=own, now=self._clock())
            if outcome.value in _ACCEPTED:
                accepted += 1

        async def store_at(contact: Contact) -> None:
            nonlocal accepted
            reply = await self._call(contact, Store(record=record))
            if isinstance(reply, StoreResult) and reply.outcome in _ACCEPTED:
                accepted += 1
            elif isinstance(reply, StoreResult | Error):
                log.info("DHT node %r did not store a record: %s", contact, reply)

        async with trio.open_nursery() as nursery:
            for contact in closest:
                nursery.start_soon(store_at, contact)
        return accepted

    # -- maintenance ----------------------------------------------------------------

    async def _refresh(self, *, force: bool = False) -> None:
        now = self._clock()
        targets = self.routing.refresh_targets(now + (self.config.refresh_interval if force else 0))
        for target in targets:
            await self._run_lookup(LookupKind.FIND_NODE, target)

    async def _maintenance(self) -> None:
        while True:
            await trio.sleep(self.config.maintenance_interval)
            await self.maintain()

    async def maintain(self) -> None:
        """One round of background upkeep (the node runs it every ``maintenance_interval``)."""
        now = self._clock()
        self.store.sweep(now)
        for key in [k for k, r in self._own.items() if r.expiry <= now]:
            del self._own[key]
        await self._close_idle()
        if len(self.routing) == 0:
            contacts = list(self.bootstrap_source()) if self.bootstrap_source else []
            contacts = contacts or self._bootstrap
            if contacts:
                log.info("the DHT routing table is empty: joining again through the bootstrap list")
                await self.bootstrap(contacts)
        await self._refresh()
        if now - self._last_republish >= self.config.republish_interval:
            self._last_republish = now
            for record in list(self._own.values()):
                await self._publish(record)
        if now - self._last_replicate >= self.config.replicate_interval:
            self._last_replicate = now
            records = self.store.records(now)[: self.config.max_replications_per_round]
            for record in records:
                if record.key not in self._own:
                    await self._publish(record)

    async def _close_idle(self) -> None:
        cutoff = trio.current_time() - self.config.idle_timeout
        for node_id, conn in list(self._connections.items()):
            if not conn.usable or (conn.pending == 0 and conn.last_used < cutoff):
                del self._connections[node_id]
                await conn.aclose()


_ACCEPTED = {StoreOutcome.STORED.value, StoreOutcome.REFRESHED.value}
