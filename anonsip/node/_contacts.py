"""Contacts, contact requests and blocking: the node's address book as a service.

It serves the control operations on contacts (list, add or rename,
remove, verify, safety numbers) and on requests from strangers (list,
accept, decline, block, unblock). Every change is published as a whole
``ContactView`` (with the contact's presence as the presence service last
saw it) and told to every other service through the node, so presence
watches and the outbox follow at once. Requests themselves are admitted by
the messaging service, which owns the MESSAGE method.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Protocol

from anonsip._errors import LocalError
from anonsip.control import (
    AcceptArgs,
    AddressArgs,
    ContactAddArgs,
    ContactView,
    NoArgs,
    PeerArgs,
    PresenceStatus,
    RequestView,
    SafetyNumberView,
    VerifyArgs,
)
from anonsip.control import ContactState as ViewContactState
from anonsip.dht import Contact as DhtContact
from anonsip.identity import Address, SafetyNumber
from anonsip.invite import InvalidInvite, Invite, looks_like_invite
from anonsip.node._context import NodeContext
from anonsip.node._service import NodeService, OperationHandler
from anonsip.store import Contact, ContactState, StoreError

__all__ = ["ContactsService", "PresenceLookup", "request_view"]

log = logging.getLogger(__name__)


class PresenceLookup(Protocol):
    """What contacts need of presence: the last status seen of a contact."""

    def presence_of(self, address: str) -> tuple[str, str]: ...


def _presence(value: str) -> PresenceStatus:
    try:
        return PresenceStatus(value)
    except ValueError:
        return PresenceStatus.UNKNOWN


def request_view(address: str, text: str, time: float, count: int = 1) -> RequestView:
    return RequestView(address=address, text=text, time=time, count=count)


class ContactsService(NodeService):
    name = "contacts"

    def __init__(self, context: NodeContext, *, presence: PresenceLookup | None = None) -> None:
        self._ctx = context
        self._store = context.store
        self._presence = presence

    def view(self, contact: Contact, *, unread: int | None = None) -> ContactView:
        """The whole view of ``contact`` as clients see it."""
        status, note = ("unknown", "")
        if self._presence is not None:
            status, note = self._presence.presence_of(contact.address)
        if unread is None:
            unread = self._store.unread(contact.address)
        return ContactView(
            address=contact.address,
            nick=contact.nick,
            state=ViewContactState(contact.state.value),
            verified=contact.verified,
            presence=_presence(status),
            note=note or contact.note,
            unread=unread,
            queued=self._store.queued_for(contact.address),
        )

    def publish(self, address: str) -> ContactView | None:
        """Publish the current view of ``address`` (a ``removed`` view if it is gone)."""
        contact = self._store.contact(address)
        view = (
            ContactView(address=address, state=ViewContactState.REMOVED)
            if contact is None
            else self.view(contact)
        )
        self._ctx.publish("contact", view)
        return view if contact is not None else None

    def operations(self) -> Mapping[str, OperationHandler]:
        return {
            "contacts.list": self.op_list,
            "contacts.add": self.op_add,
            "contacts.remove": self.op_remove,
            "contacts.verify": self.op_verify,
            "safety_number": self.op_safety_number,
            "requests": self.op_requests,
            "accept": self.op_accept,
            "decline": self.op_decline,
            "block": self.op_block,
            "unblock": self.op_unblock,
        }

    # -- contacts --------------------------------------------------------------------

    async def op_list(self, args: NoArgs) -> list[ContactView]:
        def read() -> list[ContactView]:
            unread = self._store.unread_counts()
            return [self.view(c, unread=unread.get(c.address, 0)) for c in self._store.contacts()]

        return await self._ctx.db(read)

    async def op_add(self, args: ContactAddArgs) -> ContactView:
        """Add (or rename) a contact by address or by invite; an invite's DHT contacts
        also bring a node that knows nobody into the DHT."""
        text = args.address
        if looks_like_invite(text):
            try:
                invite = Invite.parse(text)
            except InvalidInvite as exc:
                raise LocalError(str(exc)) from exc
            if invite.expired(self._ctx.clock()):
                raise LocalError("this invite has expired; ask your contact for a new one")
            seeds = [DhtContact.from_public_key(s.key, s.port) for s in invite.seeds]
            await self._ctx.seeds_learned(seeds, "invite")
            text = invite.address.text
        address = self._ctx.peer_address(text)
        if address == self._ctx.address:
            raise LocalError("that is your own address")
        existing = self._store.contact(address)
        state = ContactState.REQUESTED
        if existing is not None and existing.state is not ContactState.REQUESTED:
            state = existing.state
        if existing is None and any(r.address == address for r in self._store.requests()):
            # They asked us first: adding them is accepting them.
            state = ContactState.ACCEPTED
        contact = self._store.add_contact(address, args.nick, self._ctx.clock(), state=state)
        view = self.view(contact)
        self._ctx.publish("contact", view)
        self._ctx.contacts_changed()
        return view

    async def op_remove(self, args: PeerArgs) -> None:
        address = self._ctx.peer_address(args.peer)
        cancelled = self._store.cancel_outbox(address)
        if not self._store.remove_contact(address):
            raise LocalError("there is no such contact")
        if cancelled:
            log.info("removing a contact cancelled %d queued messages", cancelled)
        self.publish(address)
        self._ctx.contacts_changed()

    async def op_verify(self, args: VerifyArgs) -> ContactView:
        address = self._ctx.peer_address(args.peer)
        try:
            contact = self._store.set_verified(address, args.verified)
        except StoreError as exc:
            raise LocalError(str(exc)) from exc
        view = self.view(contact)
        self._ctx.publish("contact", view)
        return view

    async def op_safety_number(self, args: PeerArgs) -> SafetyNumberView:
        address = self._ctx.peer_address(args.peer)
        number = SafetyNumber.between(
            self._ctx.identity.public_key, Address.parse(address).public_key
        )
        return SafetyNumberView(safety_number=str(number), compact=number.compact)

    # -- requests ----------------------------------------------------------------------

    async def op_requests(self, args: NoArgs) -> list[RequestView]:
        return [request_view(r.address, r.text, r.time, r.count) for r in self._store.requests()]

    async def op_accept(self, args: AcceptArgs) -> ContactView:
        address = self._ctx.peer_address(args.address)
        requests = {r.address: r for r in self._store.requests()}
        request = requests.get(address)
        if request is None:
            raise LocalError("there is no contact request from that address")
        nick = args.nick or address[:16]
        try:
            contact = self._store.accept_request(address, nick, self._ctx.clock())
        except StoreError as exc:
            raise LocalError(str(exc)) from exc
        # The request's text becomes the conversation's first message.
        self._store.record_incoming(address, request.message_id, request.text, request.time)
        view = self.view(contact)
        self._ctx.publish("contact", view)
        self._ctx.contacts_changed()
        return view

    async def op_decline(self, args: AddressArgs) -> None:
        address = self._ctx.peer_address(args.address)
        if not self._store.decline_request(address):
            raise LocalError("there is no contact request from that address")

    async def op_block(self, args: AddressArgs) -> None:
        address = self._ctx.peer_address(args.address)
        self._store.cancel_outbox(address)
        self._store.block(address, self._ctx.clock())
        self.publish(address)
        self._ctx.contacts_changed()

    async def op_unblock(self, args: AddressArgs) -> None:
        address = self._ctx.peer_address(args.address)
        if not self._store.unblock(address):
            raise LocalError("that address is not blocked")
        self.publish(address)
        self._ctx.contacts_changed()
