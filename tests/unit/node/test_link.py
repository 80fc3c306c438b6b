"""Two PeerLinks over secure sessions on an in-memory stream pair.

A MESSAGE is answered in either direction; when the stream breaks every
pending request fails with ``LinkBroken``; a peer that never answers costs
exactly Timer F (64*T1) and ``RequestTimedOut``, driven by the link's own
timer task on the autojump clock, and ends the link (silence on a reliable
session is a dead stream).
"""

from __future__ import annotations

import logging
import random
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import pytest
import trio
import trio.testing

from anonsip import AnonsipError
from anonsip.identity import Identity
from anonsip.node import Session
from anonsip.node._link import LinkBroken, PeerLink, RequestTimedOut
from anonsip.node._links import sip_uri
from anonsip.sip import Request, RequestReceived, Response, SipEndpoint, SipEvent

T1 = 0.5


def _rng(seed: int) -> Callable[[int], bytes]:
    return random.Random(seed).randbytes


ALICE = Identity.generate("alice", rng=_rng(1))
BOB = Identity.generate("bob", rng=_rng(2))


@dataclass
class Peer:
    """A link plus what its node was handed; ``answer`` decides the response code."""

    identity: Identity
    answer: int | None = 200  # None: never answer
    received: list[RequestReceived] = field(default_factory=list)
    link: PeerLink | None = None

    async def on_incoming(self, link: PeerLink, event: SipEvent) -> None:
        assert isinstance(event, RequestReceived)
        self.received.append(event)
        if self.answer is not None:
            await link.respond(event.request, self.answer)

    def make_link(self, session: Session, seed: int) -> PeerLink:
        endpoint = SipEndpoint(
            local_aor=sip_uri(self.identity.public_key),
            peer_aor=sip_uri(session.remote_public_key),
            rng=_rng(seed),
            t1=T1,
        )
        self.link = PeerLink(session, endpoint, self.on_incoming)
        return self.link


@asynccontextmanager
async def linked(
    alice: Peer, bob: Peer
) -> AsyncIterator[tuple[PeerLink, PeerLink, trio.testing.MemoryStreamPair]]:
    a_stream, b_stream = trio.testing.memory_stream_pair()
    sessions: dict[str, Session] = {}

    async def accept() -> None:
        sessions["b"] = await Session.accept(b_stream, bob.identity, rng=_rng(3))

    async with trio.open_nursery() as nursery:
        nursery.start_soon(accept)
        sessions["a"] = await Session.connect(
            a_stream, alice.identity, bob.identity.public_key, rng=_rng(4)
        )
    a = alice.make_link(sessions["a"], 5)
    b = bob.make_link(sessions["b"], 6)
    async with trio.open_nursery() as nursery:
        await nursery.start(a.run)
        await nursery.start(b.run)
        yield a, b, (a_stream, b_stream)
        nursery.cancel_scope.cancel()


def message(link: PeerLink, text: str) -> Request:
    return link.endpoint.create_request(
        "MESSAGE", headers=(("Content-Type", "text/plain;charset=utf-8"),), body=text.encode()
    )


@pytest.mark.parametrize("bob_first", [False, True])
async def test_message_request_and_response_both_ways(bob_first: bool) -> None:
    alice, bob = Peer(ALICE), Peer(BOB, answer=202)
    async with linked(alice, bob) as (a, b, _):
        assert a.peer_public_key == BOB.public_key
        assert b.peer_public_key == ALICE.public_key
        order = [(b, alice, "hi alice", 200), (a, bob, "hi bob", 202)]
        for link, receiver, text, code in order if bob_first else order[::-1]:
            request = message(link, text)
            response = await link.request(request)
            assert response.status_code == code
            assert response.call_id == request.call_id
            (got,) = receiver.received[-1:]
            assert got.request.body == text.encode()
            assert got.request.call_id == request.call_id


