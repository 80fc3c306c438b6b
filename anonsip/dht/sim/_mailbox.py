"""Mailbox availability over simulated hours of churn, with adversaries, on the real cores.

The network is ``Simulation``'s (same routing tables, same adversary
placement, same anonymous lookups over the event heap). On top of it:

* **Deposits.** ``deposits`` real deposits (sealed letters with a 12-bit
  proof of work, a week's expiry), one to each of as many mailboxes, are
  made as ``DhtClient.deposit`` makes them: a FIND_NODE walk to every
  position of the mailbox (both replicas under the current and previous
  shared random values), then DEPOSIT to the ``store_spread`` closest nodes
  that answered. Senders are random honest nodes; nothing of them is
  needed afterwards (they may leave at once).
* **Hours.** Each simulated hour, ``churn / hours`` of the network leaves
  (online nodes at random, adversaries as likely as anyone) and as many
  newcomers join, as many of them adversarial as the network's share:
  each gets a table seeded from the nodes online now, and the nodes in it
  learn of it (its join walk met them, they dialled it back), as young
  contacts on probation. Over the run ``churn`` of the network has left,
  storing nodes included. At ``srv_change_hour`` a new shared random value
  arrives (the public network's is daily).
* **Republishing.** Then every honest online holder, in random order, runs
  ``DepositStore.due`` as ``DhtNode.republish_deposits`` does: a location
  nobody stored with it for an hour, or one placed under a value that is
  no longer current, goes by a FIND_NODE walk (the holder's own, from its
  own table) to the ``store_spread`` closest nodes of its position under
  the current value; requests to departed nodes count as failures in the
  holder's table. Stores sweep expired deposits and values out of use.
* **Adversaries** accept every DEPOSIT and keep nothing, answer COLLECT
  with nothing, drop requests with probability ``drop``, answer FIND_NODE
  with their colluders closest to the target and never republish.
* **Collect.** At each checkpoint a random honest online node collects
  every mailbox as ``DhtClient.collect`` does: a walk to every position
  under the current and previous values, then COLLECT from the
  ``store_spread`` closest. A deposit is available if the collection
  returns it. Its latency is the slowest position's walk plus one round
  trip for the COLLECT.
"""

from __future__ import annotations

import math
import random
import statistics
from collections.abc import Callable
from dataclasses import dataclass

from anonsip.dht._identity import Contact, NodeId
from anonsip.dht._lookup import LookupKind
from anonsip.dht._messages import (
    Collect,
    DepositResult,
    Deposits,
    Reply,
    Request,
    StoreDeposit,
)
from anonsip.dht._placement import SharedRandom, positions
from anonsip.dht.sim._simulation import SimConfig, Simulation, _Node
from anonsip.identity import TOR_TIME_PERIODS, Identity
from anonsip.mailbox import (
    DEPOSIT_POW_BITS,
    MAX_TTL,
    Deposit,
    Letter,
    LetterKind,
    mailbox_key,
    seal_letter,
)

__all__ = ["Checkpoint", "MailboxConfig", "MailboxReport", "MailboxSimulation"]


@dataclass(frozen=True, slots=True, kw_only=True)
class MailboxConfig:
    network: SimConfig
    deposits: int = 100
    hours: int = 24
    checkpoints: tuple[int, ...] = (0, 6, 12, 18, 24)
    srv_change_hour: int | None = 12
    store_spread: int = 10
    republish: bool = True  # off: the control, holders that never republish


@dataclass(frozen=True, slots=True, kw_only=True)
class Checkpoint:
    hour: int
    available: float  # share of deposits a collection returned
    online: int
    left: int  # nodes of the original network gone by now
    stored_bytes_per_deposit: float  # deposit bytes on honest online nodes, per deposit
    holders_median: float  # honest online nodes holding a deposit, median over deposits
    collect_median_s: float
    collect_p95_s: float
    collect_messages_median: float


@dataclass(frozen=True, slots=True, kw_only=True)
class MailboxReport:
    checkpoints: tuple[Checkpoint, ...]
    deposit_copies_median: float  # copies taken when deposited
    republish_walks: int  # FIND_NODE walks storing nodes made to republish


