"""The Kademlia routing table: k-buckets by XOR distance (Maymounkov & Mazieres 2002, 2.2-2.4).

Bucket ``i`` holds contacts whose distance to us has bit length ``i + 1``.
Each bucket keeps at most ``k`` contacts ordered least- to most-recently
seen, plus a bounded replacement cache. When a contact is seen and its
bucket is full, the table does not evict anyone on its own: it returns the
least-recently-seen (LRS) contact for the caller to ping, and keeps the
newcomer in the replacement cache. ``ping_result`` then either moves the LRS
contact to the tail (old, live contacts are preferred: they tend to stay) or
drops it and promotes the freshest replacement. Contacts that fail
``stale_after`` requests in a row are dropped the same way.

Only contacts that answered on the onion service we dialled (Tor
authenticated them) may be given to ``seen``: an incoming identity proof is
not enough, the node dials the prover back first. Contacts merely mentioned
by other nodes go to lookups, not here.

Probation. The table remembers when each contact entered it. ``closest``
with ``mature_at`` prefers contacts that entered before that time, so a
node answers FIND_NODE (and seeds lookups) with contacts it has known for
at least the probation period: ids an attacker minted after learning the
shared random value (``_placement``) are not handed out by honest nodes
until that value is long gone. While the table holds fewer mature contacts
than asked for (a young network), the young ones fill in.
Refresh bookkeeping uses the clock value handed in; nothing here reads time.
"""

from __future__ import annotations

import heapq
from collections import OrderedDict
from dataclasses import dataclass, field
from random import Random

from anonsip._errors import LocalError
from anonsip.dht._identity import ID_BITS, Contact, NodeId

__all__ = ["RoutingTable"]


@dataclass(slots=True)
class _Bucket:
    contacts: OrderedDict[NodeId, Contact] = field(default_factory=OrderedDict)
    since: dict[NodeId, float] = field(default_factory=dict)
    replacements: OrderedDict[NodeId, Contact] = field(default_factory=OrderedDict)
    failures: dict[NodeId, int] = field(default_factory=dict)
    pinging: NodeId | None = None
    last_lookup: float = 0.0


