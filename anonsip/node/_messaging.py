"""Instant messages that are never lost (RFC 3428 MESSAGE over our links).

Sending: ``send`` puts the message in the store's outbox (committed before
it returns). A delivery task per peer sends that peer's due messages one at
a time, in order, as MESSAGE requests whose Call-ID is the message id. A
message's state says only what is true: ``queued`` until the peer's node
says it has the request (``sent``: a 100 Trying, which it sends only when
its final answer takes more than 200 ms), ``delivered`` on a 200 (the
peer's node stored it), ``request`` on a 202 (the peer's node
holds it as a contact request; it counts as delivered once they accept
us), ``failed`` when refused for good. A retry after a crash or a broken
link reuses the id, and the receiver stores each (peer, id) once.

Receiving: a MESSAGE from an accepted contact is stored and answered 200.
From a stranger it is a contact request: it must carry a proof of work
(``Anonsip-Proof``), passes a rate-limited gate, and is answered 202; later
messages from the same stranger wait at the sender (480) until the user
accepts. Every refusal (blocked, bad proof) is one and the same 403, so a
stranger cannot tell which it met. Store work runs off the event loop.

The work asked of strangers is the gate's effort (proposal 327's model):
it rises under a flood, a 486 names it (``Anonsip-Effort``), and our
registration advertises it (the node re-publishes when it rises). As a
sender we prove the most a peer asked of us or advertised in the
registration a lookup found, never less than our resting effort and never
more than ``MAX_EFFORT``; a registration found while Tor dials starts the
proof again at once if it asks more, so the first request is not spent on
a 486.
"""

from __future__ import annotations

import logging
import math
import re
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from typing import Protocol

import trio

from anonsip._errors import AnonsipError, LocalError
from anonsip.admission import GateLimits, GateStatistics, RequestGate, Verdict, prove
from anonsip.control import (
    HistoryArgs,
    MessageDirection,
    MessageKind,
    MessageView,
    PeerArgs,
    SendArgs,
)
from anonsip.control import MessageState as ViewMessageState
from anonsip.identity import Address
from anonsip.node._contacts import request_view
from anonsip.node._context import NodeContext
from anonsip.node._link import PeerLink
from anonsip.node._service import NodeService, OperationHandler
from anonsip.registration import Registration
from anonsip.sip import (
    IMDN_CONTENT_TYPE,
    Request,
    RequestReceived,
    Response,
    SipEvent,
    SipParseError,
    imdn_body,
    message_text,
    parse_imdn,
)
from anonsip.store import (
    Contact,
    ContactState,
    Message,
    MessageState,
    OutboxItem,
    StoreFullError,
    StoreLimitError,
)

__all__ = ["PROOF_HEADER", "MessagingService", "message_view"]

log = logging.getLogger(__name__)

PROOF_HEADER = "Anonsip-Proof"
EFFORT_HEADER = "Anonsip-Effort"  # on a 486: the effort we ask now (proposal 327's)
BOX_HEADER = "Anonsip-Mailbox"  # our contacts' mailbox secret, told to contacts only
TEXT_PLAIN = "text/plain;charset=utf-8"
REFUSED = (403, "Forbidden")  # one answer for every refusal: blocked, bad proof
BUSY = (486, "Busy Here")  # try later: too many requests right now
TOO_LARGE = (413, "Request Entity Too Large")  # longer than we keep: never retried
TRYING_AFTER = 0.2  # s: a MESSAGE not answered by then gets a 100 Trying
QUEUE_EVENT_DELAY = 0.05  # s: a contact's "queued" count is said at most this often
FULL = (503, "Service Unavailable")  # our disk is full: the sender keeps it and retries
FULL_RETRY_AFTER = ("Retry-After", "300")
# A contact's messages go pipelined on one link: at most a window unanswered at
# once (a sliding window), the link's bound on open transactions (192 for a
# contact, 64 for a stranger) less SPARE_TRANSACTIONS, and at most BATCH: 128 on a
# contact's link (~230 messages/s over a 0.55 s WAN round trip), 48 on another.
# Receipts go a quarter of that at once, so both fit in the bound with room for
# presence and calls. BATCH messages per outbox read and per commit of
# their outcomes. A batch's outcomes are published together: BATCH stays well
# under a control subscriber's queue (256 events, the server drops a subscriber
# that falls behind), and publishing yields between events.
SPARE_TRANSACTIONS = 16
BATCH = 128
MAX_MESSAGE_ID = 64  # a message's id is its Call-ID; the store keeps at most this
GIVE_UP = frozenset({403, 404, 413, 415, 603})
MAX_EFFORT = 28  # the most work we prove for one contact request (~90 s of one core)
MAX_REMEMBERED_EFFORTS = 256

