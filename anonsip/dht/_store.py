"""Bounded storage of signed records, authorised by the records themselves (Kademlia STORE).

A STORE may come from an anonymous client, so nothing here knows or needs
who sent it. A record is kept only if every check passes, cheapest first:

1. its kind is one this node stores and the payload fits that kind's cap;
2. expiry in the future, at most ``max_ttl`` ahead;
3. the location is one of the record's positions under a shared random
   value this node believes in (``anonsip.dht._placement``), so a record
   cannot be parked at an arbitrary point of the key space;
4. ``seq`` strictly above the stored copy's (an identical copy is a
   refresh; an older or conflicting one is refused: no rollback, no replay);
5. the record's signature, then the payload as its kind (``_kinds``);
6. a rate limit with no sender identity: a token bucket per record key,
   spent only by validly signed records, so only the key's holder can use
   up its own updates (no fresh node id or connection resets it, and no
   one else can drain it);
7. the bounds: at most ``max_records`` records and ``max_bytes`` of
   payload. When full, a record whose location is closer to this node than
   the farthest stored one evicts it: a node keeps what it is responsible
   for, and an attacker must grind keys whose positions land nearer to it
   than the records it holds (about N/k keys per record in a network of N
   nodes) to push anything out. A global bucket for new records would be
   a lever for refusing honest records, so there is none.

The protocol layer adds the check that needs the routing table (is this
node among those that should hold the location). ``sweep`` drops expired
records and those placed with a shared random value no longer in use.
Time is always handed in.
"""

from __future__ import annotations

import bisect
import enum
import heapq
from collections import OrderedDict
from dataclasses import dataclass

from anonsip._errors import LocalError
from anonsip.dht._identity import NodeId
from anonsip.dht._kinds import KindVerdict, check_kind, max_payload_of
from anonsip.dht._placement import DEFAULT_REPLICAS, SharedRandom, value_of_location
from anonsip.dht._record import DhtRecord

__all__ = ["RecordStore", "StoreOutcome", "TokenBucket"]


class StoreOutcome(enum.Enum):
    STORED = "stored"
    REFRESHED = "refreshed"
    UNKNOWN_KIND = "unknown-kind"
    TOO_LARGE = "too-large"
    MALFORMED = "malformed"
    BAD_SIGNATURE = "bad-signature"
    EXPIRED = "expired"
    TTL_TOO_LONG = "ttl-too-long"
    WRONG_LOCATION = "wrong-location"
    NOT_RESPONSIBLE = "not-responsible"
    STALE = "stale"
    CONFLICT = "conflict"
    RATE_LIMITED = "rate-limited"
    FULL = "full"

    @property
    def accepted(self) -> bool:
        return self in (StoreOutcome.STORED, StoreOutcome.REFRESHED)


_FROM_KIND = {
    KindVerdict.UNKNOWN_KIND: StoreOutcome.UNKNOWN_KIND,
    KindVerdict.TOO_LARGE: StoreOutcome.TOO_LARGE,
    KindVerdict.MALFORMED: StoreOutcome.MALFORMED,
}


@dataclass(slots=True)
class TokenBucket:
    """``rate`` tokens per second, at most ``burst`` saved up."""

    rate: float
    burst: float
    tokens: float
    updated: float

    def take(self, now: float) -> bool:
        self.tokens = min(self.burst, self.tokens + max(0.0, now - self.updated) * self.rate)
        self.updated = max(self.updated, now)
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return True
        return False


@dataclass(frozen=True, slots=True)
class _Stored:
    record: DhtRecord
    value: bytes  # the shared random value the location derives from


