"""Mail for people who are never online at the same time: sealed mailboxes in the DHT.

Deposit: when a message cannot be delivered directly within a short time
(at once when the recipient has no registration), the sender's node also
seals it to the recipient (``anonsip.mailbox``: only the recipient opens
it and learns who wrote it), pads it, proves work for it and deposits it in
the recipient's mailbox of the current period through an anonymous DHT
request. The message stays in the outbox as ``in_mailbox``: direct
delivery goes on, and the recipient shows it once whichever way it came
first (the message id). A first message to someone who has not accepted
us travels as a contact request, at a higher proof of work.

Collect: right after the node joins the DHT and every few minutes, it
fetches its mailboxes of the last ``MAX_TTL`` (one per period), opens what
it can, stores each message once in order per conversation (a stranger's
request only with the higher work), deletes what it collected with a
deletion only the mailbox's owner can sign, and sends each sender a
receipt: directly if the sender's node answers, else into the sender's
mailbox. A receipt that reaches the sender (either way) makes the message
``delivered``.

Every DHT operation here is anonymous (``DhtClient``): never under the
node's long-term DHT identity.
"""

from __future__ import annotations

import logging
import math
import secrets
from collections.abc import Sequence
from typing import NamedTuple, Protocol

import trio

from anonsip._errors import AnonsipError
from anonsip.control import MessageDirection, MessageView
from anonsip.control import MessageState as ViewMessageState
from anonsip.dht import DepositReport
from anonsip.identity import TOR_TIME_PERIODS, Address, TimePeriods
from anonsip.mailbox import (
    BOX_SECRET,
    DEPOSIT_POW_BITS,
    MAX_DELETE,
    MAX_TTL,
    REQUEST_POW_BITS,
    Deletion,
    Deposit,
    Letter,
    LetterError,
    LetterKind,
    dht_key,
    mailbox_key,
    mailbox_keypair,
    open_letter,
    seal_letter,
)
from anonsip.node._contacts import request_view
from anonsip.node._context import NodeContext
from anonsip.node._messaging import message_view
from anonsip.node._service import NodeService
from anonsip.store import ContactState, MessageState, StoreLimitError

__all__ = ["COLLECT_INTERVAL_S", "DirectReceipts", "MailboxDht", "MailboxService"]

log = logging.getLogger(__name__)

COLLECT_INTERVAL_S = 300.0
DEPOSIT_TTL = MAX_TTL
OPERATION_TIMEOUT_S = 90.0
MAX_COLLECTED = 512  # letters opened per mailbox and collection
BOX_SETTING = "mailbox.secret"
# The secret before the last rotation and when it rotated ("<hex> <unix time>"): its
# mailbox is still collected for BOX_GRACE_S, for contacts who have not heard of the
# new one yet (they learn it with our next message or answer, or a letter's reply box).
PREVIOUS_BOX_SETTING = "mailbox.secret.previous"
BOX_GRACE_S = 14 * 86400.0
PARALLEL_COLLECTS = 4  # mailboxes fetched at once
MAX_DEPOSIT_BITS = 24  # the most work we do for one letter to a crowded mailbox (seconds)


class Box(NamedTuple):
    """One of our mailboxes: its period, and our secret for the contacts' one (else b"")."""

    period: int
    secret: bytes


class MailboxDht(Protocol):
    """What the service needs of the DHT: the anonymous client's mailbox operations."""

    async def deposit_report(self, deposit: Deposit) -> DepositReport: ...

    async def collect(self, key: bytes) -> list[Deposit]: ...

    async def delete(self, deletion: Deletion) -> int: ...


class DirectReceipts(Protocol):
    """Receipts over a session with the peer's node (the messaging service); False if
    its node did not answer."""

    async def __call__(self, peer: str, message_ids: Sequence[str]) -> bool: ...


