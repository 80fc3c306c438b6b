"""The iterative node lookup as a sans-IO state machine (Kademlia 2.3, S/Kademlia 4.4).

Kademlia finds the k nodes closest to a target by asking, ``alpha`` at a
time, the closest nodes it knows but has not asked yet, and stops when the k
closest it has heard of have all answered. FIND_VALUE is the same walk that
stops early on a path as soon as a node returns a valid record (unless
``stop_at_first_value`` is off: then the walk converges and keeps the
highest ``seq``), and ends once ``value_quorum`` paths hold a value.

S/Kademlia hardens this with ``d`` disjoint paths: the starting contacts are
dealt round-robin to ``d`` independent shortlists, each path runs its own
alpha-parallel walk, and a node belongs to the first path that hears of it,
so no node is ever queried by two paths. An adversary has to capture every
path to hide a value; one honest path is enough.

FIND_VALUE asks for a storage location (``_placement``); a value counts only
if it is a valid record of ``record_key`` (signature, not expired), so a
node cannot answer with some other record parked at that location.

Hedging (what a dead or slow node costs). A FIND_VALUE request that has not
been answered within a short soft deadline (``hedge_after``, far below the
request's own deadline) is *stalled*: it no longer holds one of its path's
``alpha`` slots, so the next candidate is asked at once, and it no longer
stands in the way of convergence (the path's frontier is the k closest
candidates neither failed nor stalled, unless fewer than k are left: then
stalled requests are waited for). It is still awaited: a late answer counts
as any other (it may even un-converge a path still running), a late failure
as a failure. A dead node so costs a FIND_VALUE ``hedge_after`` instead of
its whole deadline. And once a path holds a value, a driver may give the
other paths a grace period (``ResponseTimes.grace``) rather than wait for
each to find one or walk to convergence (a path can converge far from the
value when another path heard of its holders first), then ``cut`` the
lookup. ``ResponseTimes`` turns the answers a driver saw into the soft
deadline: twice the median, within bounds.

A FIND_NODE finds where copies go and ignores stalls: the simulator showed
hedged placement walks with 20 % adversarial nodes asking more nodes and
leaving fewer honest holders (mailbox holders, median, 10.5 -> 5 after 12
hours of churn), so it waits for its closest nodes as before.

The driver (simulator or trio adapter) asks ``next_requests()``, sends each
request, and reports ``on_response``, ``on_failure`` or ``on_timeout`` (the
driver owns deadlines), and ``on_stalled`` when a request passes the soft
deadline. It stops when ``done`` and reads ``result()``.

Per-path candidate states (one table, only ``_transition`` changes them):

    WAITING --send--> IN_FLIGHT --response--> RESPONDED
                                --failure/timeout/invalid--> FAILED
                                --stall--> STALLED --response--> RESPONDED
                                                   --failure/timeout/invalid--> FAILED
"""

from __future__ import annotations

import enum
import statistics
from collections import deque
from dataclasses import dataclass, field

from anonsip._errors import LocalError
from anonsip.dht._identity import Contact, NodeId, satisfies_puzzle
from anonsip.dht._messages import Error, FindNode, FindValue, Nodes, Reply, Request, Value
from anonsip.dht._record import DhtRecord

__all__ = ["Lookup", "LookupKind", "LookupResult", "ResponseTimes"]


class LookupKind(enum.Enum):
    FIND_NODE = "find-node"
    FIND_VALUE = "find-value"


class _State(enum.Enum):
    WAITING = "waiting"
    IN_FLIGHT = "in-flight"
    STALLED = "stalled"
    RESPONDED = "responded"
    FAILED = "failed"


_TRANSITIONS: dict[tuple[_State, str], _State] = {
    (_State.WAITING, "send"): _State.IN_FLIGHT,
    (_State.IN_FLIGHT, "response"): _State.RESPONDED,
    (_State.IN_FLIGHT, "failure"): _State.FAILED,
    (_State.IN_FLIGHT, "stall"): _State.STALLED,
    (_State.STALLED, "response"): _State.RESPONDED,
    (_State.STALLED, "failure"): _State.FAILED,
}
_OUTSTANDING = (_State.IN_FLIGHT, _State.STALLED)