class MailboxSimulation(Simulation):
    def __init__(self, config: MailboxConfig) -> None:
        self.mailbox = config
        super().__init__(config.network)
        self._original = {c.node_id for c in self.contacts}
        self._newcomers = 0
        self.republish_walks = 0

    # -- the adversary, for mailbox requests --------------------------------------------

    def _adversary_answer(self, node: _Node, request: Request) -> Reply | None:
        if isinstance(request, StoreDeposit):  # takes it, keeps nothing
            return DepositResult(outcome="stored", work=DEPOSIT_POW_BITS, floor=DEPOSIT_POW_BITS)
        if isinstance(request, Collect):
            if self.rng.random() < self.config.drop:
                return None
            return Deposits(deposits=(), more=False)
        return super()._adversary_answer(node, request)

    # -- deposits ---------------------------------------------------------------------

    def _make_deposits(self) -> list[Deposit]:
        c = self.config
        period = TOR_TIME_PERIODS.number_at(self.now)
        rng = random.Random(f"sim-mailbox-{c.seed}")  # noqa: S311 - repeatable
        sender = Identity(seed=rng.randbytes(32))
        out = []
        for n in range(self.mailbox.deposits):
            recipient = Identity(seed=rng.randbytes(32))
            letter = Letter(kind=LetterKind.MESSAGE, message_id=f"m-{n}", time_ms=n, text="hi")
            sealed = seal_letter(sender, recipient.public_key, letter)
            out.append(
                Deposit.make(
                    mailbox=mailbox_key(recipient.public_key, period),
                    expiry=int(self.now) + MAX_TTL,
                    sealed=sealed,
                    rng=rng.randbytes,
                )
            )
        return out

    def _closest(self, origin: _Node, location: bytes) -> tuple[list[Contact], float, int]:
        """A FIND_NODE walk from ``origin``: the closest that answered, its time, messages."""
        c = self.config
        result, elapsed = self.run_lookup(
            origin,
            LookupKind.FIND_NODE,
            NodeId.from_bytes(location),
            paths=c.paths,
            alpha=c.alpha,
        )
        return list(result.closest[: self.mailbox.store_spread]), elapsed, result.messages

    def _deposit(self, sender: _Node, deposit: Deposit) -> int:
        raw = deposit.encode()
        taken = 0
        for p in positions(deposit.key, self.shared, self.config.replicas):
            closest, _, _ = self._closest(sender, p.location)
            for contact in closest:
                reply = self._answer(
                    self.nodes[contact.node_id], StoreDeposit(location=p.location, deposit=raw)
                )
                taken += isinstance(reply, DepositResult) and reply.outcome in _TAKEN
        return taken

    def _collect(self, origin: _Node, key: bytes) -> tuple[set[bytes], float, int]:
        found: set[bytes] = set()
        slowest = 0.0
        messages = 0
        for p in positions(key, self.shared, self.config.replicas):
            closest, elapsed, walked = self._closest(origin, p.location)
            slowest = max(slowest, elapsed + self._rtt())
            messages += walked + len(closest)
            for contact in closest:
                reply = self._answer(self.nodes[contact.node_id], Collect(location=p.location))
                if isinstance(reply, Deposits):
                    found |= {Deposit.decode(raw).deposit_id for raw in reply.deposits}
        return found, slowest, messages

    # -- hours --------------------------------------------------------------------------

    def _churn(self, count: int) -> None:
        online = [n for n in self.nodes.values() if n.online]
        for node in self.rng.sample(online, min(count, len(online))):
            node.online = False
        live = sorted((n.contact for n in self.nodes.values() if n.online), key=lambda x: x.node_id)
        self.contacts = live
        self._ids = [x.node_id.value for x in live]
        for _ in range(count):
            contact = self._new_contact()
            node = self._new_node(contact)
            node.adversary = self.rng.random() < self.config.adversarial
            self.nodes[contact.node_id] = node
            self._seed_table(node.protocol.routing)
            for known in node.protocol.routing.contacts():  # they met it while it joined
                peer = self.nodes[known.node_id].protocol.routing
                ping = peer.seen(contact, self.now)
                if ping is not None:
                    peer.ping_result(ping, alive=self.nodes[ping.node_id].online)
            self._newcomers += 1
        self._index_adversaries()

    def _republish(self) -> None:
        current = self.shared.current
        holders = [
            n
            for n in self.nodes.values()
            if n.online and not n.adversary and len(n.protocol.deposits)
        ]
        self.rng.shuffle(holders)
        for holder in holders:
            store = holder.protocol.deposits
            for location, target, deposits in store.due(self.now, 3600.0, current, 10_000):
                closest, _, _ = self._closest(holder, target.location)
                self.republish_walks += 1
                if target.location != location:
                    for deposit in deposits:
                        holder.protocol.deposit_here(target.location, deposit.encode(), self.now)
                for contact in closest:
                    node = self.nodes[contact.node_id]
                    if not node.online:
                        holder.protocol.routing.failed(contact)
                        continue
                    for deposit in deposits:
                        self._answer(
                            node, StoreDeposit(location=target.location, deposit=deposit.encode())
                        )
                store.replicated(location, self.now, current)

    def _checkpoint(self, hour: int, deposits: list[Deposit]) -> Checkpoint:
        honest = self._honest_online()
        latencies: list[float] = []
        messages: list[float] = []
        found = 0
        holding: dict[bytes, int] = {}
        for n in honest:
            store = n.protocol.deposits
            held = {
                d.deposit_id for loc in store.locations() for d in store.deposits(loc, self.now)
            }
            for deposit_id in held:
                holding[deposit_id] = holding.get(deposit_id, 0) + 1
        holders = [float(holding.get(d.deposit_id, 0)) for d in deposits]
        for deposit in deposits:
            got, elapsed, walked = self._collect(self.rng.choice(honest), deposit.key)
            found += deposit.deposit_id in got
            latencies.append(elapsed)
            messages.append(float(walked))
        stored = sum(n.protocol.deposits.payload_bytes for n in honest)
        online = sum(1 for n in self.nodes.values() if n.online)
        left = sum(1 for i in self._original if not self.nodes[i].online)
        return Checkpoint(
            hour=hour,
            available=found / max(1, len(deposits)),
            online=online,
            left=left,
            stored_bytes_per_deposit=stored / max(1, len(deposits)),
            holders_median=statistics.median(holders) if holders else 0.0,
            collect_median_s=statistics.median(latencies) if latencies else 0.0,
            collect_p95_s=_percentile(latencies, 0.95),
            collect_messages_median=statistics.median(messages) if messages else 0.0,
        )

    def run_hours(self, progress: Callable[[Checkpoint], None] | None = None) -> MailboxReport:
        """Deposit, then live through ``hours`` hours of churn, checking at each checkpoint."""
        m = self.mailbox
        deposits = self._make_deposits()
        copies = [float(self._deposit(self.rng.choice(self._honest_online()), d)) for d in deposits]
        per_hour = self.config.churn * self.config.nodes / max(1, m.hours)
        owed = 0.0
        checkpoints = []
        for hour in range(m.hours + 1):
            if hour:
                self.now += 3600.0
                owed += per_hour
                self._churn(int(owed))
                owed -= int(owed)
                if hour == m.srv_change_hour:
                    self.shared = SharedRandom(
                        current=self.rng.randbytes(32), previous=self.shared.current
                    )
                for node in self.nodes.values():
                    node.protocol.deposits.sweep(self.now, self.shared)
                if m.republish:
                    self._republish()
            if hour in m.checkpoints:
                checkpoint = self._checkpoint(hour, deposits)
                checkpoints.append(checkpoint)
                if progress is not None:
                    progress(checkpoint)
        return MailboxReport(
            checkpoints=tuple(checkpoints),
            deposit_copies_median=statistics.median(copies) if copies else 0.0,
            republish_walks=self.republish_walks,
        )


_TAKEN = {"stored", "refreshed"}


def _percentile(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, math.ceil(q * len(ordered)) - 1)]
