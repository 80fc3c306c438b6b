"""``DhtClient``: the user's own DHT operations, made anonymously.

Tor clients fetch onion-service descriptors from HSDirs without saying who
they are; the user's own registrations and mailbox operations are made
and its contacts looked up the same way, never through the long-term
``DhtNode``, whose key would link them. Each operation (``put`` of one
record, ``get`` of one key, ``deposit`` of one deposit, ``collect`` of one
mailbox, ``delete`` of what one deletion names):

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
value's replica positions and falls back to the previous value's. A
mailbox's deposits live at the positions of its DHT key
(``anonsip.mailbox.dht_key``) the same way: ``deposit`` and ``delete`` go
to the closest ``store_spread`` nodes of every position, and ``collect``
asks those same nodes for every page they hold (deposits may sit under
either value until their holders move them), keeping each valid deposit
once.
"""

from __future__ import annotations

import hashlib
import secrets
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

import trio

from anonsip._errors import LocalError
from anonsip.dht._deposits import DeletionOutcome, DepositOutcome
from anonsip.dht._identity import Contact, NodeId
from anonsip.dht._lookup import Lookup, LookupKind, LookupResult
from anonsip.dht._messages import (
    Collect,
    Delete,
    DeleteResult,
    DepositResult,
    Deposits,
    Reply,
    Request,
    Store,
    StoreDeposit,
    StoreResult,
)
from anonsip.dht._node import DhtConfig, response_times
from anonsip.dht._peers import PeerPool, drive_lookup
from anonsip.dht._placement import Position, SharedRandomSource, positions
from anonsip.dht._record import DhtRecord
from anonsip.dht._rpc import RpcTimeout
from anonsip.dht._store import StoreOutcome
from anonsip.mailbox import DEPOSIT_POW_BITS, Deletion, Deposit, DepositError

__all__ = ["MAX_COLLECT", "AnonymousDialer", "DepositReport", "DhtClient"]

# A collection keeps at most this many deposits, asks each node for at most
# this many pages: a node that pages for ever costs a bounded amount.
MAX_COLLECT = 1024
MAX_PAGES_PER_NODE = 16

AnonymousDialer = Callable[[Contact, str], Awaitable[trio.abc.Stream]]
"""``dial(contact, isolation)``: a stream to ``contact`` on circuits of ``isolation`` alone."""

_ACCEPTED = {StoreOutcome.STORED.value, StoreOutcome.REFRESHED.value}
_DEPOSITED = {DepositOutcome.STORED.value, DepositOutcome.REFRESHED.value}

Visit = Callable[[PeerPool, Contact, bytes], Awaitable[None]]