async def test_many_requests_in_flight_each_get_their_own_answer() -> None:
    alice, bob = Peer(ALICE), Peer(BOB)
    async with linked(alice, bob) as (a, _b, _):
        results: dict[int, int] = {}

        async def one(i: int) -> None:
            request = message(a, f"m{i}")
            results[i] = (await a.request(request)).status_code

        async with trio.open_nursery() as nursery:
            for i in range(20):
                nursery.start_soon(one, i)
        assert results == dict.fromkeys(range(20), 200)
        assert sorted(r.request.body for r in bob.received) == sorted(
            f"m{i}".encode() for i in range(20)
        )


async def test_a_broken_stream_fails_pending_requests() -> None:
    alice, bob = Peer(ALICE), Peer(BOB, answer=None)
    async with linked(alice, bob) as (a, _b, (_a_stream, b_stream)):
        failures: list[BaseException] = []

        async def pending(i: int) -> None:
            request = message(a, f"m{i}")
            with pytest.raises(LinkBroken) as caught:
                await a.request(request)
            failures.append(caught.value)

        with trio.fail_after(5):
            async with trio.open_nursery() as nursery:
                for i in range(3):
                    nursery.start_soon(pending, i)
                await trio.testing.wait_all_tasks_blocked()
                assert len(bob.received) == 3  # bob has them, and stays silent
                await trio.aclose_forcefully(b_stream)
        assert len(failures) == 3
        await a.wait_closed()
        assert not a.is_open
        with pytest.raises(LinkBroken):
            await a.request(message(a, "late"))


async def test_a_silent_peer_times_out_on_timer_f(autojump_clock: trio.testing.MockClock) -> None:
    alice, bob = Peer(ALICE), Peer(BOB, answer=None)
    async with linked(alice, bob) as (a, _b, _):
        start = trio.current_time()
        with pytest.raises(RequestTimedOut):
            await a.request(message(a, "anyone?"))
        assert trio.current_time() - start == pytest.approx(64 * T1, abs=0.01)
        assert len(bob.received) == 1  # a reliable transport: no retransmissions
        # Silence on a reliable session means a dead stream (a peer whose tor vanished
        # can leave it half-open): the link ends, and every other pending request with it.
        await a.wait_closed()
        assert not a.is_open
        with pytest.raises(LinkBroken):
            await a.request(message(a, "now?"))


async def test_other_requests_pending_on_a_silent_link_fail_with_it(
    autojump_clock: trio.testing.MockClock,
) -> None:
    alice, bob = Peer(ALICE), Peer(BOB, answer=None)
    async with linked(alice, bob) as (a, _b, _):
        outcomes: list[type[BaseException]] = []

        async def ask(text: str) -> None:
            with pytest.raises((RequestTimedOut, LinkBroken)) as caught:
                await a.request(message(a, text))
            outcomes.append(caught.type)

        async with trio.open_nursery() as nursery:
            nursery.start_soon(ask, "first")
            await trio.sleep(10)  # the second is asked later: its Timer F has not fired
            nursery.start_soon(ask, "second")
        assert outcomes == [RequestTimedOut, LinkBroken]
        assert trio.current_time() == pytest.approx(64 * T1, abs=0.01)


async def test_an_answer_the_link_owes_on_a_broken_stream_ends_it_quietly() -> None:
    """The link's own reading task answers some requests itself (501 for an unknown
    method); if the stream broke meanwhile, the link ends — nothing escapes ``run()``
    (a node once died of it when a peer vanished mid-burst)."""
    alice, bob = Peer(ALICE), Peer(BOB)
    async with linked(alice, bob) as (a, b, (_a_stream, b_stream)):
        assert (await a.request(message(a, "hello"))).status_code == 200
        await b_stream.send_stream.aclose()  # bob still reads, can no longer send
        unknown = message(a, "?").to_bytes().replace(b"MESSAGE", b"FROBNICATE")
        await a.session.send(unknown)
        with trio.fail_after(5):
            await b.wait_closed()
        assert not b.is_open
        assert [e.request.method for e in bob.received] == ["MESSAGE"]  # never handed on


