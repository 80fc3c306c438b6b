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

The driver (simulator or trio adapter) asks ``next_requests()``, sends each
request, and reports ``on_response``, ``on_failure`` or ``on_timeout`` (the
driver owns deadlines). It stops when ``done`` and reads ``result()``.

Per-path candidate states (one table, only ``_transition`` changes them):

    WAITING --send--> IN_FLIGHT --response--> RESPONDED
                                --failure/timeout/invalid--> FAILED
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

from anonsip._errors import LocalError
from anonsip.dht._identity import Contact, NodeId, satisfies_puzzle
from anonsip.dht._messages import Error, FindNode, FindValue, Nodes, Reply, Request, Value
from anonsip.dht._record import DhtRecord

__all__ = ["Lookup", "LookupKind", "LookupResult"]


class LookupKind(enum.Enum):
    FIND_NODE = "find-node"
    FIND_VALUE = "find-value"


class _State(enum.Enum):
    WAITING = "waiting"
    IN_FLIGHT = "in-flight"
    RESPONDED = "responded"
    FAILED = "failed"


_TRANSITIONS: dict[tuple[_State, str], _State] = {
    (_State.WAITING, "send"): _State.IN_FLIGHT,
    (_State.IN_FLIGHT, "response"): _State.RESPONDED,
    (_State.IN_FLIGHT, "failure"): _State.FAILED,
}


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
        """The k closest candidates of a path that have not failed."""
        alive = [c for c in path.candidates.values() if c.state is not _State.FAILED]
        alive.sort(key=lambda c: c.distance)
        return alive[: self.k]

    def _update_path(self, path: _Path) -> None:
        if path.done:
            return
        if path.record is not None and self.stop_at_first_value:
            path.done = True
            return
        frontier = self._frontier(path)
        converged = all(c.state is _State.RESPONDED for c in frontier)
        exhausted = path.sent >= self.max_requests_per_path and path.in_flight == 0
        path.done = converged or exhausted

    def _update_done(self) -> None:
        for path in self._paths:
            self._update_path(path)

    # -- the driver's interface ---------------------------------------------

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
        owner = self._owner.get(contact.node_id)
        if owner is None:
            return None
        path = self._paths[owner]
        candidate = path.candidates.get(contact.node_id)
        if candidate is None or candidate.state is not _State.IN_FLIGHT:
            return None
        return path, candidate

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
        self._transition(candidate, "response")
        path.in_flight -= 1
        index = self._paths.index(path)
        for learnt in reply.contacts[: self.k]:
            self._add(index, learnt, candidate.depth + 1)
        self._update_path(path)

    def _fail(self, path: _Path, candidate: _Candidate) -> None:
        self.failures += 1
        self._transition(candidate, "failure")
        path.in_flight -= 1
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
        )