@dataclass(frozen=True, slots=True, kw_only=True)
class DepositReport:
    """What the storing nodes said of one deposit."""

    stored: int  # copies taken (a node holding two positions counts twice)
    refused: dict[str, int]  # outcome -> how many nodes gave it
    floor: int  # the most work any node asked of a new deposit (0: nobody answered)


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
        # How long answers take (durations only): the soft deadline of hedged requests.
        self.response_times = response_times(self.config)

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
        self,
        pool: PeerPool,
        kind: LookupKind,
        location: bytes,
        record_key: bytes | None,
        cut: trio.CancelScope | None = None,
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

        return await drive_lookup(
            lookup,
            ask,
            timeout=self.config.operation_timeout,
            hedge=self.response_times,
            value_grace=self.config.value_grace,
            cut=cut,
        )

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

                        # Once one position gave a value, the others get a grace period.
                        cuts = [trio.CancelScope() for _ in here]

                        async def find(
                            p: Position, cut: trio.CancelScope, cuts: list[trio.CancelScope]
                        ) -> None:
                            result = await self._lookup(
                                pool, LookupKind.FIND_VALUE, p.location, key, cut
                            )
                            if result.record is not None:
                                found.append(result.record)
                                if self.config.value_grace:
                                    end = trio.current_time() + self.response_times.grace()
                                    for other in cuts:
                                        other.deadline = min(other.deadline, end)

                        async with trio.open_nursery() as lookups:
                            for p, cut in zip(here, cuts, strict=True):
                                lookups.start_soon(find, p, cut, cuts)
                        if found:
                            break
                finally:
                    await pool.aclose()
                    nursery.cancel_scope.cancel()
        now = self._clock()
        valid = [r for r in found if r.is_valid_for(key, now)]
        return max(valid, key=lambda r: r.seq, default=None)

    async def _at_positions(self, key: bytes, visit: Visit) -> None:
        """Call ``visit(pool, contact, location)`` on the closest ``store_spread`` nodes of
        every position of ``key``, all in one operation (one pool, one isolation token)."""
        with trio.move_on_after(self.config.operation_timeout):
            async with trio.open_nursery() as nursery:
                pool = self._pool(nursery)

                async def place(p: Position) -> None:
                    result = await self._lookup(pool, LookupKind.FIND_NODE, p.location, None)
                    async with trio.open_nursery() as visits:
                        for contact in result.closest[: self.config.store_spread]:
                            visits.start_soon(visit, pool, contact, p.location)

                try:
                    async with trio.open_nursery() as placing:
                        for p in positions(key, self.shared_random(), self.config.replicas):
                            placing.start_soon(place, p)
                finally:
                    await pool.aclose()
                    nursery.cancel_scope.cancel()

    async def _ask(self, pool: PeerPool, contact: Contact, request: Request) -> Reply | None:
        try:
            return await pool.call(contact, request)
        except pool.errors:
            return None

    async def put(self, record: DhtRecord) -> int:
        """Store ``record`` at every position; returns how many nodes accepted a copy."""
        now = self._clock()
        if not record.is_valid_for(record.key, now):
            raise LocalError("refusing to publish an expired or badly signed record")
        accepted = 0

        async def store_at(pool: PeerPool, contact: Contact, location: bytes) -> None:
            nonlocal accepted
            reply = await self._ask(pool, contact, Store(location=location, record=record))
            if isinstance(reply, StoreResult) and reply.outcome in _ACCEPTED:
                accepted += 1

        await self._at_positions(record.key, store_at)
        return accepted

    # -- mailboxes -------------------------------------------------------------------

    async def deposit(self, deposit: Deposit) -> int:
        """Leave ``deposit`` in its mailbox at every position; how many nodes took a copy."""
        return (await self.deposit_report(deposit)).stored

    async def deposit_report(self, deposit: Deposit) -> DepositReport:
        """``deposit``, and what the nodes said: a refused sender learns the work they ask."""
        try:
            deposit.check(self._clock(), difficulty=DEPOSIT_POW_BITS)
        except DepositError as exc:
            raise LocalError(f"refusing to deposit: {exc}") from exc
        raw = deposit.encode()
        stored = 0
        floor = 0
        refused: dict[str, int] = {}

        async def deposit_at(pool: PeerPool, contact: Contact, location: bytes) -> None:
            nonlocal stored, floor
            reply = await self._ask(pool, contact, StoreDeposit(location=location, deposit=raw))
            if not isinstance(reply, DepositResult):
                return
            floor = max(floor, reply.floor)
            if reply.outcome in _DEPOSITED:
                stored += 1
            else:
                refused[reply.outcome] = refused.get(reply.outcome, 0) + 1

        await self._at_positions(deposit.key, deposit_at)
        return DepositReport(stored=stored, refused=refused, floor=floor)

    async def collect(self, mailbox: bytes) -> list[Deposit]:
        """Every live deposit of the mailbox whose DHT key is ``mailbox``
        (``anonsip.mailbox.dht_key``), each once, at most ``MAX_COLLECT``, by deposit id."""
        if len(mailbox) != 32:
            raise LocalError("a mailbox's DHT key is 32 bytes")
        found: dict[bytes, Deposit] = {}

        async def collect_at(pool: PeerPool, contact: Contact, location: bytes) -> None:
            after = b""
            for _ in range(MAX_PAGES_PER_NODE):
                reply = await self._ask(pool, contact, Collect(location=location, after=after))
                if not isinstance(reply, Deposits) or not reply.deposits:
                    return
                now = self._clock()
                for raw in reply.deposits:
                    self._keep(found, raw, mailbox, now)
                after = hashlib.sha3_256(reply.deposits[-1]).digest()
                if not reply.more or len(found) >= MAX_COLLECT:
                    return

        await self._at_positions(mailbox, collect_at)
        return [found[i] for i in sorted(found)]

    @staticmethod
    def _keep(found: dict[bytes, Deposit], raw: bytes, mailbox: bytes, now: float) -> None:
        """Keep ``raw`` if it is a valid, live deposit of ``mailbox`` not seen yet."""
        if len(found) >= MAX_COLLECT:
            return
        try:
            deposit = Deposit.decode(raw)
            deposit.check(now, difficulty=DEPOSIT_POW_BITS)
        except DepositError:
            return  # a node answering with junk, or a copy that just expired
        if deposit.key == mailbox:
            found.setdefault(deposit.deposit_id, deposit)

    async def delete(self, deletion: Deletion) -> int:
        """Remove the deposits ``deletion`` names from every node that holds the mailbox;
        returns how many nodes accepted it (whether or not they held any)."""
        try:
            deletion.check(self._clock())
        except DepositError as exc:
            raise LocalError(f"refusing to send a deletion: {exc}") from exc
        raw = deletion.encode()
        accepted = 0

        async def delete_at(pool: PeerPool, contact: Contact, location: bytes) -> None:
            nonlocal accepted
            reply = await self._ask(pool, contact, Delete(location=location, deletion=raw))
            if isinstance(reply, DeleteResult) and reply.outcome == DeletionOutcome.DELETED.value:
                accepted += 1

        await self._at_positions(deletion.key, delete_at)
        return accepted
