"""The link table under a flood of strangers: contacts keep their links.

One ``LinkTable`` serves "our onion service": each caller's stream is an
in-memory pair whose far end runs the real IK handshake as the caller's
identity. Time is trio's autojump clock.
"""

from __future__ import annotations

import random
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
import trio
import trio.testing

from anonsip.identity import Identity
from anonsip.node import Session
from anonsip.node._link import PeerLink
from anonsip.node._links import (
    CONTACT_TRANSACTIONS,
    HANDSHAKE_TIMEOUT_S,
    KEEPALIVE_IDLE_S,
    KIND_SESSION,
    MAX_HANDSHAKES,
    STRANGER_IDLE_S,
    STRANGER_TRANSACTIONS,
    SWEEP_INTERVAL_S,
    LinkTable,
    Unreachable,
    sip_uri,
)
from anonsip.registration import Contact, onion_address
from anonsip.sip import RequestReceived, SipEndpoint, SipEvent

ME = Identity.generate("me", rng=random.Random(1).randbytes)
FRIEND = Identity.generate("friend", rng=random.Random(2).randbytes)
STRANGER_POOL = 4
TIMER_F = 64 * 0.5  # the endpoint's default T1


async def _nothing(*_args: object) -> None:
    return None


class Caller:
    """Someone who dials us: the far end of one in-memory stream."""

    def __init__(self, identity: Identity) -> None:
        self.identity = identity
        self.session: Session | None = None

    async def call(self, table: LinkTable, nursery: trio.Nursery) -> Session:
        ours, theirs = trio.testing.memory_stream_pair()
        nursery.start_soon(table.serve, ours)
        await theirs.send_all(KIND_SESSION)
        self.session = await Session.connect(
            theirs, self.identity, ME.public_key, rng=random.Random(7).randbytes
        )
        return self.session

    async def answering(self, table: LinkTable, nursery: trio.Nursery) -> list[str]:
        """Call, and answer on the session as a live node does; the methods it got."""
        session = await self.call(table, nursery)
        got: list[str] = []

        async def on_incoming(link: PeerLink, event: SipEvent) -> None:
            if isinstance(event, RequestReceived):
                got.append(event.request.method)
                await link.respond(event.request, 200)

        endpoint = SipEndpoint(
            local_aor=sip_uri(self.identity.public_key),
            peer_aor=sip_uri(ME.public_key),
            rng=random.Random(8).randbytes,
        )
        await nursery.start(PeerLink(session, endpoint, on_incoming).run)
        return got


@asynccontextmanager
async def table(
    contacts: set[bytes] | None = None,
) -> AsyncIterator[tuple[LinkTable, trio.Nursery]]:
    known = {FRIEND.public_key} if contacts is None else contacts

    async def no_stream(onion: str, port: int, *, isolation: str) -> trio.abc.Stream:
        raise OSError("no dialling in this test")

    async def no_lookup(key: bytes) -> tuple[Contact, ...]:
        return ()

    async with trio.open_nursery() as nursery:
        links = LinkTable(
            ME,
            open_stream=no_stream,
            lookup=no_lookup,
            on_incoming=_nothing,
            on_media=_nothing,
            on_contact=lambda *_a: None,
            rng=random.Random(3).randbytes,
            nursery=nursery,
            is_contact=lambda peer: peer in known,
            max_stranger_links=STRANGER_POOL,
        )
        nursery.start_soon(links.sweep_idle)
        yield links, nursery
        nursery.cancel_scope.cancel()


def _stranger(i: int) -> Identity:
    return Identity.generate(f"s{i}", rng=random.Random(1000 + i).randbytes)


