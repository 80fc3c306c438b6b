"""Outbound RPC streams to DHT peers, and the lookup driver, shared by the node and the client.

``PeerPool`` owns the streams one caller holds to other nodes: one stream
per peer, dialled on first use (a dial already in progress is shared),
opened with the node's ``Proof`` or anonymously, bounded in number (least
recently used and idle streams closed first), each reply read by a task in
the nursery the pool was given. The long-term ``DhtNode`` keeps one pool
for its lifetime; the anonymous ``DhtClient`` makes a fresh pool for each
operation and closes it at the end, so no stream outlives the operation.

``drive_lookup`` runs a sans-IO ``Lookup`` to the end over any ``ask``
function, every request under its deadline and the whole walk under the
operation's: nothing here can hang a caller. Given a ``ResponseTimes``, it
hedges: a request slower than the soft deadline is reported stalled, so
the lookup asks another node without waiting out the slow one.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Awaitable, Callable

import trio

from anonsip._errors import AnonsipError, LocalError
from anonsip.dht._identity import Contact, NodeId, NodeIdentity
from anonsip.dht._lookup import Lookup, LookupResult, ResponseTimes
from anonsip.dht._messages import Reply, Request
from anonsip.dht._rpc import Connection, RpcTimeout

__all__ = ["Ask", "Dialer", "PeerPool", "drive_lookup"]

Dialer = Callable[[Contact], Awaitable[trio.abc.Stream]]
# An answer, or None with whether the request timed out (True) or failed (False).
Ask = Callable[[Contact, Request], Awaitable[tuple[Reply | None, bool]]]


class PeerPool:
    """Streams to DHT peers, owned by one caller; ``call`` has a deadline whatever happens."""

    def __init__(
        self,
        *,
        dial: Dialer,
        identity: NodeIdentity | None,
        nursery: trio.Nursery,
        rpc_timeout: float,
        handshake_timeout: float,
        max_connections: int,
        max_pending: int,
        dial_errors: tuple[type[BaseException], ...] = (),
    ) -> None:
        self._dial = dial
        self._identity = identity
        self._nursery = nursery
        self.rpc_timeout = rpc_timeout
        self.handshake_timeout = handshake_timeout
        self.max_connections = max_connections
        self.max_pending = max_pending
        self.errors: tuple[type[BaseException], ...] = (
            OSError,
            AnonsipError,
            trio.BrokenResourceError,
            trio.ClosedResourceError,
            *dial_errors,
        )
        self.connections: OrderedDict[NodeId, Connection] = OrderedDict()
        self._dialing: dict[NodeId, trio.Event] = {}
        self.dials = 0

    async def call(self, contact: Contact, request: Request) -> Reply:
        """One RPC, dial and handshake included, within ``rpc_timeout``.

        Raises ``RpcTimeout`` when the deadline passes, or one of ``errors``.
        """
        with trio.move_on_after(self.rpc_timeout):
            conn = await self._connection(contact)
            return await conn.request(request, timeout=self.rpc_timeout)
        raise RpcTimeout("the DHT peer did not answer in time")

    async def _connection(self, contact: Contact) -> Connection:
        while True:
            conn = self.connections.get(contact.node_id)
            if conn is not None and conn.usable:
                self.connections.move_to_end(contact.node_id)
                return conn
            if conn is not None:
                del self.connections[contact.node_id]
            dialing = self._dialing.get(contact.node_id)
            if dialing is None:
                break
            await dialing.wait()  # share a dial already in progress
        done = self._dialing[contact.node_id] = trio.Event()
        try:
            self.dials += 1
            stream = await self._dial(contact)
            try:
                conn = await Connection.open(
                    stream,
                    identity=self._identity,
                    contact=contact,
                    max_pending=self.max_pending,
                    timeout=self.handshake_timeout,
                )
            except BaseException:
                await trio.aclose_forcefully(stream)
                raise
            await self._make_room()
            self.connections[contact.node_id] = conn
            self._nursery.start_soon(conn.read_loop)
            return conn
        finally:
            del self._dialing[contact.node_id]
            done.set()

    async def _make_room(self) -> None:
        while len(self.connections) >= self.max_connections:
            idle = [n for n, c in self.connections.items() if c.pending == 0]
            victim = idle[0] if idle else next(iter(self.connections))
            await self.connections.pop(victim).aclose()

    async def close_idle(self, idle_timeout: float) -> None:
        cutoff = trio.current_time() - idle_timeout
        for node_id, conn in list(self.connections.items()):
            if not conn.usable or (conn.pending == 0 and conn.last_used < cutoff):
                del self.connections[node_id]
                await conn.aclose()

    async def aclose(self) -> None:
        with trio.CancelScope(shield=True):
            for conn in list(self.connections.values()):
                await conn.aclose()
        self.connections.clear()

    @property
    def open_streams(self) -> int:
        return sum(1 for c in self.connections.values() if c.usable)


async def drive_lookup(
    lookup: Lookup,
    ask: Ask,
    *,
    timeout: float,
    hedge: ResponseTimes | None = None,
    value_grace: bool = False,
    cut: trio.CancelScope | None = None,
) -> LookupResult:
    """Run ``lookup`` to the end (or until ``timeout``) and return what it learnt.

    With ``hedge``, a request not answered within ``hedge.hedge_after()`` is reported
    stalled (the lookup asks the next candidate at once) and still awaited; every answer's
    duration goes into ``hedge``. With ``value_grace`` (it needs ``hedge``), the lookup is
    cut ``hedge.grace()`` after its first path found a value. ``cut`` is the scope whose
    deadline ends the walk with what it found so far: a caller running several lookups
    side by side lowers it once another found a value.
    """
    if value_grace and hedge is None:
        raise LocalError("a grace period after the first value needs response times")

    async def one(contact: Contact, request: Request) -> None:
        started = trio.current_time()

        async def stall(soft_deadline: float) -> None:
            await trio.sleep(soft_deadline)
            lookup.on_stalled(contact)
            wake_send.send_nowait(False)

        async with trio.open_nursery() as watch:
            if hedge is not None:
                watch.start_soon(stall, hedge.hedge_after())
            reply, timed_out = await ask(contact, request)
            watch.cancel_scope.cancel()
        if reply is not None:
            if hedge is not None:
                hedge.add(trio.current_time() - started)
            lookup.on_response(contact, reply)
        elif timed_out:
            lookup.on_timeout(contact)
        else:
            lookup.on_failure(contact)
        wake_send.send_nowait(True)

    pending = 0
    # Each request in flight sends at most two wake-ups (stalled, finished): the channel,
    # far larger than any lookup's requests, never fills.
    wake_send, wake_receive = trio.open_memory_channel[bool](1 << 16)
    scope = trio.CancelScope() if cut is None else cut
    with trio.move_on_after(timeout):
        async with trio.open_nursery() as nursery:
            with scope:
                while not lookup.done:
                    for contact, request in lookup.next_requests():
                        pending += 1
                        nursery.start_soon(one, contact, request)
                    if lookup.done or pending == 0:
                        break
                    if value_grace and hedge is not None and lookup.has_value:
                        scope.deadline = min(scope.deadline, trio.current_time() + hedge.grace())
                    if await wake_receive.receive():
                        pending -= 1
            if scope.cancelled_caught:
                lookup.cut()
            nursery.cancel_scope.cancel()  # answers we no longer need
    return lookup.result()