class RecordStore:
    def __init__(
        self,
        *,
        max_records: int = 32768,
        max_bytes: int = 24 * 1024 * 1024,
        max_ttl: float = 24 * 3600.0,
        replicas: int = DEFAULT_REPLICAS,
        key_rate: float = 1 / 30,
        key_burst: float = 16.0,
        max_tracked_keys: int = 8192,
    ) -> None:
        if max_records < 1 or max_bytes < 1:
            raise LocalError("a record store must hold at least one record")
        self.max_records = max_records
        self.max_bytes = max_bytes
        self.max_ttl = max_ttl
        self.replicas = replicas
        self.key_rate = key_rate
        self.key_burst = key_burst
        self.max_tracked_keys = max_tracked_keys
        self._records: dict[bytes, _Stored] = {}
        self._bytes = 0
        self._key_buckets: OrderedDict[bytes, TokenBucket] = OrderedDict()
        # Farthest-first eviction: a max-heap of (-distance to our id, location),
        # stale entries skipped when popped and compacted when it doubles.
        self._own: NodeId | None = None
        self._far: list[tuple[int, bytes]] = []
        self._last_sweep = float("-inf")

    def __len__(self) -> int:
        return len(self._records)

    @property
    def payload_bytes(self) -> int:
        return self._bytes

    def get(self, location: bytes, now: float) -> DhtRecord | None:
        stored = self._records.get(location)
        if stored is None or stored.record.expiry <= now:
            return None
        return stored.record

    def entries(self, now: float) -> list[tuple[bytes, DhtRecord]]:
        """Every live (location, record), in location order."""
        return sorted((loc, s.record) for loc, s in self._records.items() if s.record.expiry > now)

    def after(self, cursor: bytes, count: int, now: float) -> list[tuple[bytes, DhtRecord]]:
        """Up to ``count`` live entries whose location follows ``cursor``, wrapping around.

        Replication walks the store with this, so every record gets its turn.
        """
        entries = self.entries(now)
        start = bisect.bisect_right([loc for loc, _ in entries], cursor)
        ordered = entries[start:] + entries[:start]
        return ordered[:count]

    def put(
        self,
        location: bytes,
        record: DhtRecord,
        *,
        now: float,
        shared: SharedRandom,
        own: NodeId | None = None,
    ) -> StoreOutcome:
        """Store ``record`` at ``location`` if policy allows; ``own`` is this node's id."""
        if max_payload_of(record.kind) == 0:
            return StoreOutcome.UNKNOWN_KIND
        if len(record.payload) > max_payload_of(record.kind):
            return StoreOutcome.TOO_LARGE
        if record.expiry <= now:
            return StoreOutcome.EXPIRED
        if record.expiry > now + self.max_ttl:
            return StoreOutcome.TTL_TOO_LONG
        value = value_of_location(location, record.key, shared, self.replicas)
        if value is None:
            return StoreOutcome.WRONG_LOCATION
        old = self._records.get(location)
        if old is not None and old.record.expiry > now:
            if record == old.record:
                return StoreOutcome.REFRESHED
            if record.seq < old.record.seq:
                return StoreOutcome.STALE
            if record.seq == old.record.seq:
                return StoreOutcome.CONFLICT
        # The expensive steps come after every cheap refusal.
        if not record.verify_signature():
            return StoreOutcome.BAD_SIGNATURE
        verdict = check_kind(record)
        if verdict is not KindVerdict.OK:
            return _FROM_KIND[verdict]
        if not self._take_key_token(record.key, now):
            return StoreOutcome.RATE_LIMITED
        if own != self._own:
            self._own = own
            self._rebuild_heap()
        if old is not None:
            self._forget(location)
        elif not self._make_room(location, len(record.payload), now):
            return StoreOutcome.FULL
        self._records[location] = _Stored(record=record, value=value)
        self._bytes += len(record.payload)
        self._push(location)
        return StoreOutcome.STORED

    def _distance(self, location: bytes) -> int:
        assert self._own is not None
        return self._own.value ^ int.from_bytes(location, "big")

    def _push(self, location: bytes) -> None:
        if self._own is None:
            return
        heapq.heappush(self._far, (-self._distance(location), location))
        if len(self._far) > 2 * len(self._records) + 64:
            self._rebuild_heap()

    def _rebuild_heap(self) -> None:
        self._far = []
        if self._own is not None:
            self._far = [(-self._distance(loc), loc) for loc in self._records]
            heapq.heapify(self._far)

    def _make_room(self, location: bytes, size: int, now: float) -> bool:
        def full() -> bool:
            return len(self._records) >= self.max_records or self._bytes + size > self.max_bytes

        if not full():
            return True
        if now - self._last_sweep >= 1.0:  # at most once a second: a sweep reads every record
            self.sweep(now)
        if self._own is None:
            return not full()
        mine = self._distance(location)
        while full():
            while self._far and self._far[0][1] not in self._records:
                heapq.heappop(self._far)
            if not self._far or -self._far[0][0] <= mine:
                return False
            self._forget(heapq.heappop(self._far)[1])
        return True

    def _take_key_token(self, key: bytes, now: float) -> bool:
        bucket = self._key_buckets.get(key)
        if bucket is None:
            bucket = TokenBucket(
                rate=self.key_rate, burst=self.key_burst, tokens=self.key_burst, updated=now
            )
            self._key_buckets[key] = bucket
            while len(self._key_buckets) > self.max_tracked_keys:
                self._key_buckets.popitem(last=False)
        else:
            self._key_buckets.move_to_end(key)
        return bucket.take(now)

    def _forget(self, location: bytes) -> None:
        stored = self._records.pop(location)
        self._bytes -= len(stored.record.payload)

    def sweep(self, now: float, shared: SharedRandom | None = None) -> int:
        """Drop expired records, and (given ``shared``) those placed with a value out of use."""
        self._last_sweep = now
        values = None if shared is None else set(shared.candidates())
        gone = [
            loc
            for loc, s in self._records.items()
            if s.record.expiry <= now or (values is not None and s.value not in values)
        ]
        for location in gone:
            self._forget(location)
        return len(gone)