@dataclass(slots=True)
class _Candidate:
    contact: Contact
    distance: int
    depth: int
    state: _State = _State.WAITING


@dataclass(slots=True)
class _Path:
    candidates: dict[NodeId, _Candidate] = field(default_factory=dict)
    in_flight: int = 0
    sent: int = 0
    done: bool = False
    record: DhtRecord | None = None
    record_depth: int = 0


@dataclass(frozen=True, slots=True, kw_only=True)
class LookupResult:
    """What a finished lookup learnt, and what it cost."""

    closest: tuple[Contact, ...]
    record: DhtRecord | None
    messages: int
    hops: int
    failures: int
    timeouts: int
    paths_with_value: int
    stalls: int = 0  # requests that passed the soft deadline (and were hedged)


class Lookup:
    def __init__(
        self,
        *,
        kind: LookupKind,
        target: NodeId,
        own_id: NodeId | None,
        seeds: list[Contact],
        now: float,
        record_key: bytes | None = None,
        k: int = 20,
        alpha: int = 3,
        paths: int = 1,
        difficulty: int = 0,
        max_requests_per_path: int = 200,
        stop_at_first_value: bool = True,
        value_quorum: int | None = None,
    ) -> None:
        if alpha < 1 or paths < 1 or k < 1:
            raise LocalError("a lookup needs k, alpha and paths of at least 1")
        if kind is LookupKind.FIND_VALUE and record_key is None:
            raise LocalError("a FIND_VALUE lookup needs the key of the record it looks for")
        self.kind = kind
        self.target = target
        self.own_id = own_id
        self.k = k
        self.alpha = alpha
        self.difficulty = difficulty
        self.max_requests_per_path = max_requests_per_path
        self.stop_at_first_value = stop_at_first_value
        # FIND_VALUE is done once this many paths hold a value (default: every path ends).
        self.value_quorum = paths if value_quorum is None else max(1, min(value_quorum, paths))
        self._now = now
        self._location = target.to_bytes()
        self._record_key = record_key
        self._owner: dict[NodeId, int] = {}
        self._paths = [_Path() for _ in range(paths)]
        self.messages = 0
        self.failures = 0
        self.timeouts = 0
        self.stalls = 0
        t = target.value
        ordered = sorted(
            {c.node_id: c for c in seeds if c.node_id != own_id}.values(),
            key=lambda c: c.node_id.value ^ t,
        )
        for i, contact in enumerate(ordered):
            self._add(i % paths, contact, depth=1)
        self._update_done()

    # -- bookkeeping ------------------------------------------------------

    def _add(self, path_index: int, contact: Contact, depth: int) -> None:
        owner = self._owner.get(contact.node_id)
        if owner is None:
            if contact.node_id == self.own_id or not satisfies_puzzle(
                contact.public_key, self.difficulty
            ):
                return
            self._owner[contact.node_id] = path_index
            self._paths[path_index].candidates[contact.node_id] = _Candidate(
                contact=contact, distance=contact.node_id.value ^ self.target.value, depth=depth
            )
        elif owner == path_index:
            candidate = self._paths[path_index].candidates[contact.node_id]
            candidate.depth = min(candidate.depth, depth)
        # else: another path owns it; disjointness forbids sharing.

    @staticmethod
    def _transition(candidate: _Candidate, event: str) -> bool:
        new = _TRANSITIONS.get((candidate.state, event))
        if new is None:
            return False
        candidate.state = new
        return True

    def _frontier(self, path: _Path) -> list[_Candidate]:
        """The k closest candidates of a path that have neither failed nor stalled."""
        gone = (_State.FAILED, _State.STALLED)
        alive = [c for c in path.candidates.values() if c.state not in gone]
        alive.sort(key=lambda c: c.distance)
        return alive[: self.k]

    def _update_path(self, path: _Path) -> None:
        if path.done:
            return
        if path.record is not None and self.stop_at_first_value:
            path.done = True
            return
        frontier = self._frontier(path)
        # With fewer than k candidates left standing, a stalled request may still bring
        # the rest: wait for it (or its deadline) then, and only then.
        waiting = len(frontier) < self.k and any(
            c.state is _State.STALLED for c in path.candidates.values()
        )
        converged = not waiting and all(c.state is _State.RESPONDED for c in frontier)
        exhausted = path.sent >= self.max_requests_per_path and path.in_flight == 0
        path.done = converged or exhausted

    def _update_done(self) -> None:
        for path in self._paths:
            self._update_path(path)

    # -- the driver's interface ---------------------------------------------

    @property
    def has_value(self) -> bool:
        """Whether some path holds a valid value (the driver's grace period starts)."""
        return any(p.record is not None for p in self._paths)

    @property
    def confirmed(self) -> bool:
        """Whether ``value_quorum`` paths hold a value (a FIND_VALUE's own end)."""
        return sum(1 for p in self._paths if p.record is not None) >= self.value_quorum

    def cut(self) -> None:
        """The driver stops waiting (its grace period after the first value ran out): the
        lookup is done with what it has."""
        for path in self._paths:
            path.done = True

    @property
    def done(self) -> bool:
        if all(p.done for p in self._paths):
            return True
        found = sum(1 for p in self._paths if p.done and p.record is not None)
        return self.kind is LookupKind.FIND_VALUE and found >= self.value_quorum

    def _request(self) -> Request:
        if self.kind is LookupKind.FIND_NODE:
            return FindNode(target=self.target)
        return FindValue(key=self._location)

    def next_requests(self) -> list[tuple[Contact, Request]]:
        """Requests to send now: up to ``alpha`` in flight per unfinished path."""
        out: list[tuple[Contact, Request]] = []
        for path in self._paths:
            if path.done:
                continue
            for candidate in self._frontier(path):
                if path.in_flight >= self.alpha or path.sent >= self.max_requests_per_path:
                    break
                if candidate.state is _State.WAITING:
                    self._transition(candidate, "send")
                    path.in_flight += 1
                    path.sent += 1
                    self.messages += 1
                    out.append((candidate.contact, self._request()))
            self._update_path(path)
        return out

    def _in_flight(self, contact: Contact) -> tuple[_Path, _Candidate] | None:
        """The path and candidate of an outstanding (in flight or stalled) request."""
        owner = self._owner.get(contact.node_id)
        if owner is None:
            return None
        path = self._paths[owner]
        candidate = path.candidates.get(contact.node_id)
        if candidate is None or candidate.state not in _OUTSTANDING:
            return None
        return path, candidate

    def _settle(self, path: _Path, candidate: _Candidate, event: str) -> None:
        """``candidate``'s request ended; it gives back its slot unless it stalled."""
        if candidate.state is _State.IN_FLIGHT:
            path.in_flight -= 1
        self._transition(candidate, event)

    def on_response(self, contact: Contact, reply: Reply) -> None:
        """``contact`` answered; unsolicited or late answers are ignored."""
        found = self._in_flight(contact)
        if found is None:
            return
        path, candidate = found
        if isinstance(reply, Error):
            self._fail(path, candidate)
            return
        if isinstance(reply, Value):
            if (
                self.kind is not LookupKind.FIND_VALUE
                or self._record_key is None
                or not reply.record.is_valid_for(self._record_key, self._now)
            ):
                self._fail(path, candidate)  # a forged or stale-beyond-expiry value
                return
            if path.record is None or reply.record.seq > path.record.seq:
                path.record = reply.record
                path.record_depth = candidate.depth
        elif not isinstance(reply, Nodes):
            self._fail(path, candidate)
            return
        self._settle(path, candidate, "response")
        index = self._paths.index(path)
        for learnt in reply.contacts[: self.k]:
            self._add(index, learnt, candidate.depth + 1)
        self._update_path(path)

    def _fail(self, path: _Path, candidate: _Candidate) -> None:
        self.failures += 1
        self._settle(path, candidate, "failure")
        self._update_path(path)

    def on_stalled(self, contact: Contact) -> None:
        """The request to ``contact`` passed the soft deadline: ask the next candidate now,
        and stop waiting for this one to converge (its answer still counts if it comes)."""
        if self.kind is LookupKind.FIND_NODE:
            return  # placement walks wait for the closest nodes (module docstring)
        found = self._in_flight(contact)
        if found is None or found[1].state is not _State.IN_FLIGHT:
            return
        path, candidate = found
        self.stalls += 1
        self._settle(path, candidate, "stall")
        self._update_path(path)

    def on_failure(self, contact: Contact) -> None:
        """The request to ``contact`` failed (connection refused, protocol error)."""
        found = self._in_flight(contact)
        if found is not None:
            self._fail(*found)

    def on_timeout(self, contact: Contact) -> None:
        """The request to ``contact`` passed its deadline (the driver's clock)."""
        found = self._in_flight(contact)
        if found is not None:
            self.timeouts += 1
            self._fail(*found)

    def path_of(self, contact: Contact) -> int | None:
        """Which path owns ``contact`` (each node belongs to at most one)."""
        return self._owner.get(contact.node_id)

    def responded(self) -> list[Contact]:
        """Every contact that answered (their identity is proven: we dialled their onion)."""
        return [
            c.contact
            for p in self._paths
            for c in p.candidates.values()
            if c.state is _State.RESPONDED
        ]

    def result(self) -> LookupResult:
        answered = [
            c for p in self._paths for c in p.candidates.values() if c.state is _State.RESPONDED
        ]
        answered.sort(key=lambda c: c.distance)
        closest = answered[: self.k]
        with_value = [p for p in self._paths if p.record is not None]
        record = None
        if with_value:
            best = max(with_value, key=lambda p: p.record.seq if p.record else -1)
            record = best.record
            hops = best.record_depth
        else:
            hops = max((c.depth for c in closest), default=0)
        return LookupResult(
            closest=tuple(c.contact for c in closest),
            record=record,
            messages=self.messages,
            hops=hops,
            failures=self.failures,
            timeouts=self.timeouts,
            paths_with_value=len(with_value),
            stalls=self.stalls,
        )