class MailboxService(NodeService):
    name = "mailbox"

    def __init__(
        self,
        context: NodeContext,
        *,
        direct_receipts: DirectReceipts | None = None,
        periods: TimePeriods = TOR_TIME_PERIODS,
        deposit_bits: int = DEPOSIT_POW_BITS,
        request_bits: int = REQUEST_POW_BITS,
        collect_interval: float = COLLECT_INTERVAL_S,
    ) -> None:
        self._ctx = context
        self._store = context.store
        self._periods = periods
        self._deposit_bits = deposit_bits
        self._request_bits = request_bits
        self._collect_interval = collect_interval
        self._direct_receipts = direct_receipts
        self._dht: MailboxDht | None = None
        self._collect_now = trio.Event()
        self._collecting = trio.Lock()  # one collection at a time
        self._secret: bytes | None = None
        self._trusted: frozenset[str] | None = None  # who knows our secret (see below)
        self.last_collected = 0.0

    def attach(self, dht: MailboxDht | None) -> None:
        """The node's anonymous DHT client (None while the node is offline)."""
        self._dht = dht

    def secret(self) -> bytes:
        """Our contacts' mailbox secret (made once, kept sealed in the store): told only to
        contacts, so strangers, who can reach only our open mailbox, cannot crowd it."""
        if self._secret is None:
            kept = self._store.setting(BOX_SETTING)
            if kept is None or len(bytes.fromhex(kept)) != BOX_SECRET:
                kept = secrets.token_bytes(BOX_SECRET).hex()
                self._store.set_setting(BOX_SETTING, kept)
            self._secret = bytes.fromhex(kept)
        return self._secret

    def _previous_secret(self) -> bytes | None:
        """The secret before the last rotation, while its grace lasts."""
        kept = self._store.setting(PREVIOUS_BOX_SETTING)
        if kept is None:
            return None
        value, _, rotated = kept.partition(" ")
        try:
            secret, when = bytes.fromhex(value), float(rotated)
        except ValueError:
            return None
        if len(secret) != BOX_SECRET or self._ctx.clock() - when > BOX_GRACE_S:
            return None
        return secret

    def contacts_changed(self) -> None:
        """Someone we told our secret to is no longer a contact (removed or blocked):
        the contacts' mailbox moves, so they cannot crowd it with deposits any more."""
        trusted = frozenset(
            c.address for c in self._store.contacts() if c.state is not ContactState.BLOCKED
        )
        before, self._trusted = self._trusted, trusted
        if before is not None and before - trusted:
            self.rotate_secret()

    def rotate_secret(self) -> None:
        """A new contacts' mailbox secret; the old one's mailbox is collected for a while."""
        old = self.secret()
        new = secrets.token_bytes(BOX_SECRET)
        self._store.set_setting(PREVIOUS_BOX_SETTING, f"{old.hex()} {self._ctx.clock():.0f}")
        self._store.set_setting(BOX_SETTING, new.hex())
        self._secret = new
        log.info("the contacts' mailbox moved: a contact was removed or blocked")

    def waiting(self) -> int:
        """Our messages sealed in others' mailboxes, not confirmed yet."""
        return self._store.count_outgoing(MessageState.IN_MAILBOX)

    # -- depositing ---------------------------------------------------------------------

    async def deposit_message(
        self, peer: str, message_id: str, text: str, time: float, *, request: bool
    ) -> bool:
        """Seal ``text`` to ``peer`` into its mailbox; True once at least one node holds it."""
        kind = LetterKind.REQUEST if request else LetterKind.MESSAGE
        letter = Letter(
            kind=kind,
            message_id=message_id,
            time_ms=int(time * 1000),
            text=text,
            reply_box=self._reply_box(peer),
        )
        stored = await self._deposit(peer, letter, self._request_bits if request else None)
        if stored and self._store.set_outgoing_state(message_id, MessageState.IN_MAILBOX):
            self._publish_outgoing(message_id)
        return stored

    def _publish_outgoing(self, message_id: str) -> None:
        message = self._store.outgoing(message_id)
        if message is not None:
            self._ctx.publish("message", message_view(message))

    def _reply_box(self, peer: str) -> bytes:
        """Our secret, in letters to those we count as contacts (and no one else)."""
        contact = self._store.contact(peer)
        if contact is None or contact.state is ContactState.BLOCKED:
            return b""
        return self.secret()

    async def _deposit(self, peer: str, letter: Letter, bits: int | None = None) -> bool:
        dht = self._dht
        if dht is None:
            return False
        recipient = Address.parse(peer).public_key
        now = self._ctx.clock()
        period = self._periods.number_at(now)
        sealed = seal_letter(self._ctx.identity, recipient, letter)
        # A contact who told us its secret gets our mail where strangers cannot reach;
        # anyone else in its open mailbox.
        box = await self._ctx.db(self._store.contact_mailbox, peer) or b""
        mailbox = mailbox_key(recipient, period, self._periods, secret=box)
        expiry = int(now) + DEPOSIT_TTL

        async def attempt(difficulty: int) -> tuple[int, DepositReport]:
            """Prove ``difficulty`` bits, deposit; the work proved and what nodes said."""
            with trio.fail_after(OPERATION_TIMEOUT_S):
                deposit = await self._ctx.compute(
                    lambda: Deposit.make(
                        mailbox=mailbox, expiry=expiry, sealed=sealed, difficulty=difficulty
                    )
                )
                return deposit.work, await dht.deposit_report(deposit)

        try:
            work, report = await attempt(bits if bits is not None else self._deposit_bits)
            if not report.stored and work < report.floor <= MAX_DEPOSIT_BITS:
                # A crowded mailbox: its storing nodes take only more work than the
                # cheapest they hold (the effort rises under a flood, as in Tor's
                # proposal 327). Once more, with what they ask.
                work, report = await attempt(report.floor)
        except (AnonsipError, trio.TooSlowError) as exc:
            log.info("could not deposit in a mailbox: %s", exc)
            return False
        if not report.stored and report.floor > MAX_DEPOSIT_BITS:
            log.info("a mailbox asks more work than we do for a letter (%d bits)", report.floor)
        return report.stored > 0

    async def send_receipt(self, peer: str, message_ids: Sequence[str]) -> bool:
        """Tell ``peer`` we have these messages: directly if its node answers, else by
        mail. False if neither worked (the letters then stay and are collected again)."""
        if self._direct_receipts is not None and await self._direct_receipts(peer, message_ids):
            return True
        sent = True
        for message_id in message_ids:
            letter = Letter(
                kind=LetterKind.RECEIPT,
                message_id=message_id,
                time_ms=int(self._ctx.clock() * 1000),
                reply_box=self._reply_box(peer),
            )
            sent = await self._deposit(peer, letter) and sent
        return sent

    # -- collecting ---------------------------------------------------------------------

    def link_up(self, peer_key: bytes) -> None:
        """Someone's node answers: maybe a good moment; collection runs on its own clock."""

    def collect_soon(self) -> None:
        self._collect_now.set()

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        if self._trusted is None:  # who knows our secret as we start
            self.contacts_changed()
        task_status.started()
        while True:
            try:
                await self.collect()
            except AnonsipError as exc:
                log.info("collecting the mailboxes failed: %s", exc)
            self._collect_now = trio.Event()
            with trio.move_on_after(self._collect_interval):
                await self._collect_now.wait()

    async def collect(self) -> int:
        """Fetch, open, store and delete what waits in our mailboxes; how many letters."""
        async with self._collecting:
            return await self._collect()

    async def _collect(self) -> int:
        dht = self._dht
        if dht is None:
            return 0
        now = self._ctx.clock()
        current = self._periods.number_at(now)
        span = math.ceil(MAX_TTL / (self._periods.length_minutes * 60)) + 1
        letters: list[tuple[Letter, Deposit, Box]] = []
        limiter = trio.CapacityLimiter(PARALLEL_COLLECTS)

        async def collect_box(box: Box) -> None:
            async with limiter:
                letters.extend(await self._collect_box(dht, box))

        # Outside the nursery: a store error here must reach run() as itself.
        # The open mailbox, the contacts' one and, after a rotation, the contacts' old one.
        boxes = [b"", self.secret(), *filter(None, [self._previous_secret()])]
        async with trio.open_nursery() as nursery:
            for period in range(current, current - span, -1):
                for secret in boxes:
                    nursery.start_soon(collect_box, Box(period, secret))
        letters.sort(key=lambda item: item[0].time_ms)  # in order per conversation
        # A letter's deposit is deleted only once its receipt went out, directly or by
        # mail: a node stopped in between collects it again (shown once: the message id)
        # and sends the receipt then.
        settled: list[tuple[Box, bytes]] = []
        waiting: dict[str, list[tuple[Letter, Deposit, Box]]] = {}
        for letter, deposit, box in letters:
            peer = await self._take(letter, deposit)
            if peer is None:
                settled.append((box, deposit.deposit_id))
            else:
                waiting.setdefault(peer, []).append((letter, deposit, box))
        for peer, taken in waiting.items():
            if await self.send_receipt(peer, [letter.message_id for letter, _, _ in taken]):
                settled.extend((box, deposit.deposit_id) for _, deposit, box in taken)
        by_box: dict[Box, list[bytes]] = {}
        for box, deposit_id in settled:
            by_box.setdefault(box, []).append(deposit_id)
        for box, deposit_ids in by_box.items():
            await self._delete(box, deposit_ids)
        self.last_collected = now
        self._ctx.status_changed()
        return len(letters)

    async def _collect_box(self, dht: MailboxDht, box: Box) -> list[tuple[Letter, Deposit, Box]]:
        mailbox = mailbox_key(
            self._ctx.identity.public_key, box.period, self._periods, secret=box.secret
        )
        try:
            with trio.fail_after(OPERATION_TIMEOUT_S):
                deposits = await dht.collect(dht_key(mailbox))
        except (AnonsipError, trio.TooSlowError) as exc:
            log.info("could not collect a mailbox: %s", exc)
            return []
        letters = []
        for deposit in deposits[:MAX_COLLECTED]:
            if deposit.mailbox != mailbox:
                continue
            try:
                letter = open_letter(self._ctx.identity, deposit.sealed)
            except LetterError:
                continue  # not for us, or tampered: it stays, and expires
            letters.append((letter, deposit, box))
        return letters

    async def _take(self, letter: Letter, deposit: Deposit) -> str | None:
        """Store one opened letter; the peer owed a receipt for it, None if none is."""
        peer = Address(letter.sender).text
        store = self._store
        if store.is_blocked(peer):
            return None
        contact = store.contact(peer)
        time = letter.time_ms / 1000
        if letter.kind is LetterKind.RECEIPT:
            message = store.outgoing(letter.message_id)
            # Only the message's recipient can confirm it (the letter's verified author).
            mine = message is not None and message.peer == peer
            if mine and store.mark_delivered(letter.message_id):
                self._publish_outgoing(letter.message_id)
            return None
        if contact is None or contact.state is ContactState.BLOCKED:
            if deposit.work < self._request_bits:
                return None  # a stranger's letter without a request's work: dropped
            try:
                new = await self._ctx.db(
                    lambda: store.record_request(
                        peer, letter.text, time, message_id=letter.message_id
                    )
                )
            except StoreLimitError:
                return None  # longer than a request may be: dropped like any junk
            if new:
                self._ctx.publish("request", request_view(peer, letter.text, time))
            return None  # no receipt: that we read requests is not the stranger's to know
        if letter.reply_box and store.contact_mailbox(peer) != letter.reply_box:
            store.set_contact_mailbox(peer, letter.reply_box)
        fresh = await self._ctx.db(
            store.record_incoming, peer, letter.message_id, letter.text, time
        )
        if contact.state is ContactState.REQUESTED:
            store.set_state(peer, ContactState.ACCEPTED)
            self._ctx.contacts_changed()
        if fresh:
            self._ctx.publish(
                "message",
                MessageView(
                    peer=peer,
                    message_id=letter.message_id,
                    direction=MessageDirection.IN,
                    text=letter.text,
                    time=time,
                    state=ViewMessageState.RECEIVED,
                ),
            )
        return peer

    async def _delete(self, box: Box, deposit_ids: list[bytes]) -> None:
        dht = self._dht
        if dht is None:
            return
        owner = mailbox_keypair(self._ctx.identity, box.period, self._periods, secret=box.secret)
        for start in range(0, len(deposit_ids), MAX_DELETE):
            deletion = Deletion.make(
                owner, int(self._ctx.clock()), tuple(deposit_ids[start : start + MAX_DELETE])
            )
            try:
                with trio.fail_after(OPERATION_TIMEOUT_S):
                    await dht.delete(deletion)
            except (AnonsipError, trio.TooSlowError) as exc:
                log.info("could not empty a mailbox: %s", exc)