async def test_a_sliding_window_sends_the_next_request_as_soon_as_the_oldest_is_answered() -> None:
    alice, bob = Peer(ALICE), Peer(BOB, answer=None)  # the test answers for bob
    async with linked(alice, bob) as (a, b, _):
        requests = [message(a, f"m{i}") for i in range(10)]
        results: list[Response | AnonsipError] = []

        async def send() -> None:
            results.extend(await a.request_many(requests, window=3))

        async with trio.open_nursery() as nursery:
            nursery.start_soon(send)
            for answered in range(10):
                await trio.testing.wait_all_tasks_blocked()
                # Never more than the window unanswered, and never fewer while any wait.
                assert len(bob.received) == min(10, answered + 3)
                await b.respond(bob.received[answered].request, 200)
        assert [r.status_code if isinstance(r, Response) else r for r in results] == [200] * 10
        assert [e.request.body for e in bob.received] == [f"m{i}".encode() for i in range(10)]


async def test_a_session_that_ends_mid_window_keeps_the_answers_already_in() -> None:
    alice, bob = Peer(ALICE), Peer(BOB, answer=None)
    async with linked(alice, bob) as (a, b, (_a_stream, b_stream)):
        requests = [message(a, f"m{i}") for i in range(6)]
        results: list[object] = []

        async def send() -> None:
            results.extend(await a.request_many(requests, window=4))

        with trio.fail_after(5):
            async with trio.open_nursery() as nursery:
                nursery.start_soon(send)
                await trio.testing.wait_all_tasks_blocked()
                for event in bob.received[:2]:
                    await b.respond(event.request, 200)
                await trio.testing.wait_all_tasks_blocked()
                assert len(bob.received) == 6  # two slots freed: the last two went out
                await trio.aclose_forcefully(b_stream)
        assert len(results) == 6
        codes = [getattr(r, "status_code", None) for r in results]
        assert codes == [200, 200, None, None, None, None]
        assert all(isinstance(r, LinkBroken) for r in results[2:])


@dataclass
class GroupedFailure(Peer):
    """Its first request's handler fails as one with a nursery of its own would: with
    the link's error inside an ExceptionGroup."""

    failed: int = 0
    tripped: trio.Event = field(default_factory=trio.Event)

    async def on_incoming(self, link: PeerLink, event: SipEvent) -> None:
        if not self.failed:
            self.failed += 1
            self.tripped.set()
            raise ExceptionGroup("from a handler's nursery", [LinkBroken("the session ended")])
        await super().on_incoming(link, event)


async def test_a_handler_error_inside_an_exception_group_fails_that_request_only(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    alice, bob = Peer(ALICE), GroupedFailure(BOB)
    async with linked(alice, bob) as (a, _b, _), trio.open_nursery() as nursery:
        nursery.start_soon(a.request, message(a, "first"))  # never answered
        await bob.tripped.wait()
        response = await a.request(message(a, "second"))
        assert response.status_code == 200
        nursery.cancel_scope.cancel()
    assert bob.failed == 1
    assert "handling a RequestReceived failed" in caplog.text


@dataclass
class Taker(Peer):
    """Handles a MESSAGE with those queued right behind it (up to a "stop")."""

    handled: list[tuple[bytes, list[bytes]]] = field(default_factory=list)

    async def on_incoming(self, link: PeerLink, event: SipEvent) -> None:
        assert isinstance(event, RequestReceived)
        await trio.testing.wait_all_tasks_blocked()  # the rest of the window is queued
        taken = link.take_in_order(lambda r: r.body != b"stop", 3)
        self.handled.append((event.request.body, [r.body for r in taken]))
        for request in (event.request, *taken):
            await link.respond(request, 200, flush=False)
        await link.flush()


async def test_a_handler_takes_the_requests_queued_behind_it_in_order_up_to_one_it_refuses() -> (
    None
):
    alice, bob = Peer(ALICE), Taker(BOB)
    bodies = ["m0", "m1", "m2", "m3", "m4", "stop", "m6"]
    async with linked(alice, bob) as (a, _b, _):
        results = await a.request_many([message(a, text) for text in bodies], window=10)
    assert [r.status_code for r in results if isinstance(r, Response)] == [200] * len(bodies)
    assert bob.handled == [
        (b"m0", [b"m1", b"m2", b"m3"]),  # at most the limit
        (b"m4", []),  # the next is refused: it stays for its own turn
        (b"stop", [b"m6"]),
    ]