class RoutingTable:
    """k-buckets around ``own_id``; bounded at ``ID_BITS * (k + replacements)`` contacts."""

    def __init__(
        self,
        own_id: NodeId,
        *,
        now: float,
        rng: Random,
        k: int = 20,
        replacement_cache: int | None = None,
        refresh_interval: float = 3600.0,
        stale_after: int = 2,
    ) -> None:
        if k < 1:
            raise LocalError("k must be at least 1")
        self.own_id = own_id
        self.k = k
        self.replacement_cache = k if replacement_cache is None else replacement_cache
        self.refresh_interval = refresh_interval
        self.stale_after = stale_after
        self._rng = rng
        self._created = now
        self._buckets: dict[int, _Bucket] = {}

    def __len__(self) -> int:
        return sum(len(b.contacts) for b in self._buckets.values())

    def __contains__(self, node_id: object) -> bool:
        if not isinstance(node_id, NodeId) or node_id == self.own_id:
            return False
        bucket = self._buckets.get(self.own_id.bucket_index(node_id))
        return bucket is not None and node_id in bucket.contacts

    def contacts(self) -> list[Contact]:
        return [c for b in self._buckets.values() for c in b.contacts.values()]

    def get(self, node_id: NodeId) -> Contact | None:
        bucket = self._buckets.get(self.own_id.bucket_index(node_id))
        return None if bucket is None else bucket.contacts.get(node_id)

    def _bucket(self, node_id: NodeId) -> _Bucket:
        index = self.own_id.bucket_index(node_id)
        bucket = self._buckets.get(index)
        if bucket is None:
            bucket = self._buckets[index] = _Bucket(last_lookup=self._created)
        return bucket

    def seen(self, contact: Contact, now: float = 0.0) -> Contact | None:
        """Record that ``contact`` (verified) just answered us, at ``now``.

        Returns the least-recently-seen contact of a full bucket that the
        caller must ping and report on with ``ping_result``; ``None`` if no
        liveness check is needed.
        """
        if contact.node_id == self.own_id:
            return None
        bucket = self._bucket(contact.node_id)
        node_id = contact.node_id
        bucket.failures.pop(node_id, None)
        if node_id in bucket.contacts:
            bucket.contacts[node_id] = contact  # the port may have changed
            bucket.contacts.move_to_end(node_id)
            return None
        if len(bucket.contacts) < self.k:
            bucket.contacts[node_id] = contact
            bucket.since[node_id] = now
            bucket.replacements.pop(node_id, None)
            return None
        bucket.since.setdefault(node_id, now)  # its probation runs while it waits
        bucket.replacements[node_id] = contact
        bucket.replacements.move_to_end(node_id)
        while len(bucket.replacements) > self.replacement_cache:
            gone, _ = bucket.replacements.popitem(last=False)
            bucket.since.pop(gone, None)
        if bucket.pinging is not None:
            return None  # one liveness check per bucket at a time
        lrs = next(iter(bucket.contacts.values()))
        bucket.pinging = lrs.node_id
        return lrs

    def ping_result(self, contact: Contact, *, alive: bool) -> None:
        """The answer to a liveness check asked for by ``seen``."""
        bucket = self._bucket(contact.node_id)
        if bucket.pinging == contact.node_id:
            bucket.pinging = None
        if alive:
            if contact.node_id in bucket.contacts:
                bucket.contacts.move_to_end(contact.node_id)
                bucket.failures.pop(contact.node_id, None)
        else:
            self._drop(bucket, contact.node_id)

    def failed(self, contact: Contact) -> None:
        """A request to ``contact`` failed or timed out; drop it after ``stale_after`` in a row."""
        if contact.node_id == self.own_id:
            return
        bucket = self._bucket(contact.node_id)
        if contact.node_id in bucket.replacements:
            del bucket.replacements[contact.node_id]
            bucket.since.pop(contact.node_id, None)
            return
        if contact.node_id not in bucket.contacts:
            return
        count = bucket.failures.get(contact.node_id, 0) + 1
        bucket.failures[contact.node_id] = count
        if count >= self.stale_after:
            self._drop(bucket, contact.node_id)

    def remove(self, node_id: NodeId) -> None:
        self._drop(self._bucket(node_id), node_id)

    def _drop(self, bucket: _Bucket, node_id: NodeId) -> None:
        bucket.failures.pop(node_id, None)
        bucket.since.pop(node_id, None)
        bucket.replacements.pop(node_id, None)
        if bucket.pinging == node_id:
            bucket.pinging = None
        if bucket.contacts.pop(node_id, None) is not None and bucket.replacements:
            new_id, new = bucket.replacements.popitem(last=True)
            bucket.contacts[new_id] = new

    def mature(self, mature_at: float) -> list[Contact]:
        """Contacts that entered the table at or before ``mature_at``."""
        return [
            c
            for b in self._buckets.values()
            for c in b.contacts.values()
            if b.since.get(c.node_id, 0.0) <= mature_at
        ]

    def closest(
        self,
        target: NodeId,
        count: int | None = None,
        exclude: NodeId | None = None,
        *,
        mature_at: float | None = None,
    ) -> list[Contact]:
        """Up to ``count`` (default k) known contacts closest to ``target``, closest first.

        With ``mature_at``, only contacts known since then, unless fewer than
        ``count`` such contacts exist in the whole table.
        """
        n = self.k if count is None else count
        t = target.value
        pool = self.contacts()
        if mature_at is not None:
            mature = self.mature(mature_at)
            if len([c for c in mature if c.node_id != exclude]) >= n:
                pool = mature
        return heapq.nsmallest(
            n,
            (c for c in pool if c.node_id != exclude),
            key=lambda c: c.node_id.value ^ t,
        )

    def closer_than_us(self, target: NodeId, *, mature_at: float | None = None) -> int:
        """How many known (mature) contacts are closer to ``target`` than this node."""
        ours = self.own_id.value ^ target.value
        pool = self.contacts() if mature_at is None else self.mature(mature_at)
        return sum(1 for c in pool if c.node_id.value ^ target.value < ours)

    def siblings(self, count: int | None = None) -> list[Contact]:
        """Our own neighbourhood (S/Kademlia's sibling list)."""
        return self.closest(self.own_id, count)

    def touch(self, target: NodeId, now: float) -> None:
        """A lookup for ``target`` finished: its bucket counts as refreshed."""
        if target != self.own_id:
            self._bucket(target).last_lookup = now

    def refresh_targets(self, now: float) -> list[NodeId]:
        """Random ids in every non-empty bucket not looked up within ``refresh_interval``.

        Buckets nearer to us than the nearest filled one are skipped: in a
        network of N nodes only about log2(N) buckets can ever fill.
        """
        filled = [i for i, b in self._buckets.items() if b.contacts]
        if not filled:
            return []
        targets = []
        for index in range(min(filled), ID_BITS):
            bucket = self._buckets.get(index)
            last = self._created if bucket is None else bucket.last_lookup
            if now - last >= self.refresh_interval:
                targets.append(NodeId.random_in_bucket(self.own_id, index, self._rng))
        return targets

    def statistics(self) -> dict[str, int]:
        return {
            "contacts": len(self),
            "buckets": sum(1 for b in self._buckets.values() if b.contacts),
            "replacements": sum(len(b.replacements) for b in self._buckets.values()),
        }
