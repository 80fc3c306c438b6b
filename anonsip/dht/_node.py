"""``DhtNode``: the long-term DHT node, the trio adapter that runs the sans-IO cores.

It serves incoming streams handed to ``serve_stream`` (the onion listener
calls it for every connection) and reaches other nodes through an injected
``dial(contact) -> trio.abc.Stream``, so the same code runs over Tor onion
streams and over in-memory streams in tests. Outbound RPCs share one
persistent stream per peer (``PeerPool``); every request, including the
dial and handshake it may need, has its own deadline and every lookup an
overall one.

The node stores, serves and replicates other people's records and mailbox
deposits and keeps its routing table; it never publishes or looks up its
own user's records, nor touches its user's mailboxes (that is
``DhtClient``'s job, anonymously). Callers that prove their node
key are dialled back on their own onion service before they may enter the
routing table. Background work (bucket refresh, replication of stored
records, taking turns through the store, expiry sweep, idle close,
re-bootstrap when the table empties, republishing deposits nobody stored
with us for an interval and moving those placed under a shared random
value that is no longer current) runs in the nursery the node owns while
inside ``async with``.
"""

from __future__ import annotations

import contextlib
import logging
import random
import secrets
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from types import TracebackType

import trio

from anonsip._errors import LocalError, RemoteProtocolError
from anonsip.dht._deposits import DepositOutcome, DepositStore
from anonsip.dht._identity import Contact, NodeId, NodeIdentity, verify_identity_proof
from anonsip.dht._lookup import Lookup, LookupKind, LookupResult, ResponseTimes
from anonsip.dht._messages import (
    Anonymous,
    Challenge,
    Collect,
    Delete,
    DepositResult,
    Envelope,
    Error,
    FindNode,
    FindValue,
    Ping,
    Proof,
    Reply,
    Request,
    Store,
    StoreDeposit,
    StoreResult,
)
from anonsip.dht._peers import Dialer, PeerPool, drive_lookup
from anonsip.dht._placement import (
    DEFAULT_REPLICAS,
    Position,
    SharedRandomSource,
    clock_shared_random,
)
from anonsip.dht._protocol import DhtProtocol
from anonsip.dht._record import DhtRecord
from anonsip.dht._routing import RoutingTable
from anonsip.dht._rpc import MessageStream, RpcTimeout, refusal
from anonsip.dht._store import RecordStore, StoreOutcome
from anonsip.mailbox import Deposit

__all__ = ["DEFAULT_DIFFICULTY", "DhtConfig", "DhtNode", "DhtStatistics", "Dialer"]

log = logging.getLogger(__name__)

_REQUEST_TYPES = (Ping, FindNode, FindValue, Store, StoreDeposit, Collect, Delete)
_ANONYMOUS_TYPES = (FindNode, FindValue, Store, StoreDeposit, Collect, Delete)
# 2**16 key generations per node id: about 1.2 s in Python on one core (it
# runs in a worker thread when a node starts), the work a Sybil pays per id.
DEFAULT_DIFFICULTY = 16
# A caller is dialled back at most once in this many seconds (we remember 4096).
_DIAL_BACK_AGAIN_AFTER = 600.0
_DIAL_BACK_MEMORY = 4096


@dataclass(frozen=True, slots=True, kw_only=True)
class DhtConfig:
    k: int = 20
    alpha: int = 3
    paths: int = 2
    difficulty: int = DEFAULT_DIFFICULTY
    replicas: int = DEFAULT_REPLICAS
    store_spread: int = 10  # nodes that get a copy at each position
    probation: float = 48 * 3600.0  # how long a contact is known before it is handed out
    rpc_timeout: float = 10.0
    # Hedging: a lookup asks another node once a request is slower than twice the median
    # of recent answers (``ResponseTimes``), between hedge_floor and half the rpc_timeout;
    # hedge_after until enough answers were seen.
    hedge_after: float = 2.0
    hedge_floor: float = 0.5
    # Once one path of a FIND_VALUE holds a value, the others (and the other positions of
    # a get) get one typical answer's time (``ResponseTimes.grace``) to find theirs.
    value_grace: bool = True
    handshake_timeout: float = 10.0
    operation_timeout: float = 60.0  # a whole lookup, store or get
    max_connections: int = 64
    max_pending_per_connection: int = 32
    max_inbound: int = 256
    max_dial_backs: int = 16
    max_anonymous_requests: int = 64  # per anonymous stream
    idle_timeout: float = 120.0
    maintenance_interval: float = 30.0
    refresh_interval: float = 3600.0
    replicate_interval: float = 3600.0
    max_replications_per_round: int = 256
    max_deposit_moves_per_round: int = 64  # mailbox locations republished per maintenance round


