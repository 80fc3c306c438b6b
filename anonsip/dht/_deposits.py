"""Bounded storage of mailbox deposits: many per mailbox, each paid for with proof of work.

A deposit (``anonsip.mailbox.Deposit``) is not signed: anyone who knows an
address may write to its mailbox. What makes writing cost is the proof of
work each deposit carries; what keeps a node's memory bounded is this
store. A deposit is kept only if every check passes, cheapest first:

1. it decodes as a deposit (a sealed letter of one of the bucket sizes);
2. the location is one of its mailbox key's positions under a shared random
   value this node believes in (``_placement``, as for a record);
3. it is not a copy of one held here already (that refreshes it and
   nothing else), nor one its owner deleted (a tombstone: a deleted deposit
   cannot be replayed, nor replicated back by a node the deletion missed);
4. ``Deposit.check``: not expired, at most a week ahead, at least
   ``difficulty`` bits of work: the least any deposit needs. The recipient
   asks more of a contact request, which only it can recognise (the kind
   is sealed), so the store reports the work it saw;
5. the bounds: at most ``max_per_mailbox`` deposits at one location and
   ``max_deposits`` / ``max_bytes`` in all. At a bound, the deposit with
   the least work (soonest to expire among equals) makes way for one with
   strictly more, so flooding a mailbox or a node costs ever more work, and
   a refused sender learns the ``floor`` it must beat: the effort rises
   under attack, as in Tor's proposal 327.

The protocol layer adds the check that needs the routing table (is this
node among those that should hold the location).

A ``Deletion`` signed by the mailbox's owner removes the deposits it names
from every location of that mailbox held here and leaves a tombstone for
each (until the deposit would have expired; at most ``max_tombstones``,
the oldest forgotten first).

Replication (Kademlia 2.5): a deposit remembers when it was last stored
here. A holder republishes a location only when nobody stored its deposits
with it for a whole interval, so each location is republished by about one
of its holders per interval; a location placed under a shared random value
that is no longer the current one is due at once, once: its deposits move
to the current value's position of the same replica, whose holders keep
them from then on (the old copy stays for collectors a value behind until
that value is out of use). Time is always handed in.
"""

from __future__ import annotations

import enum
import heapq
from collections import OrderedDict
from dataclasses import dataclass, field

from anonsip._errors import LocalError
from anonsip.dht._placement import (
    DEFAULT_REPLICAS,
    Position,
    SharedRandom,
    position,
    position_of,
    positions,
)
from anonsip.mailbox import (
    DEPOSIT_POW_BITS,
    MAX_DELETE,
    MAX_TTL,
    Deletion,
    Deposit,
    DepositError,
    sealed_sizes,
)

__all__ = [
    "MAX_DELETION_BYTES",
    "MAX_DEPOSIT_BYTES",
    "DeletionOutcome",
    "DepositOutcome",
    "DepositStore",
    "DepositVerdict",
]

# mailbox key, expiry, nonce | the largest sealed letter
MAX_DEPOSIT_BYTES = 32 + 4 + 16 + max(sealed_sizes())
# mailbox key, time, count | ids | signature
MAX_DELETION_BYTES = 32 + 4 + 1 + 32 * MAX_DELETE + 64
# A deletion may be an hour old; a deposit it names may have been made a week after it.
_TOMBSTONE_LIFE = MAX_TTL + 300 + 3600


class DepositOutcome(enum.Enum):
    STORED = "stored"
    REFRESHED = "refreshed"
    MALFORMED = "malformed"
    WRONG_LOCATION = "wrong-location"
    NOT_RESPONSIBLE = "not-responsible"
    DELETED = "deleted"  # its owner deleted it: not taken again
    EXPIRED = "expired"
    TTL_TOO_LONG = "ttl-too-long"
    TOO_LITTLE_WORK = "too-little-work"
    FULL = "full"  # every deposit in the way has at least as much work

    @property
    def accepted(self) -> bool:
        return self in (DepositOutcome.STORED, DepositOutcome.REFRESHED)