class ResponseTimes:
    """How long answers took lately, and the soft deadline that follows from it.

    The deadline is ``factor`` times the median of the last ``window``
    answers, within ``[floor, ceiling]``; ``initial`` until ``minimum``
    answers were seen. Only durations are kept, nothing of who answered.
    """

    def __init__(
        self,
        *,
        initial: float,
        floor: float,
        ceiling: float,
        factor: float = 2.0,
        window: int = 64,
        minimum: int = 8,
    ) -> None:
        if not 0 < floor <= ceiling or factor < 1 or window < 1 or minimum < 1:
            raise LocalError("a soft deadline needs 0 < floor <= ceiling, factor >= 1")
        self.initial = initial
        self.floor = floor
        self.ceiling = ceiling
        self.factor = factor
        self.minimum = minimum
        self._seen: deque[float] = deque(maxlen=window)

    def add(self, seconds: float) -> None:
        self._seen.append(max(0.0, seconds))

    def hedge_after(self) -> float:
        """The soft deadline: a request not answered by then is stalled."""
        if len(self._seen) < self.minimum:
            guess = self.initial
        else:
            guess = self.factor * statistics.median(self._seen)
        return min(self.ceiling, max(self.floor, guess))

    def grace(self) -> float:
        """How long other paths (or positions) may still look once one found a value: one
        soft deadline. (Half of it cut the median further but let stale copies win more
        often in the simulator: fewer paths vouch for the newest version.)"""
        return self.hedge_after()