_BOX_VALUE = re.compile(r"[0-9a-f]{64}")

Heard = Callable[[str, str], None]
RECEIPT_TIMEOUT_S = 20.0  # a direct receipt; after that it goes by mail


class MailboxSender(Protocol):
    """What messaging asks of the mailbox service."""

    async def deposit_message(
        self, peer: str, message_id: str, text: str, time: float, *, request: bool
    ) -> bool: ...

    def secret(self) -> bytes:
        """Our contacts' mailbox secret (``anonsip.mailbox``)."""
        ...


def message_view(message: Message) -> MessageView:
    return MessageView(
        peer=message.peer,
        message_id=message.message_id,
        direction=MessageDirection(message.direction.value),
        text=message.text,
        time=message.time,
        state=ViewMessageState(message.state.value),
        kind=MessageKind(message.kind),
        duration_s=message.duration_s,
    )


class MessagingService(NodeService):
    """The IM service of one node."""

    name = "messaging"
    sip_methods = frozenset({"MESSAGE"})

    def __init__(
        self,
        context: NodeContext,
        *,
        pow_difficulty: int,
        request_timeout: float = 60.0,
        on_received: Sequence[Heard] = (),
        on_queue_change: Callable[[str], object] = lambda _peer: None,
        mailbox: MailboxSender | None = None,
    ) -> None:
        self._ctx = context
        self._store = context.store
        self._address = context.address
        self._pow_difficulty = pow_difficulty
        self._request_timeout = request_timeout
        self._gate = RequestGate(
            self._address, context.clock, GateLimits(difficulty_bits=pow_difficulty)
        )
        self._wake = trio.Event()
        self._active: set[str] = set()
        self._nursery: trio.Nursery | None = None
        self._on_received = list(on_received)
        self._on_queue_change = on_queue_change  # a contact's "queued" count changed
        self._mailbox = mailbox
        self._efforts: OrderedDict[str, int] = OrderedDict()  # what strangers asked of us
        self._advertised: OrderedDict[str, int] = OrderedDict()  # ... said in registrations
        self._learned = trio.Event()  # set (and replaced) when a peer's advertised effort rose
        self._told_effort = pow_difficulty  # the gate's effort as we last told the node
        self._full_warned = -math.inf  # when we last said our store was full
        self._queues_changed: set[str] = set()  # peers whose "queued" count is not yet said

    def effort(self) -> int:
        """The work we ask of strangers now (advertised with our registration)."""
        return self._gate.effort()

    def gate_statistics(self) -> GateStatistics:
        return self._gate.statistics()

    def hear(self, listener: Heard) -> None:
        """Call ``listener(peer, text)`` for each new incoming message (the echo bot)."""
        self._on_received.append(listener)

    def operations(self) -> Mapping[str, OperationHandler]:
        return {"send": self.op_send, "history": self.op_history, "read": self.op_read}

    # -- control ops -----------------------------------------------------------------

    async def op_send(self, args: SendArgs) -> MessageView:
        address = self._ctx.peer_address(args.peer)
        if address == self._address:
            raise LocalError("that is your own address")
        message = await self.send(address, args.text, make_contact=True)
        return message_view(message)

    async def op_history(self, args: HistoryArgs) -> list[MessageView]:
        if not 1 <= args.limit <= 1000:
            raise LocalError("'limit' is a number from 1 to 1000")
        address = self._ctx.peer_address(args.peer)
        messages = await self._ctx.db(self._store.history, address, args.limit)
        return [message_view(m) for m in messages]

    async def op_read(self, args: PeerArgs) -> None:
        self._store.mark_read(self._ctx.peer_address(args.peer))

    # -- sending -------------------------------------------------------------

    async def send(self, peer: str, text: str, *, make_contact: bool = False) -> Message:
        """Queue ``text`` for ``peer`` (an address); durable when this returns.

        ``make_contact``: the user wrote it, so a blocked peer is refused and an
        unknown one becomes a contact we asked for. One trip to the store's
        thread for all of it: a store call on the event loop waits out
        whatever commit a worker thread is making.
        """
        try:
            message, added = await self._ctx.db(
                self._queue_message, peer, text, self._ctx.clock(), make_contact
            )
        except StoreLimitError as exc:
            raise LocalError(str(exc)) from exc
        if added:
            self._ctx.contacts_changed()
        self._ctx.publish("message", message_view(message))
        self._queue_changed(peer)
        if peer not in self._active:
            # A delivery running for the peer takes it in its next batch (and wakes
            # the outbox scan as it ends): a scan per send read the whole outbox.
            self._wake.set()
        return message

    def _queue_message(
        self, peer: str, text: str, now: float, make_contact: bool
    ) -> tuple[Message, bool]:
        added = False
        if make_contact:
            if self._store.is_blocked(peer):
                raise LocalError("you blocked that address; unblock it before writing to it")
            if self._store.contact(peer) is None:
                # Writing to an address makes it a contact we asked for. No nick: the
                # UI shows the address's short form until the user names them.
                self._store.add_contact(peer, "", now, state=ContactState.REQUESTED)
                added = True
        return self._store.enqueue(peer, text, now), added

    def _queue_changed(self, peer: str) -> None:
        """A contact's "queued" count changed: said once for all the changes of the
        next ``QUEUE_EVENT_DELAY`` (a burst of sends was a contact event, and three
        store reads on the event loop, per message)."""
        if self._nursery is None:
            self._on_queue_change(peer)
            return
        if not self._queues_changed:
            self._nursery.start_soon(self._say_queues)
        self._queues_changed.add(peer)

    async def _say_queues(self) -> None:
        await trio.sleep(QUEUE_EVENT_DELAY)
        peers, self._queues_changed = self._queues_changed, set()
        for peer in peers:
            self._on_queue_change(peer)

    def kick(self) -> None:
        """Look at the outbox now (a contact was accepted, a message queued)."""
        self._wake.set()

    def contacts_changed(self) -> None:
        self.kick()

    def registration_found(self, peer_key: bytes, registration: Registration) -> None:
        """A lookup found the peer's registration: note the effort it advertises (more
        than our resting one and at most ``MAX_EFFORT``), for the proof to it."""
        peer = Address(peer_key).text
        before = self._effort_for(peer)
        effort = min(registration.effort, MAX_EFFORT)
        if effort <= self._pow_difficulty:
            self._advertised.pop(peer, None)  # calm again (or never said)
            return
        _remember(self._advertised, peer, effort)
        if self._effort_for(peer) > before:
            self._learned.set()  # a proof being solved for it starts again
            self._learned = trio.Event()

    def link_up(self, peer_key: bytes) -> None:
        """A link to the peer came up: send what waits for it without waiting out
        the back-off (only for contacts we know: a stranger's link costs nothing)."""
        peer = Address(peer_key).text
        if self._nursery is None or peer in self._active:
            return
        self._active.add(peer)
        self._nursery.start_soon(self._deliver_waiting, peer)

    async def _deliver_waiting(self, peer: str) -> None:
        contact = await self._ctx.db(self._store.contact, peer)
        if contact is None or contact.state is ContactState.BLOCKED:
            self._active.discard(peer)
            return
        await self._deliver_to(peer, now_regardless=True)

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            task_status.started()
            try:
                while True:
                    self._wake = trio.Event()
                    now = self._ctx.clock()
                    peers, next_due = await self._ctx.db(self._due_peers, now)
                    for peer in peers:
                        if peer not in self._active:
                            self._active.add(peer)
                            nursery.start_soon(self._deliver_to, peer)
                    delay = math.inf if next_due is None else max(0.5, next_due - now)
                    with trio.move_on_after(delay):
                        await self._wake.wait()
            finally:
                self._nursery = None

    async def _deliver_to(self, peer: str, now_regardless: bool = False) -> None:
        try:
            while True:
                horizon = math.inf if now_regardless else self._ctx.clock()
                contact, items = await self._ctx.db(self._due_batch, peer, horizon)
                if not items:
                    return
                if contact is not None and contact.state is ContactState.ACCEPTED:
                    # A contact's messages go pipelined, in order, a batch at a time.
                    if not await self._deliver_batch(peer, items):
                        return
                    continue
                item = items[0]
                if not await self._deliver_one(peer, item.message_id, item.text):
                    return
        finally:
            self._active.discard(peer)
            self._wake.set()

    def _due_peers(self, now: float) -> tuple[list[str], float | None]:
        """Who has messages to try now, and when the next one is due: one store trip
        (a store call on the event loop waits out any commit a worker thread makes)."""
        return self._store.due_peers(now), self._store.next_due()

    def _due_batch(self, peer: str, horizon: float) -> tuple[Contact | None, list[OutboxItem]]:
        """The peer's contact entry and its next ``BATCH`` messages due by ``horizon``."""
        return self._store.contact(peer), self._store.due_for(peer, horizon, BATCH)

    async def _deliver_one(
        self, peer: str, message_id: str, text: str, *, retried: bool = False
    ) -> bool:
        """One attempt; True if the outbox may go on with the next message."""
        peer_key = Address.parse(peer).public_key
        contact = self._store.contact(peer)
        await self._ctx.db(self._store.note_attempt, message_id, self._ctx.clock())

        def sent(_trying: object) -> None:
            # The peer's node said it has the request (100 Trying) before storing it.
            if self._store.set_outgoing_state(message_id, MessageState.SENT):
                self._publish_state(message_id)

        try:
            with trio.fail_after(self._request_timeout):
                headers: list[tuple[str, str]] = [("Content-Type", TEXT_PLAIN)]
                needs_proof = contact is None or contact.state is not ContactState.ACCEPTED
                if not needs_proof:
                    headers.extend(self._box_headers())
                link, proof = await self._dial(peer, peer_key, needs_proof=needs_proof)
                if proof is not None:
                    headers.append((PROOF_HEADER, proof))
                request = link.endpoint.create_request(
                    "MESSAGE", headers=tuple(headers), body=text.encode("utf-8")
                ).with_replaced("Call-ID", message_id)
                response = await link.request(request, on_provisional=sent)
        except (AnonsipError, trio.TooSlowError) as exc:
            log.info("a message was not delivered yet (%s); it stays in the outbox", exc)
            await self._to_mailbox(peer, [message_id], request=needs_proof)
            return False
        code = response.status_code
        if code == 200:
            await self._learn_box(peer, response)
            await self._ctx.db(self._store.mark_delivered, message_id)
            self._publish_state(message_id)
            if contact is not None and contact.state is ContactState.REQUESTED:
                self._accepted_by(peer)
            return True
        if code == 202:
            await self._ctx.db(self._store.mark_request, message_id)
            self._publish_state(message_id)
            return True
        if code in GIVE_UP:
            log.info("the peer refused a message with %d; giving up on it", code)
            await self._ctx.db(self._store.mark_failed, message_id)
            self._publish_state(message_id)
            return True
        if code == 486 and needs_proof and not retried and self._asked(peer, response):
            # It is flooded and asks more work of strangers: pay it now, once.
            return await self._deliver_one(peer, message_id, text, retried=True)
        log.info("the peer answered %d; retrying later", code)
        return False

    async def _deliver_batch(self, peer: str, items: list[OutboxItem]) -> bool:
        """Up to ``BATCH`` of a contact's messages on one link without waiting a round
        trip between them (``_window(link)`` unanswered at most); True if all were settled
        (delivered or refused for good). Their outcomes are committed once."""
        peer_key = Address.parse(peer).public_key
        ids = [item.message_id for item in items]
        reached: list[str] = []
        await self._ctx.db(self._store.note_attempts, ids, self._ctx.clock())
        try:
            with trio.fail_after(self._request_timeout):
                link = await self._ctx.links.link_to(peer_key)
            box = self._box_headers()
            requests = [
                link.endpoint.create_request(
                    "MESSAGE",
                    # Our mailbox secret rides on a batch's first message only.
                    headers=(("Content-Type", TEXT_PLAIN), *(box if index == 0 else ())),
                    body=item.text.encode("utf-8"),
                ).with_replaced("Call-ID", item.message_id)
                for index, item in enumerate(items)
            ]

            def trying(index: int, _response: object) -> None:
                # The peer's node has it: shown now, written with the batch's outcomes
                # (a commit per message here held up the whole node). Lost in a crash,
                # the message is only sent again, and the peer keeps it once.
                reached.append(ids[index])
                self._publish_sent(ids[index])

            # No overall deadline: each request has Timer F, and one unanswered ends
            # the link (and the rest with it), so answers already in are never lost.
            results = await link.request_many(requests, window=_window(link), on_provisional=trying)
        except (AnonsipError, trio.TooSlowError) as exc:
            log.info("messages were not delivered yet (%s); they stay in the outbox", exc)
            await self._ctx.db(self._store.finish_many, (), (), reached)
            await self._to_mailbox(peer, ids, request=False)
            return False
        delivered: list[str] = []
        failed: list[str] = []
        unanswered: list[str] = []
        settled = True
        for message_id, result in zip(ids, results, strict=True):
            if isinstance(result, AnonsipError) or not settled:
                settled = False  # an error, or after one: retried later, in order
                if isinstance(result, AnonsipError):
                    unanswered.append(message_id)
                continue
            if result.status_code == 200:
                if not delivered:
                    await self._learn_box(peer, result)
                delivered.append(message_id)
            elif result.status_code in GIVE_UP:
                failed.append(message_id)
            else:
                settled = False
        # One commit for the batch: a receipt is as safe in a batch as alone.
        await self._ctx.db(self._store.finish_many, delivered, failed, reached)
        for message_id in (*delivered, *failed):
            self._publish_state(message_id, queue_changed=False)
            await trio.sleep(0)  # the subscribers' writers keep up with a batch's events
        if delivered or failed:
            self._queue_changed(peer)  # one "contact" event for the batch, not one each
        if unanswered:
            # Timed out or cut off on the way (the session died under them): as when the
            # dial fails, they also go to the mailbox and stay queued for a direct try.
            log.info("%d messages were not answered; they stay in the outbox", len(unanswered))
            await self._to_mailbox(peer, unanswered, request=False)
        return settled

    async def _to_mailbox(self, peer: str, message_ids: list[str], *, request: bool) -> None:
        """Direct delivery failed: the messages also go to the peer's mailbox, once each."""
        if self._mailbox is None:
            return
        for message_id in message_ids:
            message = self._store.outgoing(message_id)
            if message is None or (
                message.state is not MessageState.QUEUED
                and (message.state is not MessageState.SENT)
            ):
                continue  # in a mailbox already, or settled
            await self._mailbox.deposit_message(
                peer, message_id, message.text, message.time, request=request
            )

    async def send_receipts(self, peer: str, message_ids: Sequence[str]) -> bool:
        """Tell ``peer``'s node we have these messages (RFC 5438 delivery notifications);
        False if its node could not be reached (then the receipts go by mail)."""
        try:
            with trio.fail_after(RECEIPT_TIMEOUT_S):
                link = await self._ctx.links.link_to(Address.parse(peer).public_key)
                now = self._ctx.clock()
                requests = [
                    link.endpoint.create_request(
                        "MESSAGE",
                        headers=(("Content-Type", IMDN_CONTENT_TYPE),),
                        body=imdn_body(message_id, now),
                    )
                    for message_id in message_ids
                ]
                # A quarter of the window: receipts and a batch of messages can be
                # in flight on one link at once, within its bound.
                results = await link.request_many(requests, window=_window(link) // 4)
        except (AnonsipError, trio.TooSlowError) as exc:
            log.info("receipts could not go directly (%s); they go by mail", exc)
            return False
        return all(not isinstance(r, AnonsipError) and r.status_code == 200 for r in results)

    def _box_headers(self) -> tuple[tuple[str, str], ...]:
        """Our contacts' mailbox secret, for a message to or an answer to a contact."""
        if self._mailbox is None:
            return ()
        return ((BOX_HEADER, self._mailbox.secret().hex()),)

    async def _learn_box(self, peer: str, message: Request | Response) -> None:
        """A contact told us its mailbox secret: our mail to it goes there from now on."""
        value = message.get(BOX_HEADER)
        if value is None or not _BOX_VALUE.fullmatch(value):
            return  # none, or not one: the open mailbox still works
        secret = bytes.fromhex(value)
        if await self._ctx.db(self._store.contact_mailbox, peer) != secret:
            await self._ctx.db(self._store.set_contact_mailbox, peer, secret)

    def _accepted_by(self, peer: str) -> None:
        """``peer`` answered as a contact: it accepted our request."""
        self._store.set_state(peer, ContactState.ACCEPTED)
        for message_id in self._store.requests_accepted(peer):
            self._publish_state(message_id)
        self._ctx.contacts_changed()

    async def _dial(
        self, peer: str, peer_key: bytes, *, needs_proof: bool
    ) -> tuple[PeerLink, str | None]:
        """A link to the peer, and a proof of work solved while Tor dials if needed."""
        links = self._ctx.links
        if not needs_proof:
            return await links.link_to(peer_key), None
        proofs: list[tuple[int, str]] = []  # (effort, proof): the last one is the one to send
        dialled: list[bool] = []
        failure: list[AnonsipError | trio.TooSlowError] = []

        async def solve() -> None:
            # Again at once if the peer's registration, found while Tor dials, asks
            # more than the proof in hand.
            while True:
                effort = self._effort_for(peer)
                if not proofs or proofs[-1][0] < effort:
                    proofs.append((effort, await self._ctx.compute(self._prove, peer, effort)))
                elif dialled:
                    return
                else:
                    await self._learned.wait()

        async with trio.open_nursery() as nursery:
            nursery.start_soon(solve)
            try:
                link = await links.link_to(peer_key)
            except (AnonsipError, trio.TooSlowError) as exc:
                # Raised here, not through the nursery (which would wrap it).
                failure.append(exc)
                nursery.cancel_scope.cancel()
            else:
                dialled.append(True)
                if proofs and proofs[-1][0] >= self._effort_for(peer):
                    nursery.cancel_scope.cancel()  # the solver only waits for news
        if failure:
            raise failure[0]
        return link, proofs[-1][1]

    def _effort_for(self, peer: str) -> int:
        """The effort to prove to ``peer``: the most it asked of us (a 486) or advertised
        (its registration), and never less than our resting one."""
        return max(self._pow_difficulty, self._efforts.get(peer, 0), self._advertised.get(peer, 0))

    def _asked(self, peer: str, response: Response) -> bool:
        """A 486 that asks for more work than we proved: remember it; True to try again."""
        value = response.get(EFFORT_HEADER)
        if value is None or not value.isdigit() or len(value) > 2:
            return False
        effort = int(value)
        if not self._effort_for(peer) < effort <= MAX_EFFORT:
            return False  # no more than we gave, or more than we will ever pay
        _remember(self._efforts, peer, effort)
        return True

    def _prove(self, peer: str, effort: int) -> str:
        proof = prove(peer, self._address, self._ctx.clock(), difficulty_bits=effort)
        return f"{proof.bucket};{proof.nonce.hex()}"

    def _publish_sent(self, message_id: str) -> None:
        """Say a message reached the peer's node before the store has it as sent."""
        message = self._store.outgoing(message_id)
        if message is not None and message.state is MessageState.QUEUED:
            self._ctx.publish("message", message_view(replace(message, state=MessageState.SENT)))

    def _publish_state(self, message_id: str, *, queue_changed: bool = True) -> None:
        message = self._store.outgoing(message_id)
        if message is not None:
            self._ctx.publish("message", message_view(message))
            if queue_changed and message.state is not MessageState.SENT:  # it left the outbox
                self._queue_changed(message.peer)

    # -- receiving -----------------------------------------------------------

    async def on_sip(self, link: PeerLink, event: SipEvent) -> None:
        if not isinstance(event, RequestReceived):
            return
        request = event.request
        peer = Address(link.peer_public_key).text
        if not 0 < len(request.call_id) <= MAX_MESSAGE_ID:
            await link.respond(request, 400, "Bad Call-ID")
            return
        ctype = request.content_type
        if ctype is not None and ctype.essence == IMDN_CONTENT_TYPE:
            await self._receipt(link, request, peer)
            return
        try:
            text = message_text(request)
        except SipParseError as exc:
            await link.respond(request, exc.status_code or 400)
            return
        # The timer runs in the service's nursery, under a scope we cancel: a nursery
        # of its own here would hand this handler's link errors up grouped.
        timer = trio.CancelScope()
        taken = [request]  # the timer answers those of them still unanswered
        if self._nursery is not None:
            self._nursery.start_soon(self._trying_if_slow, link, taken, timer)
        try:
            await self._take(link, (request, text), peer, taken)
        finally:
            timer.cancel()

    async def _trying_if_slow(
        self, link: PeerLink, requests: list[Request], timer: trio.CancelScope
    ) -> None:
        """A 100 Trying ("sent": our node has it) only if our answer is late.

        RFC 3261 8.2.6.1 asks for no provisional answer to a MESSAGE; we send
        one when storing it takes long (a busy disk), so the sender still sees
        it arrive. Never always: over tor a second answer right after the first
        waited ~40 ms in the relays (a raw onion stream on the loopback network,
        one answer per request: 13-20 ms a round trip; two: 60 ms).
        """
        with timer:
            await trio.sleep(TRYING_AFTER)
            late = [r for r in requests if link.endpoint.unanswered(r)]
            try:
                for request in late:
                    await link.respond(request, 100, flush=False)
                await link.flush()
            except (AnonsipError, trio.BrokenResourceError) as exc:
                log.info("could not say 100 Trying: %s", exc)

    async def _take(
        self, link: PeerLink, first: tuple[Request, str], peer: str, taken: list[Request]
    ) -> None:
        """Judge, store and answer a MESSAGE, and those of a contact right behind it.

        ``taken`` gets every request this takes from the link's queue.
        """
        request, text = first
        contact, blocked = await self._ctx.db(self._standing, peer)
        if contact is None or contact.state is ContactState.BLOCKED:
            # A stranger's work is judged before anything else, so the answer to too
            # little says nothing of whether we blocked it.
            verdict = self._check_work(request, peer)
            self._note_effort()
            if verdict is Verdict.REJECT_LOW_EFFORT:
                effort = (EFFORT_HEADER, str(self._gate.effort()))
                await link.respond(request, *BUSY, headers=(effort,))
                return
            if verdict is not Verdict.ADMIT:
                await link.respond(request, *REFUSED)
                return
        if blocked or (contact is not None and contact.state is ContactState.BLOCKED):
            await link.respond(request, *REFUSED)
            return
        now = self._ctx.clock()
        if contact is None:
            await self._contact_request(link, request, peer, text, now)
            return
        # A contact's burst: what waits behind this message is stored with it, in one
        # commit, and answered in one write (one at a time, a receiver's disk syncs
        # and thread trips bounded a session at ~180 messages/s).
        burst = [first]
        for more in link.take_in_order(_plain_message, BATCH - 1):
            taken.append(more)
            try:
                burst.append((more, message_text(more)))
            except SipParseError as exc:
                await link.respond(more, exc.status_code or 400, flush=False)
        await self._from_contact(link, burst, peer, now, contact.state)

    def _standing(self, peer: str) -> tuple[Contact | None, bool]:
        """The peer's contact entry and whether it is blocked: one trip to the store."""
        return self._store.contact(peer), self._store.is_blocked(peer)

    async def _receipt(self, link: PeerLink, request: Request, peer: str) -> None:
        """The peer's node has our message (it came from its mailbox): delivered."""
        try:
            message_id = parse_imdn(request.body)
        except SipParseError as exc:
            await link.respond(request, exc.status_code or 400)
            return
        message = self._store.outgoing(message_id)
        # Only its addressee may confirm a message.
        if (
            message is not None
            and message.peer == peer
            and await self._ctx.db(self._store.mark_delivered, message_id)
        ):
            self._publish_state(message_id)
        await link.respond(request, 200)

    async def _from_contact(
        self,
        link: PeerLink,
        burst: list[tuple[Request, str]],
        peer: str,
        now: float,
        state: ContactState,
    ) -> None:
        outcomes = await self._ctx.db(
            self._store.record_incoming_many,
            peer,
            [(request.call_id, text) for request, text in burst],
            now,
        )
        if state is ContactState.REQUESTED and any(isinstance(o, bool) for o in outcomes):
            # We asked them; a message back means they accepted.
            self._accepted_by(peer)
        box = self._box_headers()
        fresh: list[tuple[Request, str]] = []
        for (request, text), outcome in zip(burst, outcomes, strict=True):
            if isinstance(outcome, bool):
                await self._learn_box(peer, request)
                await link.respond(request, 200, headers=box, flush=False)
                if outcome:
                    fresh.append((request, text))
            elif isinstance(outcome, StoreFullError):
                self._warn_full()
                await link.respond(request, *FULL, headers=(FULL_RETRY_AFTER,), flush=False)
            elif isinstance(outcome, StoreLimitError):
                # The parser takes more than we keep: never retried.
                await link.respond(request, *TOO_LARGE, flush=False)
            else:
                await link.respond(request, 500, flush=False)
        await link.flush()
        for request, text in fresh:
            for listener in self._on_received:
                listener(peer, text)
            self._ctx.publish(
                "message",
                MessageView(
                    peer=peer,
                    message_id=request.call_id,
                    direction=MessageDirection.IN,
                    text=text,
                    time=now,
                    state=ViewMessageState.RECEIVED,
                ),
            )
            await trio.sleep(0)  # the subscribers' writers keep up with a burst's events

    async def _contact_request(
        self, link: PeerLink, request: Request, peer: str, text: str, now: float
    ) -> None:
        requests = await self._ctx.db(self._store.requests)
        if any(r.address == peer for r in requests):
            # One request per stranger; later messages wait at the sender.
            await link.respond(request, 480, "Temporarily Unavailable")
            return
        verdict = self._gate.admit(peer)  # its work was judged on arrival
        self._note_effort()
        if verdict is not Verdict.ADMIT:
            log.info("turned a contact request away for now: %s", verdict.value)
            await link.respond(request, *BUSY)
            return
        try:
            new = await self._ctx.db(self._record_request, peer, text, now, request.call_id)
        except StoreLimitError:
            await link.respond(request, *TOO_LARGE)  # a request is short; never retried
            return
        except StoreFullError:
            await self._refuse_full(link, request)
            return
        await link.respond(request, 202)
        if new:
            self._ctx.publish("request", request_view(peer, text, now))

    async def _refuse_full(self, link: PeerLink, request: Request) -> None:
        """Our disk is full: say so at once (the sender keeps the message and tries
        again later) rather than leave the request unanswered, which ends the session."""
        self._warn_full()
        await link.respond(request, *FULL, headers=(FULL_RETRY_AFTER,))

    def _warn_full(self) -> None:
        now = self._ctx.clock()
        if now - self._full_warned >= 60:  # once a minute, not once a message
            self._full_warned = now
            log.warning("the message store is full: messages are turned away; free disk space")

    def _record_request(self, peer: str, text: str, now: float, message_id: str) -> bool:
        return self._store.record_request(peer, text, now, message_id=message_id)

    def _note_effort(self) -> None:
        """The gate's effort moves at its windows' ends, seen as strangers arrive: when
        it changed, tell the node (its registrar re-publishes a rise)."""
        effort = self._gate.effort()
        if effort != self._told_effort:
            self._told_effort = effort
            self._ctx.effort_changed()

    def _check_work(self, request: Request, peer: str) -> Verdict:
        value = request.get(PROOF_HEADER)
        if value is None:
            return Verdict.REJECT_BAD_POW
        bucket_text, _, nonce_hex = value.partition(";")
        try:
            bucket = int(bucket_text)
            nonce = bytes.fromhex(nonce_hex)
        except ValueError:
            return Verdict.REJECT_BAD_POW
        return self._gate.check_work(sender=peer, bucket=bucket, nonce=nonce)


def _window(link: PeerLink) -> int:
    """How many of our MESSAGEs may be unanswered at once on ``link``."""
    return max(1, min(BATCH, link.endpoint.max_transactions - SPARE_TRANSACTIONS))


def _plain_message(request: Request) -> bool:
    """A MESSAGE ``on_sip`` would take as a contact's text (not a receipt)."""
    if request.method != "MESSAGE" or not 0 < len(request.call_id) <= MAX_MESSAGE_ID:
        return False
    ctype = request.content_type
    return ctype is None or ctype.essence != IMDN_CONTENT_TYPE


def _remember(table: OrderedDict[str, int], peer: str, effort: int) -> None:
    """``peer``'s effort in a bounded table: the least recently told go first."""
    table[peer] = effort
    table.move_to_end(peer)
    while len(table) > MAX_REMEMBERED_EFFORTS:
        table.popitem(last=False)
