"""Bounded storage of signed records with anti-abuse policy (Kademlia STORE, S/Kademlia 4.3).

Every STORE is checked before it costs memory: payload size, signature,
expiry in the future but at most ``max_ttl`` ahead, ``seq`` strictly above
the stored version (an identical copy is accepted as a refresh, an older or
conflicting one refused: no rollback, no replay), then per-peer rate limits
(token bucket) and quotas (records attributed to the peer that stored
them), then a total bound. ``sweep`` drops expired records. Time is always
handed in.
"""

from __future__ import annotations

import enum
from collections import OrderedDict
from dataclasses import dataclass

from anonsip._errors import LocalError
from anonsip.dht._identity import NodeId
from anonsip.dht._record import MAX_PAYLOAD, DhtRecord

__all__ = ["RecordStore", "StoreOutcome", "TokenBucket"]


class StoreOutcome(enum.Enum):
    STORED = "stored"
    REFRESHED = "refreshed"
    TOO_LARGE = "too-large"
    BAD_SIGNATURE = "bad-signature"
    EXPIRED = "expired"
    TTL_TOO_LONG = "ttl-too-long"
    STALE = "stale"
    CONFLICT = "conflict"
    RATE_LIMITED = "rate-limited"
    QUOTA = "quota"
    FULL = "full"

    @property
    def accepted(self) -> bool:
        return self in (StoreOutcome.STORED, StoreOutcome.REFRESHED)


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
    peer: NodeId


class RecordStore:
    def __init__(
        self,
        *,
        max_records: int = 65536,
        max_per_peer: int = 512,
        max_ttl: float = 24 * 3600.0,
        max_payload: int = MAX_PAYLOAD,
        rate: float = 1.0,
        burst: float = 64.0,
        max_tracked_peers: int = 4096,
    ) -> None:
        if max_records < 1 or max_per_peer < 1:
            raise LocalError("a record store must hold at least one record")
        self.max_records = max_records
        self.max_per_peer = max_per_peer
        self.max_ttl = max_ttl
        self.max_payload = max_payload
        self.rate = rate
        self.burst = burst
        self.max_tracked_peers = max_tracked_peers
        self._records: dict[bytes, _Stored] = {}
        self._per_peer: dict[NodeId, int] = {}
        self._buckets: OrderedDict[NodeId, TokenBucket] = OrderedDict()

    def __len__(self) -> int:
        return len(self._records)

    def get(self, key: bytes, now: float) -> DhtRecord | None:
        stored = self._records.get(key)
        if stored is None or stored.record.expiry <= now:
            return None
        return stored.record

    def records(self, now: float) -> list[DhtRecord]:
        return [s.record for s in self._records.values() if s.record.expiry > now]

    def records_of(self, peer: NodeId) -> int:
        return self._per_peer.get(peer, 0)

    def put(self, record: DhtRecord, *, peer: NodeId, now: float) -> StoreOutcome:
        """Store ``record`` sent by ``peer`` (our own id for our own records) if policy allows."""
        if len(record.payload) > self.max_payload:
            return StoreOutcome.TOO_LARGE
        if record.expiry <= now:
            return StoreOutcome.EXPIRED
        if record.expiry > now + self.max_ttl:
            return StoreOutcome.TTL_TOO_LONG
        key = record.key
        old = self._records.get(key)
        if old is not None and old.record.expiry > now:
            if record == old.record:
                return StoreOutcome.REFRESHED
            if record.seq < old.record.seq:
                return StoreOutcome.STALE
            if record.seq == old.record.seq:
                return StoreOutcome.CONFLICT
        if not self._take_token(peer, now):
            return StoreOutcome.RATE_LIMITED
        # Verify late: the signature check is the expensive step.
        if not record.verify_signature():
            return StoreOutcome.BAD_SIGNATURE
        replacing_own = old is not None and old.peer == peer
        if not replacing_own and self._per_peer.get(peer, 0) >= self.max_per_peer:
            return StoreOutcome.QUOTA
        if old is None and len(self._records) >= self.max_records:
            self.sweep(now)
            if len(self._records) >= self.max_records:
                return StoreOutcome.FULL
        if old is not None:
            self._forget(key)
        self._records[key] = _Stored(record=record, peer=peer)
        self._per_peer[peer] = self._per_peer.get(peer, 0) + 1
        return StoreOutcome.STORED

    def _take_token(self, peer: NodeId, now: float) -> bool:
        bucket = self._buckets.get(peer)
        if bucket is None:
            bucket = TokenBucket(rate=self.rate, burst=self.burst, tokens=self.burst, updated=now)
            self._buckets[peer] = bucket
            while len(self._buckets) > self.max_tracked_peers:
                self._buckets.popitem(last=False)
        else:
            self._buckets.move_to_end(peer)
        return bucket.take(now)

    def _forget(self, key: bytes) -> None:
        stored = self._records.pop(key)
        left = self._per_peer[stored.peer] - 1
        if left:
            self._per_peer[stored.peer] = left
        else:
            del self._per_peer[stored.peer]

    def sweep(self, now: float) -> int:
        """Drop expired records; returns how many."""
        expired = [k for k, s in self._records.items() if s.record.expiry <= now]
        for key in expired:
            self._forget(key)
        return len(expired)
