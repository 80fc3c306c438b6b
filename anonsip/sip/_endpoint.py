"""The SIP endpoint of one secure channel: transaction layer plus UA core (RFC 3261 8, 9, 12, 17).

One ``SipEndpoint`` serves one authenticated stream between two pseudonyms
(``local_aor`` and ``peer_aor``). It is sans-IO, like h11's ``Connection``:

* feed received bytes with ``receive_data``; read ``next_event()`` until it
  returns ``None``;
* send every frame from ``frames_to_send()`` (one SIP message per frame);
* call ``on_timer(now)`` whenever ``now >= next_deadline()``.

It matches responses to client transactions (RFC 3261 17.1.3: top Via
branch and CSeq method), requests to server transactions (17.2.3: branch,
with ACK matching its INVITE), answers CANCEL (9.2), ACKs 2xx to INVITE
itself (13.2.2.4) and answers by itself what the transaction user never
sees: malformed requests (400/413/416/505/513), unknown methods (501),
requests not from the authenticated peer (403) or not for us (404),
requests in a dialog it does not know (481), CSeq going backwards (500),
too many open transactions (503).

Randomness for branches, tags and Call-IDs comes from the ``rng`` it was
handed (``secrets.token_bytes`` in production); time only from ``now``.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable

from anonsip.sip._dialog import Dialog, DialogId, DialogState
from anonsip.sip._errors import SipParseError, SipUsageError
from anonsip.sip._events import (
    AckReceived,
    InviteCancelled,
    MessageRejected,
    RequestReceived,
    ResponseReceived,
    SipEvent,
    TransactionTimedOut,
    TransportFailed,
)
from anonsip.sip._headers import BRANCH_COOKIE, NameAddr, Uri, Via
from anonsip.sip._message import (
    Headers,
    HeaderSource,
    Request,
    Response,
    make_error_response,
    make_response,
)
from anonsip.sip._parser import MessageParser, ParserLimits
from anonsip.sip._transaction import Action, Deliver, Kind, Send, State, TimedOut, Transaction
from anonsip.sip._transaction import TransportFailed as _TransportFailedAction

DEFAULT_METHODS = frozenset(
    {"INVITE", "ACK", "BYE", "CANCEL", "OPTIONS", "MESSAGE", "SUBSCRIBE", "NOTIFY", "REFER"}
)
# Methods RFC 3261 and its extensions define: refusing one of these is a
# 405 (we know it, do not allow it); anything else is a 501 (8.2.1).
KNOWN_METHODS = DEFAULT_METHODS | frozenset({"REGISTER", "PRACK", "UPDATE", "INFO", "PUBLISH"})
DIALOG_CREATING = frozenset({"INVITE", "SUBSCRIBE", "REFER"})
VIA_HOST = "anonsip.invalid"

TxKey = tuple[str, str]  # (branch, method) with ACK and CANCEL keyed apart


class SipEndpoint:
    """Transactions and dialogs over one secure channel to one peer."""

    def __init__(
        self,
        *,
        local_aor: Uri,
        peer_aor: Uri,
        rng: Callable[[int], bytes],
        display_name: str | None = None,
        allowed_methods: Iterable[str] = DEFAULT_METHODS,
        t1: float = 0.5,
        via_host: str = VIA_HOST,
        transport: str = "TCP",
        max_transactions: int = 64,
        max_dialogs: int = 32,
        max_events: int = 256,
        limits: ParserLimits | None = None,
    ) -> None:
        self.local_aor = local_aor
        self.peer_aor = peer_aor
        self.display_name = display_name
        self.allowed_methods = frozenset(allowed_methods) | {"ACK", "CANCEL"}
        self.t1 = t1
        self.via_host = via_host
        self.transport = transport
        self.max_transactions = max_transactions
        self.max_dialogs = max_dialogs
        self.max_events = max_events
        self._rng = rng
        self._parser = MessageParser(limits)
        self._client: dict[TxKey, Transaction] = {}
        self._server: dict[TxKey, Transaction] = {}
        self._server_tags: dict[TxKey, str] = {}
        self._dialogs: dict[DialogId, Dialog] = {}
        self._events: deque[SipEvent] = deque()
        self._frames: list[bytes] = []
        self._now = 0.0

    # -- identifiers from the injected RNG -------------------------------

    def new_branch(self) -> str:
        return BRANCH_COOKIE + self._rng(8).hex()

    def new_tag(self) -> str:
        return self._rng(8).hex()

    def local_tag(self, request: Request) -> str:
        """The To tag our answers to ``request`` carry (chosen when it arrived)."""
        tag = self._server_tags.get(self._server_key(request))
        if tag is None:
            raise SipUsageError(f"no pending transaction for this {request.method}")
        return tag

    def new_call_id(self) -> str:
        # No "@host": a host part would only be something to leak.
        return self._rng(16).hex()

    def new_via(self) -> Via:
        return Via(
            transport=self.transport,
            host=self.via_host,
            params=(("branch", self.new_branch()),),
        )

    # -- the sans-IO surface ---------------------------------------------

    def receive_data(self, data: bytes) -> None:
        self._parser.receive_data(data)

    def frames_to_send(self) -> list[bytes]:
        """Serialised messages to send, one per secure-channel frame, oldest first."""
        frames, self._frames = self._frames, []
        return frames

    def next_event(self) -> SipEvent | None:
        """The next event, parsing more received bytes as needed.

        Raises ``SipParseError`` when the stream lost its framing (the error
        response, if any, is already in ``frames_to_send``): close the channel.
        """
        while not self._events:
            try:
                message = self._parser.next_message()
            except SipParseError as exc:
                self._refuse(exc)
                if exc.fatal:
                    raise
                continue
            if message is None:
                return None
            if isinstance(message, Request):
                self._on_request(message)
            else:
                self._on_response(message)
        return self._events.popleft()

    def next_deadline(self) -> float | None:
        deadlines = [
            d
            for t in (*self._client.values(), *self._server.values())
            if (d := t.deadline) is not None
        ]
        return min(deadlines, default=None)

    def on_timer(self, now: float) -> None:
        self._now = now
        for key, tx in list(self._client.items()):
            self._apply(tx, tx.on_timer(now))
            self._reap(self._client, key, tx)
        for key, tx in list(self._server.items()):
            self._apply(tx, tx.on_timer(now))
            self._reap(self._server, key, tx)

    def transport_closed(self) -> None:
        """The stream is gone: fail every pending client transaction (RFC 3261 17.1.4)."""
        for key, tx in list(self._client.items()):
            self._apply(tx, tx.transport_error(self._now))
            self._reap(self._client, key, tx)
        for key, tx in list(self._server.items()):
            tx.transport_error(self._now)
            self._reap(self._server, key, tx)

    def statistics(self) -> dict[str, int]:
        return {
            "client_transactions": len(self._client),
            "server_transactions": len(self._server),
            "dialogs": len(self._dialogs),
            "buffered_bytes": self._parser.buffered,
        }

    # -- building requests -----------------------------------------------

    def local_name_addr(self) -> NameAddr:
        return NameAddr(uri=self.local_aor, display_name=self.display_name)

    def create_request(
        self,
        method: str,
        *,
        headers: Headers = (),
        body: bytes = b"",
        max_forwards: int = 70,
    ) -> Request:
        """A request outside any dialog, to the peer (RFC 3261 8.1.1)."""
        base: list[tuple[str, str]] = [
            ("Via", str(self.new_via())),
            ("Max-Forwards", str(max_forwards)),
            ("From", str(self.local_name_addr().with_tag(self.new_tag()))),
            ("To", f"<{self.peer_aor}>"),
            ("Call-ID", self.new_call_id()),
            ("CSeq", f"1 {method}"),
        ]
        if method in DIALOG_CREATING:
            base.append(("Contact", f"<{self.local_aor}>"))
        return Request(method=method, uri=self.peer_aor, headers=(*base, *headers), body=body)

    def create_in_dialog(
        self, dialog: Dialog, method: str, *, headers: Headers = (), body: bytes = b""
    ) -> Request:
        """A request inside ``dialog`` (BYE, re-INVITE, NOTIFY, REFER...; RFC 3261 12.2.1.1)."""
        return dialog.create_request(method, via=self.new_via(), headers=headers, body=body)

    # -- sending ---------------------------------------------------------

    def send_request(self, request: Request, now: float) -> None:
        """Start a client transaction for ``request`` (not ACK: 2xx ACKs are automatic)."""
        self._now = now
        if request.method == "ACK":
            raise SipUsageError("ACK is sent by the endpoint itself")
        if len(self._client) >= self.max_transactions:
            raise SipUsageError("too many requests in flight; wait for some to finish")
        branch = request.top_via.branch
        if branch is None or not branch.startswith(BRANCH_COOKIE):
            raise SipUsageError("the top Via needs a z9hG4bK branch")
        kind = Kind.INVITE_CLIENT if request.method == "INVITE" else Kind.NON_INVITE_CLIENT
        key = (branch, request.method)
        if key in self._client:
            raise SipUsageError("a transaction with this branch is already in flight")
        tx = Transaction(kind, request, t1=self.t1)
        self._client[key] = tx
        self._apply(tx, tx.start(now))
        if request.method == "BYE":
            self._end_dialog_of(request, local=True)

    def cancel(self, invite: Request, now: float) -> Request | None:
        """CANCEL a pending INVITE (RFC 3261 9.1); ``None`` if it is already answered.

        If no provisional response has arrived yet the CANCEL waits for one,
        as 9.1 requires, and is sent then.
        """
        self._now = now
        key = (invite.top_via.branch or "", "INVITE")
        tx = self._client.get(key)
        if tx is None or tx.state not in (State.CALLING, State.PROCEEDING) or tx.cancel_requested:
            return None
        cancel = self._cancel_for(invite)
        tx.arm_cancel_timer(now)
        if tx.state is State.PROCEEDING:
            self.send_request(cancel, now)
        return cancel

    def respond(
        self,
        request: Request,
        status_code: int,
        reason: str | None = None,
        *,
        headers: Headers = (),
        body: bytes = b"",
        now: float | None = None,
    ) -> Response:
        """Answer a request from a ``RequestReceived`` (RFC 3261 8.2.6, 12.1.1)."""
        if now is not None:
            self._now = now
        key = self._server_key(request)
        tx = self._server.get(key)
        if tx is None or tx.request != request:
            raise SipUsageError(f"no pending transaction for this {request.method}")
        extra: list[tuple[str, str]] = list(headers)
        creating = request.method in DIALOG_CREATING and request.to.tag is None
        if creating and 101 <= status_code < 300 and len(self._dialogs) >= self.max_dialogs:
            raise SipUsageError("too many dialogs with this peer; end some first")
        if (
            request.method in DIALOG_CREATING
            and 101 <= status_code < 300
            and not any(k == "Contact" for k, _ in headers)
        ):
            extra.append(("Contact", f"<{self.local_aor}>"))
        if status_code in (405, 501):
            extra.append(("Allow", ", ".join(sorted(self.allowed_methods))))
        response = make_response(
            request,
            status_code,
            reason,
            to_tag=self._server_tags[key],
            headers=tuple(extra),
            body=body,
        )
        self._apply(tx, tx.send_response(response, self._now))
        if creating and 101 <= status_code < 300:
            self._dialog_for_uas(request, response)
        elif creating:
            dialog = self._dialogs.get(self._uas_dialog_id(request, self._server_tags[key]))
            if dialog is not None and status_code >= 300:
                dialog.on_response(response)
                self._forget_if_ended(dialog)
            elif dialog is not None:
                dialog.on_response(response)
        if request.method == "BYE" and 200 <= status_code < 300:
            self._end_dialog_of(request, local=False)
        self._reap(self._server, key, tx)
        return response

    def unanswered(self, request: Request) -> bool:
        """Whether ``request`` (from a ``RequestReceived``) still waits for our final
        response: a provisional one may still be sent."""
        tx = self._server.get(self._server_key(request))
        return (
            tx is not None
            and tx.request == request
            and tx.state in (State.TRYING, State.PROCEEDING)
        )

    def end_dialog(self, dialog: Dialog) -> None:
        """Forget a dialog (a subscription that ended, a call torn down)."""
        dialog.end()
        self._dialogs.pop(dialog.id, None)

    def dialog(self, dialog_id: DialogId) -> Dialog | None:
        return self._dialogs.get(dialog_id)

    def dialog_of_response(self, response: Response) -> Dialog | None:
        """The dialog a response we sent with ``respond`` created (the callee's / notifier's)."""
        return self._dialogs.get(
            DialogId(
                call_id=response.call_id,
                local_tag=response.to.tag or "",
                remote_tag=response.from_.tag or "",
            )
        )

    # -- incoming ----------------------------------------------------------

    def _refuse(self, exc: SipParseError) -> None:
        if exc.status_code is not None and exc.request is not None:
            response = make_error_response(exc.request, exc.status_code, to_tag=self.new_tag())
            self._frames.append(response.to_bytes())
        if not exc.fatal:  # a fatal error is reported by raising it instead
            self._emit(MessageRejected(reason=str(exc), status_code=exc.status_code))

    def _reject(self, request: HeaderSource, code: int, why: str) -> None:
        response = make_error_response(request, code, to_tag=self.new_tag())
        if code in (405, 501):
            response = response.with_header("Allow", ", ".join(sorted(self.allowed_methods)))
        self._frames.append(response.to_bytes())
        self._emit(MessageRejected(reason=why, status_code=code))

    def _on_request(self, request: Request) -> None:
        try:
            self._dispatch_request(request)
        except SipParseError as exc:
            # A header the parser does not check (Contact, Event...) is bad.
            exc.request = exc.request or request
            if request.method == "ACK":
                exc.status_code = None  # ACK is never answered (RFC 3261 17.2.3)
            self._refuse(exc)

    def _dispatch_request(self, request: Request) -> None:
        branch = request.top_via.branch
        if branch is None or not branch.startswith(BRANCH_COOKIE):
            # Every anonsip peer is an RFC 3261 UA; RFC 2543 matching is not kept.
            self._reject(request, 400, "request without a z9hG4bK branch")
            return
        key = self._server_key(request)
        method = request.method
        existing = self._server.get(key)
        if existing is not None:
            self._apply(existing, existing.receive_request(request, self._now))
            self._reap(self._server, key, existing)
            return
        if method == "ACK":
            self._on_ack(request)
            return
        if method not in self.allowed_methods:
            code = 405 if method in KNOWN_METHODS else 501
            self._reject(request, code, f"method {method} not allowed")
            return
        if request.from_.uri.aor() != self.peer_aor.aor():
            self._reject(request, 403, "From is not the authenticated peer")
            return
        local = self.local_aor.aor()
        if request.uri.aor() != local or request.to.uri.aor() != local:
            self._reject(request, 404, "request not addressed to this identity")
            return
        if method == "CANCEL":
            self._on_cancel(request, key)
            return
        if len(self._server) >= self.max_transactions:
            self._reject(request, 503, "too many open server transactions")
            return
        dialog: Dialog | None = None
        to_tag = request.to.tag
        if to_tag is not None:
            dialog = self._dialogs.get(
                DialogId(
                    call_id=request.call_id,
                    local_tag=to_tag,
                    remote_tag=request.from_.tag or "",
                )
            )
            if dialog is None:
                self._reject(request, 481, "no such dialog")
                return
            refusal = dialog.check_request(request)
            if refusal is not None:
                self._reject(request, refusal, "CSeq went backwards in the dialog")
                return
        kind = Kind.INVITE_SERVER if method == "INVITE" else Kind.NON_INVITE_SERVER
        tx = Transaction(kind, request, t1=self.t1)
        self._server[key] = tx
        self._server_tags[key] = to_tag or self.new_tag()
        tx.start(self._now)
        self._emit(RequestReceived(request=request, dialog=dialog))

    def _on_ack(self, ack: Request) -> None:
        """An ACK no server transaction took: the ACK of a 2xx (RFC 3261 13.3.1.4)."""
        dialog_id = DialogId(
            call_id=ack.call_id, local_tag=ack.to.tag or "", remote_tag=ack.from_.tag or ""
        )
        dialog = self._dialogs.get(dialog_id)
        if dialog is None:
            self._emit(MessageRejected(reason="ACK for no known dialog", status_code=None))
            return
        self._emit(AckReceived(request=ack, dialog=dialog))

    def _on_cancel(self, cancel: Request, key: TxKey) -> None:
        """RFC 3261 9.2: CANCEL matches the INVITE server transaction with its branch."""
        invite_key = (key[0], "INVITE")
        invite_tx = self._server.get(invite_key)
        if invite_tx is None:
            self._reject(cancel, 481, "CANCEL matches no pending INVITE")
            return
        tx = Transaction(Kind.NON_INVITE_SERVER, cancel, t1=self.t1)
        self._server[key] = tx
        self._server_tags[key] = self._server_tags[invite_key]
        tx.start(self._now)
        self.respond(cancel, 200)
        if invite_tx.state is State.PROCEEDING:
            invite = invite_tx.request
            self.respond(invite, 487)
            self._emit(InviteCancelled(request=invite))

    def _on_response(self, response: Response) -> None:
        try:
            branch = response.top_via.branch or ""
            key = (branch, response.cseq.method)
        except SipParseError as exc:
            self._emit(MessageRejected(reason=str(exc), status_code=None))
            return
        tx = self._client.get(key)
        if tx is None:
            self._emit(MessageRejected(reason="response matches no transaction", status_code=None))
            return
        try:
            self._apply(tx, tx.receive_response(response, self._now))
        except SipParseError as exc:
            self._emit(MessageRejected(reason=str(exc), status_code=None))
        if tx.cancel_requested and tx.state is State.PROCEEDING and response.is_provisional:
            cancel_key = (branch, "CANCEL")
            if cancel_key not in self._client:
                tx.arm_cancel_timer(self._now)
                self.send_request(self._cancel_for(tx.request), self._now)
        self._reap(self._client, key, tx)

    # -- transaction actions into events and frames ------------------------

    def _apply(self, tx: Transaction, actions: list[Action]) -> None:
        for action in actions:
            if isinstance(action, Send):
                self._frames.append(action.message.to_bytes())
            elif isinstance(action, Deliver):
                self._deliver(tx, action.response)
            elif isinstance(action, TimedOut):
                self._emit(TransactionTimedOut(request=tx.request, client=tx.is_client))
            elif isinstance(action, _TransportFailedAction):
                self._emit(TransportFailed(request=tx.request))

    def _deliver(self, tx: Transaction, response: Response) -> None:
        request = tx.request
        dialog: Dialog | None = None
        tag = response.to.tag
        if request.method in DIALOG_CREATING and tag is not None and response.status_code > 100:
            dialog_id = DialogId(
                call_id=request.call_id, local_tag=request.from_.tag or "", remote_tag=tag
            )
            dialog = self._dialogs.get(dialog_id)
            if dialog is None and response.status_code < 300:
                dialog = Dialog.from_uac(request, response, self.local_aor)
                if not self._add_dialog(dialog):
                    dialog = None
            elif dialog is not None:
                dialog.on_response(response)
                self._forget_if_ended(dialog)
        elif request.to.tag is not None:
            dialog = self._dialogs.get(
                DialogId(
                    call_id=request.call_id,
                    local_tag=request.from_.tag or "",
                    remote_tag=request.to.tag or "",
                )
            )
            if dialog is not None and request.method == "INVITE":
                dialog.on_response(response)
        if request.method == "INVITE" and response.is_success and dialog is not None:
            ack = dialog.create_ack(request, via=self.new_via())
            self._frames.append(ack.to_bytes())
        self._emit(ResponseReceived(response=response, request=request, dialog=dialog))

    # -- bookkeeping ----------------------------------------------------------

    def _emit(self, event: SipEvent) -> None:
        if len(self._events) >= self.max_events:
            raise SipParseError(
                "the peer produced more events than were read", status_code=None, fatal=True
            )
        self._events.append(event)

    def _reap(self, table: dict[TxKey, Transaction], key: TxKey, tx: Transaction) -> None:
        if tx.terminated and table.get(key) is tx:
            del table[key]
            if table is self._server:
                self._server_tags.pop(key, None)

    @staticmethod
    def _server_key(request: Request) -> TxKey:
        method = "INVITE" if request.method == "ACK" else request.method
        return (request.top_via.branch or "", method)

    def _cancel_for(self, invite: Request) -> Request:
        """RFC 3261 9.1: same Request-URI, Call-ID, From, To, CSeq number and top Via."""
        headers: list[tuple[str, str]] = [("Via", str(invite.top_via))]
        for name in ("Max-Forwards", "From", "To", "Call-ID"):
            value = invite.get(name)
            if value is not None:
                headers.append((name, value))
        headers.append(("CSeq", f"{invite.cseq.number} CANCEL"))
        return Request(method="CANCEL", uri=invite.uri, headers=tuple(headers))

    def _uas_dialog_id(self, request: Request, local_tag: str) -> DialogId:
        return DialogId(
            call_id=request.call_id, local_tag=local_tag, remote_tag=request.from_.tag or ""
        )

    def _dialog_for_uas(self, request: Request, response: Response) -> None:
        dialog_id = self._uas_dialog_id(request, response.to.tag or "")
        dialog = self._dialogs.get(dialog_id)
        if dialog is None:
            if request.from_.tag is None:
                return  # RFC 2543 peers only; never an anonsip peer
            self._add_dialog(Dialog.from_uas(request, response, self.local_aor))
        else:
            dialog.on_response(response)

    def _add_dialog(self, dialog: Dialog) -> bool:
        if len(self._dialogs) >= self.max_dialogs:
            self._emit(MessageRejected(reason="dialog table full", status_code=None))
            return False
        self._dialogs[dialog.id] = dialog
        return True

    def _forget_if_ended(self, dialog: Dialog) -> None:
        if dialog.state is DialogState.TERMINATED:
            self._dialogs.pop(dialog.id, None)

    def _end_dialog_of(self, request: Request, *, local: bool) -> None:
        frm, to = request.from_.tag or "", request.to.tag or ""
        local_tag, remote_tag = (frm, to) if local else (to, frm)
        dialog = self._dialogs.pop(
            DialogId(call_id=request.call_id, local_tag=local_tag, remote_tag=remote_tag), None
        )
        if dialog is not None:
            dialog.end()
