"""Instant messages that are never lost (RFC 3428 MESSAGE over our links).

Sending: ``send`` puts the message in the store's outbox (committed before
it returns). A delivery task per peer sends that peer's due messages one at
a time, in order, as MESSAGE requests whose Call-ID is the message id; a
final 2xx is the delivery receipt. A retry after a crash or a broken link
reuses the id, and the receiver stores each (peer, id) once, so a message
is shown once however often it was sent.

Receiving: a MESSAGE from an accepted contact is stored and answered 200.
From a stranger it is a contact request: it must carry a proof of work
(``Anonsip-Proof``), passes a rate-limited gate, and is answered 202
(accepted for the user to decide); later messages from the same stranger
wait at the sender (480) until the user accepts. Blocked senders get 403.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from typing import Any

import trio

from anonsip._errors import AnonsipError, LocalError
from anonsip.admission import GateLimits, RequestGate, Verdict, prove
from anonsip.identity import Address, Identity
from anonsip.node._link import PeerLink
from anonsip.node._links import LinkTable
from anonsip.sip import Request, RequestReceived, SipParseError, message_text
from anonsip.store import ContactState, Message, MessageStore

log = logging.getLogger(__name__)

PROOF_HEADER = "Anonsip-Proof"
TEXT_PLAIN = "text/plain;charset=utf-8"

PublishEvent = Callable[[str, dict[str, Any]], None]


def message_event(message: Message) -> dict[str, Any]:
    return {
        "peer": message.peer,
        "message_id": message.message_id,
        "direction": message.direction.value,
        "text": message.text,
        "time": message.time,
        "state": message.state.value,
    }


class Messenger:
    """The IM service of one node."""

    def __init__(
        self,
        identity: Identity,
        store: MessageStore,
        links: LinkTable,
        *,
        clock: Callable[[], float],
        publish: PublishEvent,
        pow_difficulty: int,
        request_timeout: float = 60.0,
    ) -> None:
        self._identity = identity
        self._address = identity.address.text
        self._store = store
        self._links = links
        self._clock = clock
        self._publish = publish
        self._pow_difficulty = pow_difficulty
        self._request_timeout = request_timeout
        self._gate = RequestGate(self._address, clock, GateLimits(difficulty_bits=pow_difficulty))
        self._wake = trio.Event()
        self._active: set[str] = set()
        self._nursery: trio.Nursery | None = None
        # Called when a peer we asked turns out to have accepted us.
        self.on_accepted: Callable[[], None] = lambda: None
        # Called with (peer address, text) for each new incoming message.
        self.listeners: list[Callable[[str, str], None]] = []

    # -- sending -------------------------------------------------------------

    async def send(self, peer: str, text: str) -> Message:
        """Queue ``text`` for ``peer`` (an address); durable when this returns."""
        message = await trio.to_thread.run_sync(self._store.enqueue, peer, text, self._clock())
        self._publish("message", message_event(message))
        self._wake.set()
        return message

    def kick(self) -> None:
        """Look at the outbox now (a contact was accepted, a message queued)."""
        self._wake.set()

    def peer_online(self, peer_key: bytes) -> None:
        """A link to the peer came up: send what waits for it without waiting
        out the back-off."""
        peer = Address(peer_key).text
        if self._nursery is None or peer in self._active:
            return
        if any(item.peer == peer for item in self._store.due(math.inf)):
            self._active.add(peer)
            self._nursery.start_soon(self._deliver_to, peer, True)

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            task_status.started()
            while True:
                self._wake = trio.Event()
                now = self._clock()
                for item in self._store.due(now):
                    if item.peer not in self._active:
                        self._active.add(item.peer)
                        nursery.start_soon(self._deliver_to, item.peer)
                next_due = self._store.next_due()
                delay = math.inf if next_due is None else max(0.5, next_due - now)
                with trio.move_on_after(delay):
                    await self._wake.wait()

    async def _deliver_to(self, peer: str, now_regardless: bool = False) -> None:
        try:
            while True:
                horizon = math.inf if now_regardless else self._clock()
                items = [i for i in self._store.due(horizon) if i.peer == peer]
                if not items:
                    return
                item = items[0]
                if not await self._deliver_one(peer, item.message_id, item.text):
                    return
        finally:
            self._active.discard(peer)
            self._wake.set()

    async def _deliver_one(self, peer: str, message_id: str, text: str) -> bool:
        """One attempt; True if the outbox may go on with the next message."""
        peer_key = Address.parse(peer).public_key
        contact = self._store.contact(peer)
        await trio.to_thread.run_sync(self._store.mark_sent, message_id, self._clock())
        self._publish_state(message_id)
        try:
            with trio.fail_after(self._request_timeout):
                headers: list[tuple[str, str]] = [("Content-Type", TEXT_PLAIN)]
                needs_proof = contact is None or contact.state is not ContactState.ACCEPTED
                link, proof = await self._dial(peer, peer_key, needs_proof=needs_proof)
                if proof is not None:
                    headers.append((PROOF_HEADER, proof))
                request = link.endpoint.create_request(
                    "MESSAGE", headers=tuple(headers), body=text.encode("utf-8")
                ).with_replaced("Call-ID", message_id)
                response = await link.request(request)
        except (AnonsipError, trio.TooSlowError) as exc:
            log.info("message not delivered yet (%s); it stays in the outbox", exc)
            return False
        code = response.status_code
        if 200 <= code < 300:
            await trio.to_thread.run_sync(self._store.mark_delivered, message_id)
            if code == 200 and contact is not None and contact.state is ContactState.REQUESTED:
                self._store.set_state(peer, ContactState.ACCEPTED)
                self._publish("contact", {"address": peer, "state": "accepted"})
                self.on_accepted()
            self._publish_state(message_id)
            return True
        if code in (403, 603, 404, 415, 413):
            log.info("peer refused a message with %d; giving up on it", code)
            await trio.to_thread.run_sync(self._store.mark_failed, message_id)
            self._publish_state(message_id)
            return True
        log.info("peer answered %d; retrying later", code)
        return False

    async def _dial(
        self, peer: str, peer_key: bytes, *, needs_proof: bool
    ) -> tuple[PeerLink, str | None]:
        """A link to the peer, and a proof of work solved while Tor dials if needed."""
        if not needs_proof:
            return await self._links.link_to(peer_key), None
        proof: list[str] = []
        failure: list[AnonsipError | trio.TooSlowError] = []

        async def solve() -> None:
            proof.append(await trio.to_thread.run_sync(self._prove, peer))

        async with trio.open_nursery() as nursery:
            nursery.start_soon(solve)
            try:
                link = await self._links.link_to(peer_key)
            except (AnonsipError, trio.TooSlowError) as exc:
                # Raised here, not through the nursery (which would wrap it).
                failure.append(exc)
                nursery.cancel_scope.cancel()
        if failure:
            raise failure[0]
        return link, proof[0]

    def _prove(self, peer: str) -> str:
        proof = prove(peer, self._address, self._clock(), difficulty_bits=self._pow_difficulty)
        return f"{proof.bucket};{proof.nonce.hex()}"

    def _publish_state(self, message_id: str) -> None:
        message = self._store.outgoing(message_id)
        if message is not None:
            self._publish("message", message_event(message))

    # -- receiving -----------------------------------------------------------

    async def on_message(self, link: PeerLink, event: RequestReceived) -> None:
        request = event.request
        peer = Address(link.peer_public_key).text
        try:
            text = message_text(request)
        except SipParseError as exc:
            await link.respond(request, exc.status_code or 400)
            return
        contact = self._store.contact(peer)
        if self._store.is_blocked(peer) or (
            contact is not None and contact.state is ContactState.BLOCKED
        ):
            await link.respond(request, 403)
            return
        now = self._clock()
        if contact is not None:
            fresh = await trio.to_thread.run_sync(
                self._store.record_incoming, peer, request.call_id, text, now
            )
            if contact.state is ContactState.REQUESTED:
                self._store.set_state(peer, ContactState.ACCEPTED)
                self._publish("contact", {"address": peer, "state": "accepted"})
                self.kick()
            await link.respond(request, 200)
            if fresh:
                for listener in self.listeners:
                    listener(peer, text)
                self._publish(
                    "message",
                    {
                        "peer": peer,
                        "message_id": request.call_id,
                        "direction": "in",
                        "text": text,
                        "time": now,
                        "state": "received",
                    },
                )
            return
        await self._contact_request(link, request, peer, text, now)

    async def _contact_request(
        self, link: PeerLink, request: Request, peer: str, text: str, now: float
    ) -> None:
        already = any(r.address == peer for r in self._store.requests())
        if already:
            # One request per stranger; later messages wait at the sender.
            await link.respond(request, 480, "Awaiting acceptance")
            return
        verdict = self._check_proof(request, peer)
        if verdict is not Verdict.ADMIT:
            log.info("refused a contact request: %s", verdict.value)
            code = 403 if verdict is Verdict.REJECT_BAD_POW else 486
            await link.respond(request, code, verdict.value)
            return
        new = self._store.record_request(peer, text, now)
        await link.respond(request, 202)
        if new:
            self._publish("request", {"address": peer, "text": text, "time": now})

    def _check_proof(self, request: Request, peer: str) -> Verdict:
        value = request.get(PROOF_HEADER)
        if value is None:
            return Verdict.REJECT_BAD_POW
        bucket_text, _, nonce_hex = value.partition(";")
        try:
            bucket = int(bucket_text)
            nonce = bytes.fromhex(nonce_hex)
        except ValueError:
            return Verdict.REJECT_BAD_POW
        return self._gate.check(
            sender=peer, bucket=bucket, nonce=nonce, pending=self._store.pending_requests()
        )

    # -- user decisions ------------------------------------------------------

    def accept(self, peer: str, nick: str) -> None:
        requests = {r.address: r for r in self._store.requests()}
        request = requests.get(peer)
        if request is None:
            raise LocalError("there is no contact request from that address")
        self._store.accept_request(peer, nick, self._clock())
        self._store.record_incoming(
            peer, f"request-{int(request.time * 1000)}", request.text, request.time
        )
        self._publish("contact", {"address": peer, "state": "accepted", "nick": nick})
        self.kick()