async def test_a_flood_of_strangers_never_closes_a_contacts_link(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with table() as (links, nursery):
        await Caller(FRIEND).call(links, nursery)
        await trio.sleep(0.1)
        friend_link = links.current(FRIEND.public_key)
        assert friend_link is not None
        for i in range(100):
            await Caller(_stranger(i)).call(links, nursery)
            await trio.sleep(0)
        await trio.sleep(0.1)
        stats = links.statistics()
        assert stats["stranger_links"] <= STRANGER_POOL
        assert links.current(FRIEND.public_key) is friend_link  # untouched
        assert friend_link.is_open


async def test_a_contacts_link_keeps_more_open_transactions_than_a_strangers(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """A contact's messages are pipelined over a WAN round trip; a stranger has one
    request to make. A stranger who becomes a contact gets the contact's bound."""
    contacts = {FRIEND.public_key}
    newcomer = _stranger(1)
    async with table(contacts) as (links, nursery):
        await Caller(FRIEND).call(links, nursery)
        await Caller(newcomer).call(links, nursery)
        await trio.testing.wait_all_tasks_blocked()  # both links are in the table
        friend_link = links.current(FRIEND.public_key)
        newcomer_link = links.current(newcomer.public_key)
        assert friend_link is not None
        assert newcomer_link is not None
        assert friend_link.endpoint.max_transactions == CONTACT_TRANSACTIONS
        assert newcomer_link.endpoint.max_transactions == STRANGER_TRANSACTIONS
        contacts.add(newcomer.public_key)
        links.contacts_changed()
        assert newcomer_link.endpoint.max_transactions == CONTACT_TRANSACTIONS
        contacts.discard(FRIEND.public_key)  # removed or blocked
        links.contacts_changed()
        assert friend_link.endpoint.max_transactions == STRANGER_TRANSACTIONS


async def test_a_new_session_for_a_key_replaces_the_old_one(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with table() as (links, nursery):
        await Caller(FRIEND).call(links, nursery)
        await trio.sleep(0.1)
        first = links.current(FRIEND.public_key)
        await Caller(FRIEND).call(links, nursery)
        await trio.sleep(0.1)
        second = links.current(FRIEND.public_key)
        assert first is not None
        assert second is not None
        assert second is not first
        assert not first.is_open
        assert links.statistics()["links"] == 1


async def test_idle_strangers_are_closed_and_contacts_are_not(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with table() as (links, nursery):
        got = await Caller(FRIEND).answering(links, nursery)
        await Caller(_stranger(1)).call(links, nursery)
        await trio.sleep(0.1)
        assert links.statistics() == {"links": 2, "stranger_links": 1}
        await trio.sleep(STRANGER_IDLE_S + 20)
        assert links.statistics() == {"links": 1, "stranger_links": 0}
        friend_link = links.current(FRIEND.public_key)
        assert friend_link is not None
        # An idle contact's link is probed now and then, at random idle times, and stays.
        await trio.sleep(600)
        assert links.current(FRIEND.public_key) is friend_link
        assert set(got) == {"OPTIONS"}
        longest = KEEPALIVE_IDLE_S[1] + SWEEP_INTERVAL_S
        assert 600 / longest <= len(got) <= (600 + 80) / KEEPALIVE_IDLE_S[0]


async def test_a_contact_that_vanished_without_a_word_loses_its_link_after_one_probe(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """Its stream half-open (nothing reads the far end, nothing closes it): the idle
    probe goes unanswered and Timer F ends the link, so presence and the next message
    see the truth within about a minute and a half instead of Tor's minutes."""
    async with table() as (links, nursery):
        await Caller(FRIEND).call(links, nursery)  # a session, and then silence
        await trio.sleep(0.1)
        link = links.current(FRIEND.public_key)
        assert link is not None
        await trio.sleep(KEEPALIVE_IDLE_S[0])
        assert link.is_open  # not probed before it was idle long enough
        await trio.sleep(KEEPALIVE_IDLE_S[1] - KEEPALIVE_IDLE_S[0] + 10 + TIMER_F + 1)
        assert not link.is_open
        assert links.current(FRIEND.public_key) is None


async def test_half_open_handshakes_are_bounded_in_number_and_time(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with table() as (links, nursery):
        silent = []
        for _ in range(MAX_HANDSHAKES + 5):
            ours, theirs = trio.testing.memory_stream_pair()
            nursery.start_soon(links.serve, ours)
            silent.append(theirs)  # says nothing: holds a handshake slot
        await trio.sleep(0.1)
        # trio starts tasks in no set order: which callers got a slot is not known.
        closed, held = [], []
        for theirs in silent:
            with trio.move_on_after(0.01):
                assert await theirs.receive_some(1) == b""
                closed.append(theirs)
                continue
            held.append(theirs)
        assert (len(closed), len(held)) == (5, MAX_HANDSHAKES)  # over the bound: closed at once
        await trio.sleep(HANDSHAKE_TIMEOUT_S + 1)
        for theirs in held:
            assert await theirs.receive_some(1) == b""  # the rest timed out
        await Caller(FRIEND).call(links, nursery)  # and the door is open again
        await trio.sleep(0.1)
        assert links.current(FRIEND.public_key) is not None


async def test_a_peer_that_unregistered_fails_at_once_not_after_the_cached_onions_timeout(
    autojump_clock: trio.testing.MockClock,
) -> None:
    dialled: list[str] = []

    async def silent_onion(onion: str, port: int, *, isolation: str) -> trio.abc.Stream:
        dialled.append(onion)
        await trio.sleep(30)  # Tor's own timeout for an onion that is gone
        raise OSError("no answer within 30 s")

    async def offline(key: bytes) -> tuple[Contact, ...]:
        await trio.sleep(2)  # the DHT lookup
        return ()  # its newest registration: no contacts, it said goodbye

    async with trio.open_nursery() as nursery:
        links = LinkTable(
            ME,
            open_stream=silent_onion,
            lookup=offline,
            on_incoming=_nothing,
            on_media=_nothing,
            on_contact=lambda *_a: None,
            rng=random.Random(3).randbytes,
            nursery=nursery,
        )
        gone = Contact(onion=onion_address(FRIEND.public_key), port=5061)
        links.remember(FRIEND.public_key, gone)
        start = trio.current_time()
        with pytest.raises(Unreachable, match="unregistered"):
            await links.link_to(FRIEND.public_key)
        assert trio.current_time() - start < 3
        assert dialled == [gone.onion]  # the cached onion was tried meanwhile
        nursery.cancel_scope.cancel()


class PeerOnion:
    """The peer's onion service, in memory: every stream opened to it is served by
    the peer's own ``LinkTable`` (the real IK handshake as the peer's identity)."""

    def __init__(self, nursery: trio.Nursery) -> None:
        self.contact = Contact(onion=onion_address(FRIEND.public_key), port=5061)
        self.media: list[trio.abc.Stream] = []
        self.table = LinkTable(
            FRIEND,
            open_stream=self.open_stream,
            lookup=self.lookup,
            on_incoming=_nothing,
            on_media=self._on_media,
            on_contact=lambda *_a: None,
            rng=random.Random(4).randbytes,
            nursery=nursery,
        )
        self._nursery = nursery
        self.opened: list[tuple[str, str]] = []  # (onion, isolation) of every dial to it
        self.lookups = 0
        self.up = True

    async def open_stream(self, onion: str, port: int, *, isolation: str) -> trio.abc.Stream:
        await trio.sleep(3)  # a rendezvous
        self.opened.append((onion, isolation))
        if not self.up or onion != self.contact.onion:
            raise OSError("the onion service is not reachable")
        ours, theirs = trio.testing.memory_stream_pair()
        self._nursery.start_soon(self.table.serve, theirs)
        return ours

    async def lookup(self, key: bytes) -> tuple[Contact, ...]:
        self.lookups += 1
        await trio.sleep(5)  # an anonymous DHT lookup
        return (self.contact,)

    async def _on_media(self, stream: trio.abc.Stream) -> None:
        self.media.append(stream)


@asynccontextmanager
async def dialling_friend() -> AsyncIterator[tuple[PeerOnion, LinkTable]]:
    """The friend's onion service, and our link table that dials it."""
    async with trio.open_nursery() as nursery:
        friend = PeerOnion(nursery)
        links = LinkTable(
            ME,
            open_stream=friend.open_stream,
            lookup=friend.lookup,
            on_incoming=_nothing,
            on_media=_nothing,
            on_contact=lambda *_a: None,
            rng=random.Random(3).randbytes,
            nursery=nursery,
        )
        yield friend, links
        nursery.cancel_scope.cancel()


async def test_a_calls_media_paths_go_to_the_sessions_onion_without_lookups_of_their_own(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with dialling_friend() as (friend, links):
        await links.link_to(FRIEND.public_key)
        assert friend.lookups == 1  # nothing cached: the session's dial looked it up
        start = trio.current_time()
        async with trio.open_nursery() as paths:
            for _ in range(2):
                paths.start_soon(links.open_media, FRIEND.public_key)
        assert trio.current_time() - start < 5  # one rendezvous each, no lookup first
        assert friend.lookups == 1
        await trio.testing.wait_all_tasks_blocked()
        assert len(friend.media) == 2  # the peer's door got both, marked as media
        media_dials = friend.opened[1:]
        assert [onion for onion, _ in media_dials] == [friend.contact.onion] * 2
        isolations = {isolation for _, isolation in friend.opened}
        assert len(isolations) == 3  # the session and each path on circuits of their own


async def test_a_media_path_the_sessions_onion_refuses_is_found_afresh(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with dialling_friend() as (friend, links):
        await links.link_to(FRIEND.public_key)
        friend.up = False
        with pytest.raises(Unreachable):
            await links.open_media(FRIEND.public_key)
        assert friend.lookups == 2  # the direct try failed, then a lookup as for a session
        friend.up = True
        await links.open_media(FRIEND.public_key)
        assert friend.lookups == 2  # up again: straight to the session's onion


async def test_without_a_session_we_dialled_a_media_path_looks_the_peer_up(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with dialling_friend() as (friend, links):
        await links.open_media(FRIEND.public_key)  # e.g. the peer's session dialled us
        assert friend.lookups == 1
