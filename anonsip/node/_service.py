"""What a node service is, and the table that routes work to services.

A node is a host of services (messaging, contacts, presence, calls, the
echo bot, mailboxes, …). Each service declares what it handles:

* ``sip_methods``: SIP request methods whose requests it takes (MESSAGE,
  INVITE, BYE, …; an INVITE owner also gets ACK and CANCEL);
* ``event_packages``: RFC 6665 event packages; SUBSCRIBE and NOTIFY are
  routed by their ``Event`` header (section 8.2.1), not by method;
* ``operations()``: the control operations it serves (names from
  ``anonsip.control.OPERATIONS``);
* ``handles_media``: whether it takes the node's media streams;

and has a lifecycle: ``run`` in the node's nursery once the node is
reachable, ``contacts_changed`` when anyone changes the contact list,
``link_up`` when a secure link to a peer comes up, ``registration_found``
when a lookup found a peer's registration, ``stopping`` while the
links are still up before the node unregisters. Two services claiming the
same method, package, operation or the media streams is an error when the
node is built (``ServiceConflict``), not a silent override.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from typing import Any, ClassVar

import trio

from anonsip._errors import LocalError
from anonsip.control import OPERATIONS, View
from anonsip.node._link import PeerLink
from anonsip.registration import Registration
from anonsip.sip import AckReceived, InviteCancelled, RequestReceived, SipEvent

__all__ = [
    "NodeService",
    "OperationHandler",
    "ServiceConflict",
    "ServiceTable",
]

OperationResult = View | Sequence[View] | None
OperationHandler = Callable[[Any], Awaitable[OperationResult]]


class ServiceConflict(LocalError):
    """Two services claim the same SIP method, event package, operation or media."""


class NodeService:
    """Base of the node's services: override what the service handles."""

    name: ClassVar[str] = "service"
    sip_methods: ClassVar[frozenset[str]] = frozenset()
    event_packages: ClassVar[frozenset[str]] = frozenset()
    handles_media: ClassVar[bool] = False

    def operations(self) -> Mapping[str, OperationHandler]:
        """Control operation name -> handler taking the op's parsed arguments."""
        return {}

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """The service's work while the node is reachable; cancelled when it stops."""
        task_status.started()

    async def on_sip(self, link: PeerLink, event: SipEvent) -> None:
        """A request (or ACK / CANCEL) of a method or package this service declared."""
        if isinstance(event, RequestReceived):
            await link.respond(event.request, 501)

    async def on_media(self, stream: trio.abc.Stream) -> None:
        await trio.aclose_forcefully(stream)

    def contacts_changed(self) -> None:
        """Someone added, removed, accepted, blocked or unblocked a contact."""

    def link_up(self, peer_key: bytes) -> None:
        """A secure link to ``peer_key`` came up (either side dialled)."""

    def registration_found(self, peer_key: bytes, registration: Registration) -> None:
        """A lookup found ``peer_key``'s newest registration (verified and decrypted)."""

    async def stopping(self) -> None:
        """The node is stopping and its links are still up: say goodbye (briefly)."""


def _claim(
    table: dict[str, NodeService], keys: Iterable[str], service: NodeService, what: str
) -> None:
    for key in keys:
        owner = table.get(key)
        if owner is not None:
            raise ServiceConflict(
                f"the {service.name} and {owner.name} services both claim the {what} {key!r}"
            )
        table[key] = service


class ServiceTable:
    """Who handles what, built once from the node's services."""

    NODE_METHODS: ClassVar[frozenset[str]] = frozenset({"OPTIONS", "SUBSCRIBE", "NOTIFY"})

    def __init__(self, services: Sequence[NodeService]) -> None:
        self.services = tuple(services)
        self.methods: dict[str, NodeService] = {}
        self.packages: dict[str, NodeService] = {}
        self.ops: dict[str, OperationHandler] = {}
        self.media: NodeService | None = None
        owners: dict[str, NodeService] = {}
        for service in self.services:
            reserved = service.sip_methods & (self.NODE_METHODS | {"ACK", "CANCEL"})
            if reserved:
                raise ServiceConflict(
                    f"the {service.name} service may not claim {sorted(reserved)[0]}: "
                    "the node routes it"
                )
            _claim(self.methods, sorted(service.sip_methods), service, "SIP method")
            _claim(self.packages, sorted(service.event_packages), service, "event package")
            ops = service.operations()
            unknown = sorted(set(ops) - set(OPERATIONS))
            if unknown:
                raise ServiceConflict(
                    f"the {service.name} service serves {unknown[0]!r}, "
                    "which the control schema does not define"
                )
            _claim(owners, sorted(ops), service, "control operation")
            self.ops.update(ops)
            if service.handles_media:
                if self.media is not None:
                    raise ServiceConflict(
                        f"the {service.name} and {self.media.name} services both take media"
                    )
                self.media = service

    async def call(self, name: str, raw: Mapping[str, Any]) -> Any:
        """Run control operation ``name``: parse its arguments by the schema, encode its result."""
        handler = self.ops.get(name)
        if handler is None:
            raise LocalError(f"the node has no operation {name!r}")
        result = await handler(OPERATIONS[name].parse_args(raw))
        if result is None:
            return None
        if isinstance(result, View):
            return result.encode()
        return [item.encode() for item in result]

    def route(self, event: SipEvent) -> NodeService | None:
        """The service for an incoming request, ACK or CANCEL (None: nobody's)."""
        if isinstance(event, AckReceived | InviteCancelled):
            return self.methods.get("INVITE")
        if not isinstance(event, RequestReceived):
            return None
        request = event.request
        if request.method in ("SUBSCRIBE", "NOTIFY"):
            package = (request.get("Event") or "").split(";", 1)[0].strip().lower()
            return self.packages.get(package)
        return self.methods.get(request.method)
