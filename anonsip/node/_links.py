"""One SIP link per peer pseudonym, dialled through Tor or accepted from it.

Every stream to an identity's onion service starts with one byte that says
what it carries: ``S`` a secure session (Noise, then SIP), ``M`` a call's
media (see the calls module). A dial tries the peer's last good contact and
a fresh DHT lookup at once and keeps whichever connects first, so a cached
contact costs one rendezvous and a stale one costs nothing extra. A call's
media paths go to the onion its session reached, without a lookup of their own.

Strangers cannot crowd out contacts: a new inbound session for a key
replaces that key's previous inbound one (both sides dialling at once keep
one link each way); links of peers who are not our contacts live in a small pool of their
own (oldest out first) and are closed after a minute with nothing on them;
a contact's link is never closed to make room for a stranger's. Inbound
handshakes are bounded in number and in time, and so is every dial.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Awaitable, Callable
from typing import Protocol

import trio

from anonsip._errors import AnonsipError
from anonsip.identity import Address, Identity, RandomSource
from anonsip.node._link import IncomingHandler, LinkBroken, PeerLink
from anonsip.node._session import Session, SessionBroken
from anonsip.registration import Contact
from anonsip.sip import SipEndpoint, Uri, options_request
from onion import OnionError

log = logging.getLogger(__name__)

KIND_SESSION = b"S"
KIND_MEDIA = b"M"
OUT, IN = "out", "in"  # who dialled
MAX_CONTACT_LINKS = 256  # contacts are bounded by the store (MAX_CONTACTS) anyway
MAX_STRANGER_LINKS = 16  # strangers share a small pool of their own
STRANGER_IDLE_S = 60.0  # a stranger's session with nothing on it is closed
SWEEP_INTERVAL_S = 10.0
# A contact's link with nothing on it for a random 20-40 s (drawn afresh at each
# sweep) is probed with an OPTIONS: a stream whose far end vanished without a word
# can stay half-open for minutes, and the unanswered probe ends it (Timer F).
KEEPALIVE_IDLE_S = (20.0, 40.0)
# Open SIP transactions a link keeps each way (RFC 3261 17; more are refused with
# 503). A contact's messages are pipelined over a WAN round trip of half a
# second, so its links keep more; a stranger has one contact request to make.
CONTACT_TRANSACTIONS = 192
STRANGER_TRANSACTIONS = 64
MAX_HANDSHAKES = 32  # inbound handshakes in progress at once; more are closed at once
HANDSHAKE_TIMEOUT_S = 20.0


class Unreachable(AnonsipError):
    """No contact of the peer answered."""


class StreamOpener(Protocol):
    async def __call__(self, onion: str, port: int, *, isolation: str) -> trio.abc.Stream: ...


Lookup = Callable[[bytes], Awaitable[tuple[Contact, ...]]]
MediaHandler = Callable[[trio.abc.Stream], Awaitable[None]]


def sip_uri(public_key: bytes) -> Uri:
    return Uri.parse(Address(public_key).sip_uri)


class LinkTable:
    """The node's live links, at most one in use per peer."""

    def __init__(
        self,
        identity: Identity,
        *,
        open_stream: StreamOpener,
        lookup: Lookup,
        on_incoming: IncomingHandler,
        on_media: MediaHandler,
        on_contact: Callable[[bytes, Contact], None],
        rng: RandomSource,
        nursery: trio.Nursery,
        is_contact: Callable[[bytes], bool] = lambda _peer: True,
        connect_timeout: float = 45.0,
        max_stranger_links: int = MAX_STRANGER_LINKS,
        stranger_idle_s: float = STRANGER_IDLE_S,
        keepalive_idle_s: tuple[float, float] = KEEPALIVE_IDLE_S,
    ) -> None:
        self._identity = identity
        self._open_stream = open_stream
        self._lookup = lookup
        self._on_incoming = on_incoming
        self._on_media = on_media
        self._on_contact = on_contact
        self._rng = rng
        self._nursery = nursery
        self._connect_timeout = connect_timeout
        self._is_contact = is_contact
        self._max_stranger_links = max_stranger_links
        self._stranger_idle_s = stranger_idle_s
        self._keepalive_idle_s = keepalive_idle_s
        self._probing: set[PeerLink] = set()  # at most one probe per link in flight
        self._handshakes = trio.Semaphore(MAX_HANDSHAKES)
        # One link per peer and direction: a new inbound session replaces the
        # peer's previous inbound one (a flood of sessions under one key holds
        # one slot), while both sides dialling at once keep both links.
        self._links: dict[tuple[bytes, str], PeerLink] = {}
        self._dialing: dict[bytes, trio.Lock] = {}
        self._cache: dict[bytes, Contact] = {}
        # Called with the peer's key whenever a new link to it is up.
        self.link_up_listeners: list[Callable[[bytes], None]] = []

    def remember(self, peer: bytes, contact: Contact) -> None:
        """A contact that worked (or came from the store): try it first next time."""
        self._cache[peer] = contact

    def current(self, peer: bytes) -> PeerLink | None:
        for direction in (OUT, IN):
            link = self._links.get((peer, direction))
            if link is not None and link.is_open:
                return link
        return None

    def statistics(self) -> dict[str, int]:
        open_links = [peer for (peer, _), link in self._links.items() if link.is_open]
        strangers = sum(1 for peer in open_links if not self._is_contact(peer))
        return {"links": len(open_links), "stranger_links": strangers}

    # -- dialling ------------------------------------------------------------

    async def link_to(self, peer: bytes) -> PeerLink:
        """An open link to ``peer``, dialling one if needed."""
        link = self.current(peer)
        if link is not None:
            return link
        lock = self._dialing.setdefault(peer, trio.Lock())
        async with lock:
            link = self.current(peer)
            if link is not None:
                return link
            with trio.fail_after(self._connect_timeout):
                stream, contact = await self._connect(peer)
                try:
                    await stream.send_all(KIND_SESSION)
                    session = await Session.connect(stream, self._identity, peer, rng=self._rng)
                except (SessionBroken, trio.BrokenResourceError) as exc:
                    await trio.aclose_forcefully(stream)
                    raise LinkBroken(f"the secure handshake with the peer failed: {exc}") from exc
                except BaseException:
                    await trio.aclose_forcefully(stream)
                    raise
            self.remember(peer, contact)
            self._on_contact(peer, contact)
            return await self._start(session)

    async def open_media(self, peer: bytes) -> trio.abc.Stream:
        """A second stream to the peer for a call's media, on a circuit of its own.

        While the session we dialled is up, its onion is where the peer is: the
        path goes there at once, with no DHT lookup of its own (which would tell
        the DHT about the call and load our tor while the call sets up). Only if
        that fails, or the peer dialled us, is it found as a session's is.
        """
        stream: trio.abc.Stream | None = None
        dialled = self._dialled(peer)
        if dialled is not None:
            try:
                stream = await self._open_stream(
                    dialled.onion, dialled.port, isolation=secrets.token_hex(8)
                )
            except (AnonsipError, OnionError, OSError, trio.BrokenResourceError) as exc:
                log.info("a media path to the session's onion failed (%s); looking it up", exc)
        if stream is None:
            stream, _ = await self._connect(peer)
        await stream.send_all(KIND_MEDIA)
        return stream

    def _dialled(self, peer: bytes) -> Contact | None:
        """The contact our open outgoing session with ``peer`` went to, if there is one
        (``link_to`` remembers the contact it connected to)."""
        link = self._links.get((peer, OUT))
        if link is None or not link.is_open:
            return None
        return self._cache.get(peer)

    async def _connect(self, peer: bytes) -> tuple[trio.abc.Stream, Contact]:
        """Race the cached contact against a fresh lookup; first stream wins."""
        winner: list[tuple[trio.abc.Stream, Contact]] = []
        errors: list[str] = []
        isolation = secrets.token_hex(8)

        async def attempt(contact: Contact, scope: trio.CancelScope) -> None:
            try:
                stream = await self._open_stream(contact.onion, contact.port, isolation=isolation)
            except (AnonsipError, OnionError, OSError, trio.BrokenResourceError) as exc:
                errors.append(str(exc))
                return
            if winner:
                await trio.aclose_forcefully(stream)
                return
            winner.append((stream, contact))
            scope.cancel()

        async def fresh(nursery: trio.Nursery) -> None:
            try:
                contacts = await self._lookup(peer)
            except AnonsipError as exc:
                errors.append(str(exc))
                return
            if not contacts:
                # Its newest registration, signed by the peer, says it went offline: the
                # cached onion will not answer either, so fail now rather than after
                # Tor's timeout (its mail goes to its mailbox at once).
                errors.append("the peer unregistered (it is offline)")
                nursery.cancel_scope.cancel()
                return
            cached = self._cache.get(peer)
            for contact in contacts:
                if contact != cached:
                    nursery.start_soon(attempt, contact, nursery.cancel_scope)

        async with trio.open_nursery() as nursery:
            cached = self._cache.get(peer)
            if cached is not None:
                nursery.start_soon(attempt, cached, nursery.cancel_scope)
            nursery.start_soon(fresh, nursery)
        if not winner:
            raise Unreachable(
                "the peer could not be reached through Tor"
                + (": " + "; ".join(errors[-3:]) if errors else "")
            )
        return winner[0]

    # -- accepting -----------------------------------------------------------

    async def serve(self, stream: trio.abc.Stream) -> None:
        """Handle one stream that reached our identity's onion service."""
        try:
            self._handshakes.acquire_nowait()
        except trio.WouldBlock:
            await trio.aclose_forcefully(stream)  # a flood of callers: no queue, no cost
            return
        try:
            with trio.fail_after(HANDSHAKE_TIMEOUT_S):
                kind = await stream.receive_some(1)
                if kind == KIND_MEDIA:
                    pass
                elif kind == KIND_SESSION:
                    session = await Session.accept(stream, self._identity, rng=self._rng)
                else:
                    if kind:  # empty: a dialler that raced two paths closed the loser
                        log.info("refused a stream that did not say what it carries")
                    await trio.aclose_forcefully(stream)
                    return
        except (trio.TooSlowError, SessionBroken, trio.BrokenResourceError):
            await trio.aclose_forcefully(stream)
            return
        finally:
            self._handshakes.release()
        if kind == KIND_MEDIA:
            await self._on_media(stream)
            return
        link = self._adopt(session, IN)
        await link.run()

    # -- bookkeeping ---------------------------------------------------------

    def _make_link(self, session: Session) -> PeerLink:
        endpoint = SipEndpoint(
            local_aor=sip_uri(self._identity.public_key),
            peer_aor=sip_uri(session.remote_public_key),
            rng=secrets.token_bytes,
            max_transactions=self._transactions(session.remote_public_key),
        )
        return PeerLink(session, endpoint, self._on_incoming)

    def _transactions(self, peer: bytes) -> int:
        return CONTACT_TRANSACTIONS if self._is_contact(peer) else STRANGER_TRANSACTIONS

    def contacts_changed(self) -> None:
        """A peer became (or stopped being) a contact: its open links' bounds follow."""
        for (peer, _), link in self._links.items():
            link.endpoint.max_transactions = self._transactions(peer)

    def _adopt(self, session: Session, direction: str) -> PeerLink:
        peer = session.remote_public_key
        link = self._make_link(session)
        old = self._links.pop((peer, direction), None)
        if old is not None and old.is_open:
            self._nursery.start_soon(old.aclose)  # one live session per key and direction
        self._links[(peer, direction)] = link
        self._trim()
        for listener in self.link_up_listeners:
            listener(peer)
        return link

    async def _start(self, session: Session) -> PeerLink:
        link = self._adopt(session, OUT)
        await self._nursery.start(link.run)
        return link

    def _trim(self) -> None:
        """Drop closed links; over a pool's bound, close that pool's oldest links."""
        for slot in [k for k, link in self._links.items() if not link.is_open]:
            del self._links[slot]
        strangers = [k for k in self._links if not self._is_contact(k[0])]
        contacts = [k for k in self._links if k not in set(strangers)]
        for pool, bound in ((strangers, self._max_stranger_links), (contacts, MAX_CONTACT_LINKS)):
            for slot in pool[: max(0, len(pool) - bound)]:
                self._nursery.start_soon(self._links.pop(slot).aclose)

    async def sweep_idle(self) -> None:
        """Close strangers' links that carried nothing for a while, probe contacts'
        (runs until cancelled)."""
        while True:
            await trio.sleep(SWEEP_INTERVAL_S)
            now = trio.current_time()
            for slot, link in list(self._links.items()):
                idle = now - link.last_activity
                if not self._is_contact(slot[0]):
                    if idle > self._stranger_idle_s:
                        log.debug("closing an idle stranger's session")
                        del self._links[slot]
                        self._nursery.start_soon(link.aclose)
                elif link.is_open and link not in self._probing and idle > self._keepalive_after():
                    self._probing.add(link)
                    self._nursery.start_soon(self._probe, link)

    def _keepalive_after(self) -> float:
        low, high = self._keepalive_idle_s
        return low + (high - low) * int.from_bytes(self._rng(4), "big") / 2**32

    async def _probe(self, link: PeerLink) -> None:
        """One OPTIONS on an idle contact's link: any answer shows the stream alive; none
        within Timer F ends the link (``PeerLink``), and the next use dials afresh."""
        try:
            await link.request(options_request(link.endpoint))
        except AnonsipError as exc:
            log.info("a contact's idle session did not answer a probe: %s", exc)
        finally:
            self._probing.discard(link)

    async def aclose(self) -> None:
        """Say goodbye on every session at once, two seconds at most in all."""
        links, self._links = list(self._links.values()), {}
        with trio.CancelScope(shield=True), trio.move_on_after(2):
            async with trio.open_nursery() as nursery:
                for link in links:
                    nursery.start_soon(link.aclose)
