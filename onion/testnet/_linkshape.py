"""The delay of one link between Tor relays of a WAN-shaped private network (pure, seeded).

On loopback a hop costs microseconds; on the public Tor network each of
the seven TCP links of an onion-service circuit (client - guard - middle -
rendezvous point - middle - middle - guard - service) crosses the
Internet. ``LinkDelay`` gives, for the bytes handed to one direction of
one link at ``now``, the time they arrive at the other end: a base
one-way delay, a slow random walk on top (routes and queues change), an
exponential per-chunk jitter, and, for a share of chunks, a TCP
retransmission: TCP hides a lost segment but delivers it (and everything
behind it, in order) one retransmission timeout late. Arrival times never
go backwards, as on one TCP connection.

This is the per-hop counterpart of the media benchmark's circuit-level
model (``anonsip.media.TorLikeDelay``: 250 ms one way plus bursts), which
``onion`` cannot import (it knows nothing of anonsip) and which models a
whole circuit, not one link of it.

Calibration of the default profile ``tor`` (the numbers, and where they
come from):

* one link, one way: 30 ms base + a walk within [0, 8] ms + 4 ms mean
  jitter, about 38 ms on average. Relays sit mostly in Europe and North
  America; one-way latencies between such data centres run from ~5 ms
  (same country) to ~45 ms (transatlantic), so 38 ms is a typical mix.
* seven links: about 265 ms one way, 0.53 s round trip on an onion
  circuit, the anchor the project's voice model uses (250 ms one way:
  ``anonsip/media/_delaymodel.py``, notes/voice.md), and of the order of
  the onion-service circuit round-trip times Tor Metrics publishes from
  OnionPerf (https://metrics.torproject.org/onionperf-latencies.html:
  onion-service circuits take roughly twice an exit circuit's few hundred
  milliseconds). DONAR (NSDI 2022) found one onion path unable to keep
  99 % of voice packets under 360 ms one way for most calls; this profile
  puts the median just under that bound, its tail over it.
* loss 0.1 % of chunks, each costing 200 ms (Linux's minimum RTO), for
  the occasional stall a long path shows.

``tor-lossy`` is the same path on bad links (1 % loss, more jitter);
``lan`` is a quiet local network. Any profile can also be written out:
``delay=30,walk=8,jitter=4,loss=0.001,retransmit=200`` (milliseconds, and
loss as a share).
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, fields

from onion._errors import TestnetError

__all__ = ["PROFILES", "LinkDelay", "LinkProfile", "parse_profile"]

MAX_DELAY_MS = 10_000.0


@dataclass(frozen=True, kw_only=True)
class LinkProfile:
    """How one link behaves; times in milliseconds, ``loss`` as a share of chunks."""

    name: str = "custom"
    delay: float  # base one-way delay
    walk: float = 0.0  # the slow component wanders within [0, walk]
    jitter: float = 0.0  # mean of the per-chunk exponential jitter
    loss: float = 0.0  # share of chunks that need a TCP retransmission
    retransmit: float = 200.0  # what one retransmission costs

    def spec(self) -> str:
        """The profile as ``key=value`` text (``parse_profile`` reads it back)."""
        return ",".join(
            f"{f.name}={getattr(self, f.name):g}" for f in fields(self) if f.name != "name"
        )

    def mean_one_way(self) -> float:
        return self.delay + self.walk / 2 + self.jitter + self.loss * self.retransmit


PROFILES: dict[str, LinkProfile] = {
    p.name: p
    for p in (
        LinkProfile(name="tor", delay=30.0, walk=8.0, jitter=4.0, loss=0.001),
        LinkProfile(name="tor-lossy", delay=30.0, walk=16.0, jitter=10.0, loss=0.01),
        LinkProfile(name="lan", delay=1.0, walk=0.5, jitter=0.2),
    )
}


def parse_profile(text: str) -> LinkProfile:
    """A named profile (``tor``, ``tor-lossy``, ``lan``) or ``key=value,...``."""
    text = text.strip()
    if text in PROFILES:
        return PROFILES[text]
    known = {f.name for f in fields(LinkProfile)} - {"name"}
    values: dict[str, float] = {}
    for part in text.split(","):
        key, sep, value = part.strip().partition("=")
        if not sep or key not in known:
            names = ", ".join(sorted(PROFILES))
            raise TestnetError(
                f"--wan takes a profile ({names}) or KEY=VALUE,... with keys"
                f" {', '.join(sorted(known))}; not {part.strip()!r}"
            )
        try:
            number = float(value)
        except ValueError:
            raise TestnetError(f"--wan {key}={value!r} is not a number") from None
        if not math.isfinite(number) or number < 0:
            raise TestnetError(f"--wan {key} must be a finite number >= 0")
        values[key] = number
    if "delay" not in values:
        raise TestnetError("--wan needs at least delay=MILLISECONDS")
    if values.get("loss", 0.0) >= 1.0:
        raise TestnetError("--wan loss is a share of chunks, below 1")
    if any(
        values[k] > MAX_DELAY_MS for k in ("delay", "walk", "jitter", "retransmit") if k in values
    ):
        raise TestnetError(f"--wan times are at most {MAX_DELAY_MS:.0f} ms")
    return LinkProfile(
        delay=values["delay"],
        walk=values.get("walk", 0.0),
        jitter=values.get("jitter", 0.0),
        loss=values.get("loss", 0.0),
        retransmit=values.get("retransmit", 200.0),
    )


class LinkDelay:
    """Arrival times for the chunks sent, in order, on one direction of one link."""

    def __init__(self, profile: LinkProfile, rng: random.Random) -> None:
        self.profile = profile
        self._rng = rng
        self._walk = profile.walk / 2
        self._last_send = -math.inf
        self._last_arrival = -math.inf

    def arrival(self, send_ms: float) -> float:
        """When the bytes sent at ``send_ms`` arrive; never before earlier ones."""
        p, rng = self.profile, self._rng
        if send_ms < self._last_send:
            raise ValueError("sends must be in time order")
        dt = 20.0 if self._last_send == -math.inf else send_ms - self._last_send
        self._last_send = send_ms
        if p.walk:
            step = rng.gauss(0.0, p.walk * 0.02 * math.sqrt(max(dt, 0.0) / 20.0 + 1e-9))
            self._walk = min(max(self._walk + step, 0.0), p.walk)
        arrival = send_ms + p.delay + self._walk
        if p.jitter:
            arrival += rng.expovariate(1.0 / p.jitter)
        if p.loss and rng.random() < p.loss:
            arrival += p.retransmit
        arrival = max(arrival, self._last_arrival)  # one TCP stream: in order
        self._last_arrival = arrival
        return arrival