class DeletionOutcome(enum.Enum):
    DELETED = "deleted"
    MALFORMED = "malformed"
    WRONG_LOCATION = "wrong-location"
    REFUSED = "refused"  # not signed by the mailbox's owner, or not recent


@dataclass(frozen=True, slots=True, kw_only=True)
class DepositVerdict:
    """What a store said of a deposit: the outcome, the work it saw, the least it takes now."""

    outcome: DepositOutcome
    work: int
    floor: int


@dataclass(slots=True)
class _Held:
    deposit: Deposit
    raw: bytes
    work: int
    stored_at: float  # last time anyone stored it here (our own republishing counts)


@dataclass(slots=True)
class _Box:
    """The deposits at one location: one mailbox key under one value and replica."""

    key: bytes
    value: bytes
    replica: int
    held: dict[bytes, _Held] = field(default_factory=dict)  # deposit id -> deposit
    moved_to: bytes = b""  # the value whose position we last republished these deposits at


class DepositStore:
    def __init__(
        self,
        *,
        max_deposits: int = 16384,
        max_bytes: int = 48 * 1024 * 1024,
        max_per_mailbox: int = 128,
        max_tombstones: int = 65536,
        difficulty: int = DEPOSIT_POW_BITS,
        replicas: int = DEFAULT_REPLICAS,
    ) -> None:
        if min(max_deposits, max_per_mailbox, max_tombstones) < 1:
            raise LocalError("a deposit store must hold at least one deposit")
        if max_bytes < MAX_DEPOSIT_BYTES:
            raise LocalError("a deposit store must have room for the largest deposit")
        self.max_deposits = max_deposits
        self.max_bytes = max_bytes
        self.max_per_mailbox = max_per_mailbox
        self.max_tombstones = max_tombstones
        self.difficulty = difficulty
        self.replicas = replicas
        self._boxes: dict[bytes, _Box] = {}
        self._count = 0
        self._bytes = 0
        # Least work first, then soonest to expire: (work, expiry, location, id);
        # entries of deposits already gone are skipped when popped.
        self._cheapest: list[tuple[int, int, bytes, bytes]] = []
        self._tombstones: OrderedDict[bytes, float] = OrderedDict()
        self._last_sweep = float("-inf")

    def __len__(self) -> int:
        return self._count

    @property
    def payload_bytes(self) -> int:
        return self._bytes

    @property
    def tombstones(self) -> int:
        return len(self._tombstones)

    def deposits(self, location: bytes, now: float) -> list[Deposit]:
        """The live deposits at ``location``, by deposit id."""
        box = self._boxes.get(location)
        if box is None:
            return []
        return [box.held[i].deposit for i in sorted(box.held) if box.held[i].deposit.expiry > now]

    def locations(self) -> list[bytes]:
        return sorted(self._boxes)

    # -- taking deposits ------------------------------------------------------------

    def put(
        self, location: bytes, raw: bytes, *, now: float, shared: SharedRandom
    ) -> DepositVerdict:
        """Keep the deposit ``raw`` at ``location`` if policy allows."""
        try:
            deposit = Deposit.decode(raw)
        except DepositError:
            return self._verdict(DepositOutcome.MALFORMED, 0, location)
        where = position_of(location, deposit.key, shared, self.replicas)
        if where is None:
            return self._verdict(DepositOutcome.WRONG_LOCATION, 0, location)
        deposit_id = deposit.deposit_id
        box = self._boxes.get(location)
        held = None if box is None else box.held.get(deposit_id)
        if held is not None:
            held.stored_at = max(held.stored_at, now)
            return self._verdict(DepositOutcome.REFRESHED, held.work, location)
        if deposit_id in self._tombstones:
            return self._verdict(DepositOutcome.DELETED, 0, location)
        work = deposit.work
        try:
            deposit.check(now, difficulty=self.difficulty)
        except DepositError:
            if deposit.expiry <= now:
                outcome = DepositOutcome.EXPIRED
            elif work < self.difficulty:
                outcome = DepositOutcome.TOO_LITTLE_WORK
            else:
                outcome = DepositOutcome.TTL_TOO_LONG
            return self._verdict(outcome, work, location)
        if not self._make_room(location, work, len(raw), now):
            return self._verdict(DepositOutcome.FULL, work, location)
        box = self._boxes.get(location)  # making room may have emptied it
        if box is None:
            box = self._boxes[location] = _Box(
                key=deposit.key, value=where.value, replica=where.replica
            )
        box.held[deposit_id] = _Held(deposit=deposit, raw=raw, work=work, stored_at=now)
        self._count += 1
        self._bytes += len(raw)
        heapq.heappush(self._cheapest, (work, deposit.expiry, location, deposit_id))
        if len(self._cheapest) > 2 * self._count + 64:
            self._rebuild_heap()
        return self._verdict(DepositOutcome.STORED, work, location)

    def _verdict(self, outcome: DepositOutcome, work: int, location: bytes) -> DepositVerdict:
        return DepositVerdict(outcome=outcome, work=work, floor=self.floor(location))

    def floor(self, location: bytes) -> int:
        """The least work a new deposit at ``location`` needs to be taken now."""
        floor = self.difficulty
        box = self._boxes.get(location)
        if box is not None and len(box.held) >= self.max_per_mailbox:
            floor = max(floor, min(h.work for h in box.held.values()) + 1)
        if self._count >= self.max_deposits:
            cheapest = self._peek_cheapest()
            if cheapest is not None:
                floor = max(floor, cheapest[0] + 1)
        return floor

    def _peek_cheapest(self) -> tuple[int, int, bytes, bytes] | None:
        while self._cheapest:
            _, _, location, deposit_id = self._cheapest[0]
            box = self._boxes.get(location)
            if box is not None and deposit_id in box.held:
                return self._cheapest[0]
            heapq.heappop(self._cheapest)
        return None

    def _rebuild_heap(self) -> None:
        self._cheapest = [
            (h.work, h.deposit.expiry, location, deposit_id)
            for location, box in self._boxes.items()
            for deposit_id, h in box.held.items()
        ]
        heapq.heapify(self._cheapest)

    def _make_room(self, location: bytes, work: int, size: int, now: float) -> bool:
        """Evict deposits with less work until one of ``work`` and ``size`` fits at
        ``location``; False, with nothing evicted, if it cannot."""
        full = self._count >= self.max_deposits or self._bytes + size > self.max_bytes
        if full and now - self._last_sweep >= 1.0:  # at most once a second: it reads everything
            self.sweep(now)
        victims: dict[tuple[bytes, bytes], int] = {}
        box = self._boxes.get(location)
        if box is not None and len(box.held) >= self.max_per_mailbox:
            victim_id, victim = min(
                box.held.items(), key=lambda item: (item[1].work, item[1].deposit.expiry)
            )
            if victim.work >= work:
                return False
            victims[(location, victim_id)] = len(victim.raw)

        def over() -> bool:
            count = self._count - len(victims)
            used = self._bytes - sum(victims.values())
            return count >= self.max_deposits or used + size > self.max_bytes

        popped: list[tuple[int, int, bytes, bytes]] = []
        while over():
            cheapest = self._peek_cheapest()
            if cheapest is None or cheapest[0] >= work:
                for entry in popped:
                    heapq.heappush(self._cheapest, entry)
                return False
            popped.append(heapq.heappop(self._cheapest))
            _, _, where, victim_id = cheapest
            victims.setdefault((where, victim_id), len(self._boxes[where].held[victim_id].raw))
        for where, victim_id in victims:
            self._forget(where, victim_id)
        return True

    def _forget(self, location: bytes, deposit_id: bytes) -> _Held:
        box = self._boxes[location]
        held = box.held.pop(deposit_id)
        if not box.held:
            del self._boxes[location]
        self._count -= 1
        self._bytes -= len(held.raw)
        return held

    # -- serving collections -----------------------------------------------------------

    def page(
        self, location: bytes, after: bytes, now: float, *, max_items: int, max_bytes: int
    ) -> tuple[list[bytes], bool]:
        """Deposits at ``location`` whose id follows ``after``, by id, as many as fit
        (always one if any is left); and whether more follow."""
        box = self._boxes.get(location)
        if box is None:
            return [], False
        ids = sorted(i for i, h in box.held.items() if i > after and h.deposit.expiry > now)
        out: list[bytes] = []
        used = 0
        for deposit_id in ids:
            raw = box.held[deposit_id].raw
            if out and (len(out) >= max_items or used + len(raw) > max_bytes):
                return out, True
            out.append(raw)
            used += len(raw)
        return out, False

    # -- deletions -----------------------------------------------------------------------

    def delete(
        self, location: bytes, raw: bytes, *, now: float, shared: SharedRandom
    ) -> tuple[DeletionOutcome, int]:
        """Apply the owner's deletion ``raw``; the outcome and how many deposits went."""
        try:
            deletion = Deletion.decode(raw)
        except DepositError:
            return DeletionOutcome.MALFORMED, 0
        if position_of(location, deletion.key, shared, self.replicas) is None:
            return DeletionOutcome.WRONG_LOCATION, 0
        try:
            deletion.check(now)
        except DepositError:
            return DeletionOutcome.REFUSED, 0
        removed = 0
        until = {i: now + _TOMBSTONE_LIFE for i in deletion.deposit_ids}
        for p in {p.location for p in positions(deletion.key, shared, self.replicas)}:
            box = self._boxes.get(p)
            for deposit_id in deletion.deposit_ids:
                if box is not None and deposit_id in box.held:
                    until[deposit_id] = float(self._forget(p, deposit_id).deposit.expiry)
                    removed += 1
        for deposit_id, expiry in until.items():
            self._tombstones[deposit_id] = expiry
            self._tombstones.move_to_end(deposit_id)
        while len(self._tombstones) > self.max_tombstones:
            self._tombstones.popitem(last=False)
        return DeletionOutcome.DELETED, removed

    # -- upkeep ---------------------------------------------------------------------------

    def sweep(self, now: float, shared: SharedRandom | None = None) -> int:
        """Drop expired deposits and tombstones, and (given ``shared``) deposits placed with a
        value out of use; returns how many deposits went."""
        self._last_sweep = now
        values = None if shared is None else set(shared.candidates())
        gone = [
            (location, deposit_id)
            for location, box in self._boxes.items()
            for deposit_id, held in box.held.items()
            if held.deposit.expiry <= now or (values is not None and box.value not in values)
        ]
        for location, deposit_id in gone:
            self._forget(location, deposit_id)
        for deposit_id in [i for i, until in self._tombstones.items() if until <= now]:
            del self._tombstones[deposit_id]
        return len(gone)

    def due(
        self, now: float, interval: float, current: bytes, count: int
    ) -> list[tuple[bytes, Position, list[Deposit]]]:
        """Up to ``count`` locations to republish, longest-unrefreshed first: each location,
        where its deposits go (its replica under the ``current`` value), and its live
        deposits."""
        ranked: list[tuple[float, bytes]] = []
        for location, box in self._boxes.items():
            oldest = min(h.stored_at for h in box.held.values())
            if box.value != current:
                if box.moved_to != current:  # placed under an old value: move it, once
                    ranked.append((float("-inf"), location))
            elif oldest <= now - interval:
                ranked.append((oldest, location))
        out = []
        for _, location in sorted(ranked)[:count]:
            box = self._boxes[location]
            target = Position(
                location=position(box.key, current, box.replica), value=current, replica=box.replica
            )
            live = [h.deposit for h in box.held.values() if h.deposit.expiry > now]
            if live:
                out.append((location, target, live))
        return out

    def replicated(self, location: bytes, now: float, current: bytes) -> None:
        """``location``'s deposits were just republished at their position under the
        ``current`` value: not due for another interval."""
        box = self._boxes.get(location)
        if box is not None:
            box.moved_to = current
            for held in box.held.values():
                held.stored_at = max(held.stored_at, now)