@dataclass(frozen=True, slots=True, kw_only=True)
class DhtStatistics:
    routing_contacts: int
    stored_records: int
    stored_deposits: int
    deposit_bytes: int  # what the stored deposits take, encoded
    open_streams: int
    inbound_streams: int
    dial_backs: int


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
        shared_random: SharedRandomSource | None = None,
        deposits: DepositStore | None = None,
    ) -> None:
        self.identity = identity
        self.config = config or DhtConfig()
        self._dial = dial
        self._dial_errors = dial_errors
        self._clock = clock
        # Only picks bucket-refresh targets, never keys or nonces.
        self._rng = rng or random.Random(secrets.randbits(64))  # noqa: S311
        self.shared_random = shared_random or clock_shared_random(clock)
        self.contact = identity.contact
        self.routing = RoutingTable(
            self.contact.node_id,
            now=clock(),
            rng=self._rng,
            k=self.config.k,
            refresh_interval=self.config.refresh_interval,
        )
        # "is None", not "or": an empty store is falsy (it has a length).
        self.store = RecordStore(replicas=self.config.replicas) if store is None else store
        self.deposits = (
            DepositStore(replicas=self.config.replicas) if deposits is None else deposits
        )
        self.protocol = DhtProtocol(
            contact=self.contact,
            routing=self.routing,
            store=self.store,
            shared_random=self.shared_random,
            probation=self.config.probation,
            deposits=self.deposits,
        )
        self._pool: PeerPool | None = None
        self._inbound: set[trio.abc.Stream] = set()
        self._dial_backs: set[NodeId] = set()
        self._dialled_back: OrderedDict[NodeId, float] = OrderedDict()
        self._bootstrap: list[Contact] = []
        self._admitted = trio.Event()  # a bootstrap contact dialled us back
        # Re-read when the table is empty (a bootstrap file other nodes keep
        # adding to); without it the node retries the contacts it was given.
        self.bootstrap_source: Callable[[], Sequence[Contact]] | None = None
        # Told when an emptied (or never filled) routing table has contacts again:
        # maintenance joined through the bootstrap list, or other nodes found us.
        self.on_rejoined: Callable[[], None] | None = None
        self._alone = False  # the table was empty at the end of the last round or join
        self._nursery: trio.Nursery | None = None
        self._nursery_manager: contextlib.AbstractAsyncContextManager[trio.Nursery] | None = None
        self._last_replicate = clock()
        self._replication_cursor = b""
        self.response_times = response_times(self.config)

    # -- lifetime -------------------------------------------------------------

    async def __aenter__(self) -> DhtNode:
        manager = trio.open_nursery()
        self._nursery = await manager.__aenter__()
        self._nursery_manager = manager
        self._pool = PeerPool(
            dial=self._dial,
            identity=self.identity,
            nursery=self._nursery,
            rpc_timeout=self.config.rpc_timeout,
            handshake_timeout=self.config.handshake_timeout,
            max_connections=self.config.max_connections,
            max_pending=self.config.max_pending_per_connection,
            dial_errors=self._dial_errors,
        )
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
                if self._pool is not None:
                    await self._pool.aclose()
        finally:
            self._nursery, self._nursery_manager = None, None
            result: bool | None = await manager.__aexit__(exc_type, exc, tb)
        return result

    def _running(self) -> tuple[trio.Nursery, PeerPool]:
        if self._nursery is None or self._pool is None:
            raise LocalError("use the DHT node inside 'async with'")
        return self._nursery, self._pool

    def statistics(self) -> DhtStatistics:
        return DhtStatistics(
            routing_contacts=len(self.routing),
            stored_records=len(self.store),
            stored_deposits=len(self.deposits),
            deposit_bytes=self.deposits.payload_bytes,
            open_streams=self._pool.open_streams if self._pool else 0,
            inbound_streams=len(self._inbound),
            dial_backs=len(self._dial_backs),
        )

    def seeds(self, target: NodeId, count: int | None = None) -> list[Contact]:
        """Where an anonymous lookup of ``target`` may start: our mature contacts closest
        to it, and ourselves (we may be one of the nodes that hold it). Reading our own
        table tells nobody anything."""
        now = self._clock()
        found = self.routing.closest(
            target, count or self.config.k, mature_at=now - self.config.probation
        )
        return [*found, self.contact]

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
            opened, peer = await self._handshake(messages)
            if opened:
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

    async def _handshake(self, messages: MessageStream) -> tuple[bool, Contact | None]:
        """(True, contact) for a proven node, (True, None) for an anonymous client,
        (False, None) if the caller left or ran out of time."""
        nonce = secrets.token_bytes(32)
        with trio.move_on_after(self.config.handshake_timeout):
            await messages.send(Envelope(request_id=0, message=Challenge(nonce=nonce)))
            envelope = await messages.receive()
            if envelope is None:
                return False, None
            answer = envelope.message
            if isinstance(answer, Anonymous):
                return True, None
            if not isinstance(answer, Proof):
                raise RemoteProtocolError(
                    "a DHT caller must prove its key or declare itself anonymous"
                )
            contact = verify_identity_proof(
                callee_public_key=self.identity.public_key,
                nonce=nonce,
                caller_public_key=answer.public_key,
                caller_port=answer.port,
                signature=answer.signature,
                difficulty=self.config.difficulty,
            )
            return True, contact
        return False, None

    async def _serve_requests(self, peer: Contact | None, messages: MessageStream) -> None:
        allowed = _REQUEST_TYPES if peer is not None else _ANONYMOUS_TYPES
        budget = self.config.max_anonymous_requests if peer is None else None
        while budget is None or budget > 0:
            with trio.move_on_after(self.config.idle_timeout):
                envelope = await messages.receive()
                if envelope is None:
                    return
                request = envelope.message
                if not isinstance(request, _REQUEST_TYPES):
                    raise RemoteProtocolError("expected a DHT request")
                if budget is not None:
                    budget -= 1
                if isinstance(request, allowed):
                    if isinstance(request, Ping) and peer in self._bootstrap:
                        self._admitted.set()
                    handled = self.protocol.handle(peer, request, self._clock())
                    reply: Reply = handled.reply
                    if handled.dial_back is not None:
                        self._start_dial_back(handled.dial_back)
                else:
                    reply = Error(code="refused", reason="not served to anonymous clients")
                await messages.send(Envelope(request_id=envelope.request_id, message=reply))
                continue
            return  # idle for too long

    def _start_dial_back(self, contact: Contact) -> None:
        """Check a caller on its own onion service before it may enter our table (bounded)."""
        now = self._clock()
        tried = self._dialled_back.get(contact.node_id)
        if (
            contact.node_id in self._dial_backs
            or len(self._dial_backs) >= self.config.max_dial_backs
            or (tried is not None and now - tried < _DIAL_BACK_AGAIN_AFTER)
        ):
            return
        self._dial_backs.add(contact.node_id)
        self._dialled_back[contact.node_id] = now
        while len(self._dialled_back) > _DIAL_BACK_MEMORY:
            self._dialled_back.popitem(last=False)
        nursery, _ = self._running()

        async def dial_back() -> None:
            try:
                await self._call(contact, Ping())  # an answer there lets it in
            finally:
                self._dial_backs.discard(contact.node_id)

        nursery.start_soon(dial_back)

    async def _check_liveness(self, contact: Contact) -> None:
        alive = await self._call(contact, Ping()) is not None
        self.routing.ping_result(contact, alive=alive)

    # -- calling out -------------------------------------------------------------

    async def _call(self, contact: Contact, request: Request) -> Reply | None:
        """One RPC with its deadline; None if the peer did not answer in time or at all."""
        reply, _ = await self._ask(contact, request)
        return reply

    async def _ask(self, contact: Contact, request: Request) -> tuple[Reply | None, bool]:
        """The reply, or None and whether the deadline passed; keeps the routing table."""
        nursery, pool = self._running()
        try:
            reply = await pool.call(contact, request)
        except pool.errors as exc:
            log.debug("DHT request failed: %s", type(exc).__name__)
            self.routing.failed(contact)
            return None, isinstance(exc, RpcTimeout)
        ping = self.routing.seen(contact, self._clock())  # it answered on its own onion
        if ping is not None:
            nursery.start_soon(self._check_liveness, ping)
        return reply, False

    async def _run_lookup(self, target: NodeId) -> LookupResult:
        now = self._clock()
        seeds = self.routing.closest(
            target, self.config.k, mature_at=now - self.config.probation
        ) or list(self._bootstrap)
        lookup = Lookup(
            kind=LookupKind.FIND_NODE,
            target=target,
            own_id=self.contact.node_id,
            seeds=seeds,
            now=now,
            k=self.config.k,
            alpha=self.config.alpha,
            paths=self.config.paths,
            difficulty=self.config.difficulty,
        )
        result = await drive_lookup(
            lookup, self._ask, timeout=self.config.operation_timeout, hedge=self.response_times
        )
        self.routing.touch(target, self._clock())
        return result

    # -- public API -----------------------------------------------------------------

    async def bootstrap(self, contacts: Sequence[Contact]) -> int:
        """Join through ``contacts``; returns how many contacts the table holds afterwards.

        They are remembered: if every contact is later lost, the node joins
        through them again.
        """
        self._bootstrap = [c for c in contacts if c.node_id != self.contact.node_id]
        self._admitted = trio.Event()
        async with trio.open_nursery() as nursery:
            for contact in self._bootstrap:
                nursery.start_soon(self._call, contact, Ping())
        if len(self.routing) == 0:
            self._alone = True
            return 0
        await self._run_lookup(self.contact.node_id)
        if len(self.routing) <= len(self._bootstrap):
            # Our contacts knew nobody we could meet yet (they admit callers only
            # once they dialled them back; others joining with us are still being
            # checked). Once one of them has dialled us back, ask again.
            with trio.move_on_after(self.config.rpc_timeout):
                await self._admitted.wait()
            await self._run_lookup(self.contact.node_id)
        with trio.move_on_after(self.config.operation_timeout):
            await self._refresh(force=True)  # a head start; maintenance goes on with it
        self._alone = len(self.routing) == 0
        return len(self.routing)

    async def find_node(self, node_id: NodeId) -> list[Contact]:
        """The k live nodes closest to ``node_id`` that answered."""
        result = await self._run_lookup(node_id)
        return list(result.closest)

    # -- replication ---------------------------------------------------------------

    async def _replicate(self, location: bytes, record: DhtRecord) -> int:
        """Copy a stored record to the nodes that should hold its location (as this node)."""
        closest = await self.find_node(NodeId.from_bytes(location))
        accepted = 0

        async def store_at(contact: Contact) -> None:
            nonlocal accepted
            reply = await self._call(contact, Store(location=location, record=record))
            if isinstance(reply, StoreResult) and reply.outcome in _ACCEPTED:
                accepted += 1
            elif isinstance(reply, StoreResult | Error):
                log.debug("a DHT node did not take a replica: %s", reply)

        async with trio.open_nursery() as nursery:
            for contact in closest[: self.config.store_spread]:
                nursery.start_soon(store_at, contact)
        return accepted

    # -- maintenance ----------------------------------------------------------------

    async def _refresh(self, *, force: bool = False) -> None:
        now = self._clock()
        targets = self.routing.refresh_targets(now + (self.config.refresh_interval if force else 0))
        for target in targets:
            await self._run_lookup(target)

    async def _maintenance(self) -> None:
        while True:
            await trio.sleep(self.config.maintenance_interval)
            await self.maintain()

    async def maintain(self) -> None:
        """One round of background upkeep (the node runs it every ``maintenance_interval``)."""
        _, pool = self._running()
        now = self._clock()
        shared = self.shared_random()
        self.store.sweep(now, shared)
        self.deposits.sweep(now, shared)
        await pool.close_idle(self.config.idle_timeout)
        was_alone = self._alone or len(self.routing) == 0
        if len(self.routing) == 0:
            contacts = list(self.bootstrap_source()) if self.bootstrap_source else []
            contacts = contacts or self._bootstrap
            if contacts:
                log.info("the DHT routing table is empty: joining again through the bootstrap list")
                await self.bootstrap(contacts)
        self._alone = len(self.routing) == 0
        if was_alone and not self._alone and self.on_rejoined is not None:
            self.on_rejoined()
        await self._refresh()
        await self.republish_deposits()
        if now - self._last_replicate >= self.config.replicate_interval:
            self._last_replicate = now
            await self.replicate_some()

    async def replicate_some(self) -> int:
        """Replicate the next ``max_replications_per_round`` stored records, taking turns:
        each round starts where the last one stopped, so every record is copied in time."""
        batch = self.store.after(
            self._replication_cursor, self.config.max_replications_per_round, self._clock()
        )
        for location, record in batch:
            await self._replicate(location, record)
        if batch:
            self._replication_cursor = batch[-1][0]
        return len(batch)

    async def republish_deposits(self) -> int:
        """Republish the mailbox locations that are due (``DepositStore.due``): nobody stored
        their deposits with us for ``replicate_interval``, or they sit under a shared random
        value that is no longer current and move to the current one's position. A deposit so
        outlives its sender and the holders that leave. Returns how many copies were taken."""
        now = self._clock()
        current = self.shared_random().current
        due = self.deposits.due(
            now, self.config.replicate_interval, current, self.config.max_deposit_moves_per_round
        )
        taken = 0
        for location, target, deposits in due:
            taken += await self._republish(target, deposits, moved=target.location != location)
            self.deposits.replicated(location, self._clock(), current)
        return taken

    async def _republish(self, target: Position, deposits: list[Deposit], *, moved: bool) -> int:
        closest = await self.find_node(NodeId.from_bytes(target.location))
        raws = [d.encode() for d in deposits]
        taken = 0
        if moved:  # we may be one of the new position's holders ourselves
            now = self._clock()
            for raw in raws:
                taken += self.protocol.deposit_here(target.location, raw, now).outcome.accepted

        async def deposit_at(contact: Contact) -> None:
            nonlocal taken
            for raw in raws:
                reply = await self._call(
                    contact, StoreDeposit(location=target.location, deposit=raw)
                )
                if not isinstance(reply, DepositResult):
                    return  # gone or broken: the others still get theirs
                taken += reply.outcome in _DEPOSITED

        async with trio.open_nursery() as nursery:
            for contact in closest[: self.config.store_spread]:
                nursery.start_soon(deposit_at, contact)
        return taken


def response_times(config: DhtConfig) -> ResponseTimes:
    """The soft deadline keeper for lookups made with ``config``."""
    ceiling = max(config.hedge_floor, config.rpc_timeout / 2)
    return ResponseTimes(initial=config.hedge_after, floor=config.hedge_floor, ceiling=ceiling)


_ACCEPTED = {StoreOutcome.STORED.value, StoreOutcome.REFRESHED.value}
_DEPOSITED = {DepositOutcome.STORED.value, DepositOutcome.REFRESHED.value}
