"""The node's side of the control API (docs/control-api.md): one handler per op.

Handlers validate their arguments (the socket is local and private, but a
client bug must still give a clear error, never a crash) and translate the
node's state into the plain maps the API documents.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any

from anonsip._errors import AnonsipError, LocalError
from anonsip.identity import Address, InvalidAddress, SafetyNumber
from anonsip.node._messaging import message_event
from anonsip.store import Contact, ContactState

if TYPE_CHECKING:
    from anonsip.node._node import Node

Handler = Callable[[Mapping[str, Any]], Awaitable[Any]]


class NotReady(AnonsipError):
    """The node is still starting (Tor bootstrap or DHT join)."""


def _text(args: Mapping[str, Any], name: str, *, required: bool = True) -> str:
    value = args.get(name)
    if value is None and not required:
        return ""
    if not isinstance(value, str) or (required and not value):
        raise LocalError(f"'{name}' must be given as text")
    return value


def contact_view(contact: Contact, unread: int = 0) -> dict[str, Any]:
    return {
        "address": contact.address,
        "nick": contact.nick,
        "state": contact.state.value,
        "verified": contact.verified,
        "presence": "unknown",
        "note": contact.note,
        "unread": unread,
    }


class ControlApi:
    """Maps control ops to the node."""

    def __init__(self, node: Node) -> None:
        self.node = node
        self.extra: dict[str, Handler] = {}

    def handlers(self) -> dict[str, Handler]:
        table: dict[str, Handler] = {
            "status": self.status,
            "identity": self.identity,
            "contacts.list": self.contacts_list,
            "contacts.add": self.contacts_add,
            "contacts.remove": self.contacts_remove,
            "contacts.verify": self.contacts_verify,
            "safety_number": self.safety_number,
            "send": self.send,
            "history": self.history,
            "read": self.read,
            "requests": self.requests,
            "accept": self.accept,
            "decline": self.decline,
            "block": self.block,
            "unblock": self.unblock,
            "lookup": self.lookup,
            "shutdown": self.shutdown,
        }
        table.update(self.node.extra_handlers)
        return table

    # -- helpers -------------------------------------------------------------

    def peer_address(self, text: str) -> str:
        """A contact's nick, an ``asip1…`` address or a ``sip:`` URI -> address text."""
        store = self.node.store
        contact = store.contact_by_nick(text)
        if contact is not None:
            return contact.address
        try:
            if text.lower().startswith("sip:"):
                return Address.from_sip_uri(text).text
            return Address.parse(text).text
        except InvalidAddress as exc:
            raise LocalError(f"'{text}' is neither a contact's nick nor an address: {exc}") from exc

    # -- ops -----------------------------------------------------------------

    async def status(self, args: Mapping[str, Any]) -> Any:
        return self.node.status()

    async def identity(self, args: Mapping[str, Any]) -> Any:
        ident = self.node.identity
        return {
            "nick": ident.nickname,
            "address": ident.address.text,
            "sip_uri": ident.address.sip_uri,
            "fingerprint": SafetyNumber.between(ident.public_key, ident.public_key).compact,
            "onion_address": self.node.onion_address,
        }

    async def contacts_list(self, args: Mapping[str, Any]) -> Any:
        store = self.node.store
        unread = store.unread_counts()
        views = [contact_view(c, unread.get(c.address, 0)) for c in store.contacts()]
        presence = self.node.presence_of
        for view in views:
            state, note = presence(view["address"])
            view["presence"] = state
            if note:
                view["note"] = note
        return views

    async def contacts_add(self, args: Mapping[str, Any]) -> Any:
        address = self.peer_address(_text(args, "address"))
        if address == self.node.address:
            raise LocalError("that is your own address")
        nick = _text(args, "nick")
        store = self.node.store
        existing = store.contact(address)
        state = ContactState.REQUESTED
        if existing is not None and existing.state is ContactState.ACCEPTED:
            state = ContactState.ACCEPTED
        contact = store.add_contact(address, nick, self.node.clock(), state=state)
        self.node.publish("contact", contact_view(contact))
        self.node.contacts_changed()
        return contact_view(contact)

    async def contacts_remove(self, args: Mapping[str, Any]) -> Any:
        address = self.peer_address(_text(args, "peer"))
        if not self.node.store.remove_contact(address):
            raise LocalError("no such contact")
        self.node.contacts_changed()
        return None

    async def contacts_verify(self, args: Mapping[str, Any]) -> Any:
        address = self.peer_address(_text(args, "peer"))
        verified = args.get("verified", True)
        if not isinstance(verified, bool):
            raise LocalError("'verified' is true or false")
        contact = self.node.store.set_verified(address, verified)
        self.node.publish("contact", contact_view(contact))
        return contact_view(contact)

    async def safety_number(self, args: Mapping[str, Any]) -> Any:
        address = self.peer_address(_text(args, "peer"))
        number = SafetyNumber.between(
            self.node.identity.public_key, Address.parse(address).public_key
        )
        return {"safety_number": str(number), "compact": number.compact}

    def _messenger(self) -> Any:
        if self.node.messenger is None:
            raise NotReady("the node is still starting; try again in a moment")
        return self.node.messenger

    async def send(self, args: Mapping[str, Any]) -> Any:
        address = self.peer_address(_text(args, "peer"))
        if address == self.node.address:
            raise LocalError("that is your own address")
        text = _text(args, "text")
        if self.node.store.contact(address) is None:
            # Writing to an address makes it a contact we asked for.
            self.node.store.add_contact(
                address, address[:16], self.node.clock(), state=ContactState.REQUESTED
            )
        message = await self._messenger().send(address, text)
        return {"message_id": message.message_id, "state": message.state.value}

    async def history(self, args: Mapping[str, Any]) -> Any:
        address = self.peer_address(_text(args, "peer"))
        limit = args.get("limit", 100)
        if not isinstance(limit, int) or not 1 <= limit <= 1000:
            raise LocalError("'limit' is a number from 1 to 1000")
        return [message_event(m) for m in self.node.store.history(address, limit)]

    async def read(self, args: Mapping[str, Any]) -> Any:
        self.node.store.mark_read(self.peer_address(_text(args, "peer")))
        return None

    async def requests(self, args: Mapping[str, Any]) -> Any:
        return [
            {"address": r.address, "text": r.text, "time": r.time, "count": r.count}
            for r in self.node.store.requests()
        ]

    async def accept(self, args: Mapping[str, Any]) -> Any:
        address = self.peer_address(_text(args, "address"))
        nick = _text(args, "nick", required=False) or address[:16]
        self._messenger().accept(address, nick)
        self.node.contacts_changed()
        return None

    async def decline(self, args: Mapping[str, Any]) -> Any:
        address = self.peer_address(_text(args, "address"))
        if not self.node.store.decline_request(address):
            raise LocalError("there is no contact request from that address")
        return None

    async def block(self, args: Mapping[str, Any]) -> Any:
        address = self.peer_address(_text(args, "address"))
        self.node.store.block(address, self.node.clock())
        self.node.publish("contact", {"address": address, "state": "blocked"})
        self.node.contacts_changed()
        return None

    async def unblock(self, args: Mapping[str, Any]) -> Any:
        address = self.peer_address(_text(args, "address"))
        if not self.node.store.unblock(address):
            raise LocalError("that address is not blocked")
        self.node.contacts_changed()
        return None

    async def lookup(self, args: Mapping[str, Any]) -> Any:
        address = Address.parse(_text(args, "address"))
        if self.node.resolver is None:
            raise NotReady("the node has not joined the DHT yet; try again in a moment")
        period, registration = await self.node.resolver.lookup(address.public_key)
        return {
            "found": True,
            "period": period,
            "seq": registration.sequence,
            "expires": float(registration.expires),
            "contacts": [{"onion": c.onion, "port": c.port} for c in registration.contacts],
        }

    async def shutdown(self, args: Mapping[str, Any]) -> Any:
        self.node.stop()
        return None
