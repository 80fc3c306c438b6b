"""What the node gives its services: the one interface they reach the node through.

Services never see the ``Node`` object. They get a ``NodeContext`` when
they are built (in ``anonsip.node._assembly``): the identity, the message
store, the clock, a way to publish control events, to say the contacts
changed or that the effort asked of strangers did, and, once the overlay
is up, the peer links and the resolver.
Asking for the links before tor and the DHT are up raises ``NotReady``
with a message for the user.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Protocol, TypeVar

import trio

from anonsip._errors import AnonsipError, LocalError
from anonsip.control import View
from anonsip.dht import Contact as DhtContact
from anonsip.identity import Address, Identity, InvalidAddress
from anonsip.node._link import PeerLink
from anonsip.registration import Registration
from anonsip.store import MessageStore

__all__ = ["LinkSource", "NodeContext", "NotReady", "Resolve"]

log = logging.getLogger(__name__)


class NotReady(AnonsipError):
    """The node is still starting (tor bootstrap or the DHT join)."""


class LinkSource(Protocol):
    """What services need of the node's ``LinkTable``."""

    async def link_to(self, peer: bytes) -> PeerLink: ...

    def current(self, peer: bytes) -> PeerLink | None: ...

    async def open_media(self, peer: bytes) -> trio.abc.Stream: ...


Resolve = Callable[[bytes], Awaitable[tuple[int, Registration]]]
SeedsLearned = Callable[[Sequence["DhtContact"], str], Awaitable[None]]
T = TypeVar("T")


class NodeContext:
    """The node as its services see it."""

    def __init__(
        self,
        *,
        identity: Identity,
        store: MessageStore,
        clock: Callable[[], float],
        offload: bool = True,
    ) -> None:
        self.identity = identity
        self._offload = offload
        self.address = identity.address.text
        self.store = store
        self.clock = clock
        self._publish: Callable[[str, View], None] = lambda _event, _view: None
        self._contacts_changed: Callable[[], None] = lambda: None
        self._status_changed: Callable[[], None] = lambda: None
        self._stop: Callable[[], None] = lambda: None
        self._effort_changed: Callable[[], None] = lambda: None
        self._seeds_learned: SeedsLearned | None = None
        self._links: LinkSource | None = None
        self._resolve: Resolve | None = None

    # -- wired by the node --------------------------------------------------------

    def connect(
        self,
        *,
        publish: Callable[[str, View], None],
        contacts_changed: Callable[[], None],
        status_changed: Callable[[], None],
        stop: Callable[[], None],
        seeds_learned: SeedsLearned | None = None,
        effort_changed: Callable[[], None] = lambda: None,
    ) -> None:
        self._publish = publish
        self._contacts_changed = contacts_changed
        self._status_changed = status_changed
        self._stop = stop
        self._seeds_learned = seeds_learned
        self._effort_changed = effort_changed

    def overlay_up(self, links: LinkSource, resolve: Resolve) -> None:
        self._links, self._resolve = links, resolve

    def overlay_down(self) -> None:
        self._links, self._resolve = None, None

    # -- for services --------------------------------------------------------------

    def publish(self, event: str, view: View) -> None:
        """Push a control event to every subscribed client."""
        self._publish(event, view)

    def contacts_changed(self) -> None:
        """Tell every service the contact list changed."""
        self._contacts_changed()

    async def seeds_learned(self, contacts: Sequence[DhtContact], source: str) -> None:
        """DHT contacts to join through (from an invite): kept, and used now if alone."""
        if self._seeds_learned is not None:
            await self._seeds_learned(contacts, source)

    def status_changed(self) -> None:
        """Something ``status`` reports changed: publish it again."""
        self._status_changed()

    def effort_changed(self) -> None:
        """The proof of work we ask of strangers changed: our registration may say so."""
        self._effort_changed()

    def stop(self) -> None:
        self._stop()

    async def db(self, fn: Callable[..., T], *args: object) -> T:
        """Run a store call off the event loop (SQLite blocks; a flood must not stall us).

        Tests on trio's autojump clock build the context with ``offload=False``:
        a worker thread's real time would let the mock clock race ahead.
        """
        if not self._offload:
            return fn(*args)
        return await trio.to_thread.run_sync(functools.partial(fn, *args))

    async def compute(self, fn: Callable[..., T], *args: object) -> T:
        """CPU work (a proof of work) in a worker thread, abandoned if we are cancelled."""
        if not self._offload:
            return fn(*args)
        return await trio.to_thread.run_sync(functools.partial(fn, *args), abandon_on_cancel=True)

    @property
    def links(self) -> LinkSource:
        if self._links is None:
            raise NotReady("the node is still connecting to Tor; try again in a moment")
        return self._links

    @property
    def online(self) -> bool:
        return self._links is not None

    async def resolve(self, public_key: bytes) -> tuple[int, Registration]:
        if self._resolve is None:
            raise NotReady("the node has not joined the DHT yet; try again in a moment")
        return await self._resolve(public_key)

    def peer_address(self, text: str) -> str:
        """A contact's nick (any case), an ``asip1…`` address or a ``sip:`` URI -> address.

        Text that is an address is that address, whatever the nicks: a nick never
        sends to someone else than the address typed (and reading the nicks
        opens every contact's, on the event loop, for each message sent).
        """
        try:
            if text.lower().startswith("sip:"):
                return Address.from_sip_uri(text).text
            return Address.parse(text).text
        except InvalidAddress as exc:
            not_an_address = exc
        contact = self.store.contact_by_nick(text)
        if contact is None:
            folded = text.casefold()
            matches = [c for c in self.store.contacts() if c.nick.casefold() == folded]
            contact = matches[0] if len(matches) == 1 else None
        if contact is not None:
            return contact.address
        raise LocalError(
            f"'{text}' is neither a contact's name nor an address ({not_an_address})"
        ) from not_an_address
