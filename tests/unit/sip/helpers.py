"""Two real SIP endpoints joined by an in-memory link, with a fake clock (h11's ConnectionPair)."""

from __future__ import annotations

import random

from anonsip.sip import SipEndpoint, SipEvent, Uri

ALICE = Uri(user="alice", host="anonsip.invalid")
BOB = Uri(user="bob", host="anonsip.invalid")
T1 = 0.5


class EndpointPair:
    """Alice and Bob, each with a seeded RNG; frames move only when asked."""

    def __init__(self, seed: int = 7) -> None:
        self.now = 0.0
        self.alice = SipEndpoint(
            local_aor=ALICE, peer_aor=BOB, rng=random.Random(seed).randbytes, t1=T1
        )
        self.bob = SipEndpoint(
            local_aor=BOB, peer_aor=ALICE, rng=random.Random(seed + 1).randbytes, t1=T1
        )

    def peer(self, endpoint: SipEndpoint) -> SipEndpoint:
        return self.bob if endpoint is self.alice else self.alice

    def take(self, endpoint: SipEndpoint) -> list[bytes]:
        """Hold ``endpoint``'s outgoing frames (a message still in flight)."""
        return endpoint.frames_to_send()

    def push(self, frames: list[bytes], into: SipEndpoint) -> list[SipEvent]:
        for frame in frames:
            into.receive_data(frame)
        return drain(into)

    def flush(self) -> dict[str, list[SipEvent]]:
        """Pass frames both ways until the link is quiet; events per side."""
        seen: dict[str, list[SipEvent]] = {"alice": drain(self.alice), "bob": drain(self.bob)}
        while True:
            to_bob = self.alice.frames_to_send()
            to_alice = self.bob.frames_to_send()
            if not to_bob and not to_alice:
                return seen
            seen["bob"] += self.push(to_bob, self.bob)
            seen["alice"] += self.push(to_alice, self.alice)

    def events_of(self, seen: dict[str, list[SipEvent]], endpoint: SipEndpoint) -> list[SipEvent]:
        return seen["alice" if endpoint is self.alice else "bob"]

    def advance(self, seconds: float) -> dict[str, list[SipEvent]]:
        self.now += seconds
        for endpoint in (self.alice, self.bob):
            deadline = endpoint.next_deadline()
            if deadline is not None and deadline <= self.now:
                endpoint.on_timer(self.now)
        return self.flush()


def drain(endpoint: SipEndpoint) -> list[SipEvent]:
    events = []
    while (event := endpoint.next_event()) is not None:
        events.append(event)
    return events
