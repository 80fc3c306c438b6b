"""Where a record lives: storage positions nobody can compute before the shared random value exists.

Kademlia stores a value on the nodes closest to its key. If that key were
fixed (the hash of a blinded key, which anyone who knows the address can
compute for every future period) an attacker could grind node ids next to
it at leisure and be waiting there. So, as Tor places onion-service
descriptors on the HSDir ring with the consensus's shared random value
(rend-spec-v3 2.2.3, proposal 250), a record is stored at

    position(key, srv, r) = SHA3-256("anonsip-dht-store-at" | key | srv | INT_1(r))   r < replicas

for the network's current shared random value ``srv``: a value the
directory authorities produce by commit-and-reveal and publish in the
consensus (``shared-rand-current-value``), which nobody can predict or
choose before it appears. The replicas are independent points of the key
space, so an attacker has to capture all of them.

Agreement despite skew: publishers store under the current *and* the
previous value, lookers ask the current value's positions first and the
previous one's next, so a node whose consensus is one value behind or
ahead of another still meets it. With no value in the consensus (a young
private network, or a consensus without one), Tor's disaster value
``SHA3-256("shared-random-disaster" | INT_8(period length) | INT_8(period))``
stands in for the current value and, with no previous value, the disaster
value of the current period is also the previous one (what everybody used
until the first value appeared). Pure functions; time is handed in.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from collections.abc import Callable
from dataclasses import dataclass

from anonsip.identity import TOR_TIME_PERIODS, TimePeriods

__all__ = [
    "DEFAULT_REPLICAS",
    "SRV_BYTES",
    "Position",
    "SharedRandom",
    "SharedRandomSource",
    "clock_shared_random",
    "disaster_value",
    "parse_tor_shared_random",
    "position",
    "position_of",
    "positions",
    "shared_random_at",
    "value_of_location",
]

SRV_BYTES = 32
DEFAULT_REPLICAS = 2
MAX_REPLICAS = 8
_STORE_AT = b"anonsip-dht-store-at"
_DISASTER = b"shared-random-disaster"


@dataclass(frozen=True, slots=True)
class SharedRandom:
    """The shared random values a node believes in now: current first, then previous."""

    current: bytes
    previous: bytes

    def __post_init__(self) -> None:
        if len(self.current) != SRV_BYTES or len(self.previous) != SRV_BYTES:
            raise ValueError("a shared random value is 32 bytes")

    @classmethod
    def single(cls, value: bytes) -> SharedRandom:
        """One value as both current and previous (tests, the simulator)."""
        return cls(current=value, previous=value)

    def candidates(self) -> tuple[bytes, ...]:
        """The values records may be placed with, most recent first, without repeats."""
        if self.previous == self.current:
            return (self.current,)
        return (self.current, self.previous)


SharedRandomSource = Callable[[], SharedRandom]


@dataclass(frozen=True, slots=True)
class Position:
    """One place a record is stored: its location in the key space and how it was derived."""

    location: bytes
    value: bytes
    replica: int


def disaster_value(period: int, length_minutes: int) -> bytes:
    """Tor's disaster shared random value for a time period (rend-spec-v3 2.2.4)."""
    return hashlib.sha3_256(
        _DISASTER + length_minutes.to_bytes(8, "big") + period.to_bytes(8, "big")
    ).digest()


def shared_random_at(
    now: float,
    current: bytes | None,
    previous: bytes | None,
    periods: TimePeriods = TOR_TIME_PERIODS,
) -> SharedRandom:
    """The values to use given what the consensus says (None: the consensus has no such value)."""
    period = periods.number_at(now)
    disaster = disaster_value(period, periods.length_minutes)
    if current is None:
        return SharedRandom(current=disaster, previous=previous or disaster)
    return SharedRandom(current=current, previous=previous or disaster)


def clock_shared_random(
    clock: Callable[[], float], periods: TimePeriods = TOR_TIME_PERIODS
) -> SharedRandomSource:
    """A source with no consensus behind it: disaster values only (tests, a lone node)."""
    return lambda: shared_random_at(clock(), None, None, periods)


def parse_tor_shared_random(text: str) -> bytes | None:
    """A value as tor's control port prints it (base64 of 32 bytes), or None if absent or bad."""
    text = text.strip()
    if len(text) != 44 or not text.isascii():
        return None
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        return None
    return raw if len(raw) == SRV_BYTES else None


def position(key: bytes, value: bytes, replica: int) -> bytes:
    return hashlib.sha3_256(_STORE_AT + key + value + replica.to_bytes(1, "big")).digest()


def positions(key: bytes, shared: SharedRandom, replicas: int = DEFAULT_REPLICAS) -> list[Position]:
    """Every position of ``key``: the current value's replicas first, then the previous one's."""
    if not 1 <= replicas <= MAX_REPLICAS:
        raise ValueError(f"a record has 1 to {MAX_REPLICAS} replica positions")
    return [
        Position(location=position(key, value, r), value=value, replica=r)
        for value in shared.candidates()
        for r in range(replicas)
    ]


def position_of(
    location: bytes, key: bytes, shared: SharedRandom, replicas: int = DEFAULT_REPLICAS
) -> Position | None:
    """Which of ``key``'s positions ``location`` is (value and replica); None if none of ours."""
    for p in positions(key, shared, replicas):
        if p.location == location:
            return p
    return None


def value_of_location(
    location: bytes, key: bytes, shared: SharedRandom, replicas: int = DEFAULT_REPLICAS
) -> bytes | None:
    """The shared random value ``location`` was derived from for ``key``; None if none of ours."""
    found = position_of(location, key, shared, replicas)
    return None if found is None else found.value
