"""``DhtClient``: the user's own DHT operations, made anonymously.

Tor clients fetch onion-service descriptors from HSDirs without saying who
they are; the user's own registrations (and later mailbox deposits) are
stored and its contacts looked up the same way, never through the
long-term ``DhtNode``, whose key would link them. Each operation, ``put``
of one record or ``get`` of one key:

* opens its own streams, one per peer, each dialled with an isolation
  token made for this operation (and peer), so Tor builds circuits for it
  alone, and closes every one of them when it ends;
* answers each callee's challenge with ``Anonymous``: no key, no proof, no
  port, nothing a callee could recognise next time;
* changes no routing table, neither the peers' (anonymous callers are
  never added) nor ours;
* starts from ``seeds(target)``: the long-term node's mature contacts,
  read locally, which tells nobody anything;
* is bounded by ``operation_timeout`` as a whole and every request by
  ``rpc_timeout``.

Where: a record lives at its positions under the current and previous
shared random values (``_placement``); ``put`` stores at the closest
``store_spread`` nodes of every position, ``get`` walks the current
value's replica positions and falls back to the previous value's.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Awaitable, Callable, Sequence

import trio

from anonsip._errors import LocalError
from anonsip.dht._identity import Contact, NodeId
from anonsip.dht._lookup import Lookup, LookupKind, LookupResult
from anonsip.dht._messages import Reply, Request, Store, StoreResult
from anonsip.dht._node import DhtConfig
from anonsip.dht._peers import PeerPool, drive_lookup
from anonsip.dht._placement import Position, SharedRandomSource, positions
from anonsip.dht._record import DhtRecord
from anonsip.dht._rpc import RpcTimeout
from anonsip.dht._store import StoreOutcome

__all__ = ["AnonymousDialer", "DhtClient"]

AnonymousDialer = Callable[[Contact, str], Awaitable[trio.abc.Stream]]
"""``dial(contact, isolation)``: a stream to ``contact`` on circuits of ``isolation`` alone."""

_ACCEPTED = {StoreOutcome.STORED.value, StoreOutcome.REFRESHED.value}


class DhtClient:
    """Anonymous ``put``/``get``; needs no ``async with`` (each operation owns its streams)."""

    def __init__(
        self,
        *,
        dial: AnonymousDialer,
        seeds: Callable[[NodeId], Sequence[Contact]],
        shared_random: SharedRandomSource,
        config: DhtConfig | None = None,
        clock: Callable[[], float] = time.time,
        dial_errors: tuple[type[BaseException], ...] = (),
        new_token: Callable[[], str] = lambda: secrets.token_hex(16),
    ) -> None:
        self.config = config or DhtConfig()
        self._dial = dial
        self._seeds = seeds
        self.shared_random = shared_random
        self._clock = clock
        self._dial_errors = dial_errors
        self._new_token = new_token

    def _pool(self, nursery: trio.Nursery) -> PeerPool:
        token = self._new_token()

        async def dial(contact: Contact) -> trio.abc.Stream:
            return await self._dial(contact, f"anonsip-dht-client-{token}-{contact.onion_address}")

        return PeerPool(
            dial=dial,
            identity=None,
            nursery=nursery,
            rpc_timeout=self.config.rpc_timeout,
            handshake_timeout=self.config.handshake_timeout,
            max_connections=self.config.max_connections,
            max_pending=self.config.max_pending_per_connection,
            dial_errors=self._dial_errors,
        )

    async def _lookup(
        self, pool: PeerPool, kind: LookupKind, location: bytes, record_key: bytes | None
    ) -> LookupResult:
        target = NodeId.from_bytes(location)
        lookup = Lookup(
            kind=kind,
            target=target,
            own_id=None,
            seeds=list(self._seeds(target)),
            now=self._clock(),
            record_key=record_key,
            k=self.config.k,
            alpha=self.config.alpha,
            paths=self.config.paths,
            difficulty=self.config.difficulty,
        )

        async def ask(contact: Contact, request: Request) -> tuple[Reply | None, bool]:
            try:
                return await pool.call(contact, request), False
            except pool.errors as exc:
                return None, isinstance(exc, RpcTimeout)

        return await drive_lookup(lookup, ask, timeout=self.config.operation_timeout)

    async def get(self, key: bytes) -> DhtRecord | None:
        """The newest valid record under ``key`` (SHA3-256 of its public key), if found."""
        if len(key) != 32:
            raise LocalError("a DHT key is 32 bytes")
        shared = self.shared_random()
        found: list[DhtRecord] = []
        with trio.move_on_after(self.config.operation_timeout):
            async with trio.open_nursery() as nursery:
                pool = self._pool(nursery)
                try:
                    for value in shared.candidates():
                        here = [
                            p
                            for p in positions(key, shared, self.config.replicas)
                            if p.value == value
                        ]

                        async def find(p: Position) -> None:
                            result = await self._lookup(
                                pool, LookupKind.FIND_VALUE, p.location, key
                            )
                            if result.record is not None:
                                found.append(result.record)

                        async with trio.open_nursery() as lookups:
                            for p in here:
                                lookups.start_soon(find, p)
                        if found:
                            break
                finally:
                    await pool.aclose()
                    nursery.cancel_scope.cancel()
        now = self._clock()
        valid = [r for r in found if r.is_valid_for(key, now)]
        return max(valid, key=lambda r: r.seq, default=None)

    async def put(self, record: DhtRecord) -> int:
        """Store ``record`` at every position; returns how many nodes accepted a copy."""
        now = self._clock()
        if not record.is_valid_for(record.key, now):
            raise LocalError("refusing to publish an expired or badly signed record")
        accepted = 0
        with trio.move_on_after(self.config.operation_timeout):
            async with trio.open_nursery() as nursery:
                pool = self._pool(nursery)

                async def store_at(contact: Contact, location: bytes) -> None:
                    nonlocal accepted
                    try:
                        reply = await pool.call(contact, Store(location=location, record=record))
                    except pool.errors:
                        return
                    if isinstance(reply, StoreResult) and reply.outcome in _ACCEPTED:
                        accepted += 1

                async def place(p: Position) -> None:
                    result = await self._lookup(pool, LookupKind.FIND_NODE, p.location, None)
                    async with trio.open_nursery() as stores:
                        for contact in result.closest[: self.config.store_spread]:
                            stores.start_soon(store_at, contact, p.location)

                try:
                    async with trio.open_nursery() as placing:
                        for p in positions(record.key, self.shared_random(), self.config.replicas):
                            placing.start_soon(place, p)
                finally:
                    await pool.aclose()
                    nursery.cancel_scope.cancel()
        return accepted
