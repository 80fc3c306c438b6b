"""Presence over the node's secure links: the trio adapter for ``anonsip.presence``.

RFC 3856 presence over RFC 6665 SUBSCRIBE/NOTIFY, contacts only. The
sans-IO ``Notifier`` decides who may subscribe to us and whom to NOTIFY;
one sans-IO ``Watch`` per accepted contact keeps our subscription to them
alive. This module only runs them:

* ``on_subscribe`` / ``on_notify`` take the node's incoming SUBSCRIBE and
  NOTIFY requests (strangers and blocked peers get 403, nothing else);
* ``run`` keeps one watch task per accepted contact (subscribe, refresh
  at 80 % of Expires, re-subscribe with backoff when they are unreachable,
  offline when that fails), expires subscribers that stopped refreshing,
  and sends a NOTIFY to every subscriber when our status changes;
* ``goodbye`` ends every subscription with an offline NOTIFY when the node
  stops (best effort, bounded in time).

A subscription lives in the dialog table of the link that carried its
SUBSCRIBE, so NOTIFYs go down that same link; when it breaks, the watcher
re-subscribes over whatever link it gets next.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass, field

import trio

from anonsip._errors import AnonsipError, LocalError
from anonsip.control import PresenceSetArgs, PresenceStatus, PresenceView
from anonsip.identity import Address
from anonsip.node._context import NodeContext
from anonsip.node._link import PeerLink
from anonsip.node._service import NodeService, OperationHandler
from anonsip.presence import (
    Accepted,
    Action,
    Notifier,
    Status,
    Subscriber,
    Watch,
    WatchTimings,
    user_status,
)
from anonsip.sip import (
    PIDF_CONTENT_TYPE,
    Availability,
    Dialog,
    DialogId,
    Presence,
    Request,
    RequestReceived,
    SipEvent,
    SipParseError,
    Uri,
    encode_pidf,
    notify_request,
    parse_pidf,
    subscribe_request,
)
from anonsip.store import ContactState

log = logging.getLogger(__name__)

Handle = tuple[PeerLink, Dialog]
LINK_ERRORS = (AnonsipError, trio.TooSlowError, trio.BrokenResourceError)
PRESENCE_SETTING = "presence"


@dataclass(frozen=True, kw_only=True)
class PresenceConfig:
    timings: WatchTimings = field(default_factory=WatchTimings)
    subscribe_timeout: float = 40.0  # dial (or reuse) a link and get the 200
    notify_timeout: float = 20.0
    goodbye_timeout: float = 3.0
    rescan: float = 60.0  # re-read the contact list (acceptances the store made itself)


def _status(value: str) -> PresenceStatus:
    try:
        return PresenceStatus(value)
    except ValueError:
        return PresenceStatus.UNKNOWN


def _int_param(value: str | None) -> int | None:
    if value is None or not value.isdigit() or len(value) > 10:
        return None
    return int(value)


class PresenceService(NodeService):
    """Our presence, our subscribers, and our watches of contacts."""

    name = "presence"
    event_packages = frozenset({"presence"})

    def __init__(self, context: NodeContext, config: PresenceConfig | None = None) -> None:
        self._ctx = context
        self.address = context.address
        self.entity = Uri.parse(Address.parse(self.address).sip_uri)
        self.store = context.store
        self.config = config or PresenceConfig()
        self.notifier: Notifier[Handle] = Notifier()
        self.watches: dict[str, Watch] = {}
        self._subs: dict[str, Handle] = {}  # our subscription to each contact
        self._wakes: dict[str, trio.Event] = {}
        self._scopes: dict[str, trio.CancelScope] = {}
        self._rescan = trio.Event()
        self._changed = trio.Event()
        self._nursery: trio.Nursery | None = None
        self._closing = False
        self._restore_status()

    # -- what the node and the control API see ------------------------------------

    def presence_of(self, address: str) -> tuple[str, str]:
        watch = self.watches.get(address)
        return watch.visible() if watch is not None else ("unknown", "")

    def own(self) -> PresenceView:
        status = self.notifier.status
        return PresenceView(status=PresenceStatus(status.availability.value), note=status.note)

    def operations(self) -> Mapping[str, OperationHandler]:
        return {"presence.set": self.op_presence_set}

    def _restore_status(self) -> None:
        """Our presence as the user last set it (it survives a restart)."""
        saved = self.store.setting(PRESENCE_SETTING)
        if not saved:
            return
        status, _, note = saved.partition("\n")
        try:
            self.notifier.set_status(user_status(status, note))
        except LocalError:
            log.info("ignoring a saved presence this version does not know")

    def set_status(self, status: Status) -> None:
        if self.notifier.set_status(status):
            self._changed.set()

    async def op_presence_set(self, args: PresenceSetArgs) -> None:
        """The ``presence.set`` control op: ``status`` and an optional ``note``."""
        status = user_status(args.status, args.note or "")
        self.set_status(status)
        self.store.set_setting(PRESENCE_SETTING, f"{args.status}\n{status.note}")
        self._ctx.status_changed()

    def contacts_changed(self) -> None:
        self._rescan.set()

    def heard_from(self, peer: str, _text: str) -> None:
        """A message from ``peer``: a sign of life, and perhaps an acceptance.

        A contact we already watch needs no rescan: that reads every contact
        on the event loop, and a burst of messages asked for one each.
        """
        self._kick(peer)
        if peer not in self.watches:
            self._rescan.set()

    # -- incoming SUBSCRIBE (we are the notifier) ---------------------------------

    def _is_contact(self, peer: str) -> bool:
        contact = self.store.contact(peer)
        return (
            contact is not None
            and contact.state is ContactState.ACCEPTED
            and not self.store.is_blocked(peer)
        )

    async def on_subscribe(self, link: PeerLink, event: SipEvent) -> None:
        if not isinstance(event, RequestReceived):
            return
        request = event.request
        peer = Address(link.peer_public_key).text
        if self._closing:
            await link.respond(request, 480)
            return
        try:
            package = request.event
            expires = request.expires
        except SipParseError:
            await link.respond(request, 400)
            return
        verdict = self.notifier.on_subscribe(
            peer=peer,
            call_id=request.call_id,
            is_contact=self._is_contact(peer),
            in_dialog=event.dialog is not None,
            event=None if package is None else package.value,
            expires=expires,
            now=trio.current_time(),
        )
        if not isinstance(verdict, Accepted):
            await link.respond(request, verdict.status_code, headers=verdict.headers)
            return
        for old in verdict.evicted:
            self._end_subscriber(old)
        try:
            response = await link.respond(
                request, 200, headers=(("Expires", str(verdict.expires)),)
            )
        except LINK_ERRORS:
            self.notifier.remove(verdict.key)
            raise
        dialog = event.dialog or link.endpoint.dialog_of_response(response)
        if dialog is None:  # the link's dialog table is full
            self.notifier.remove(verdict.key)
            return
        self._kick(peer)  # they can reach us: worth trying to reach them
        if verdict.expires == 0:
            await self._notify(link, dialog, final="timeout", status=self.notifier.status)
            link.endpoint.end_dialog(dialog)
            return
        self.notifier.attach(verdict.key, (link, dialog))
        row = self.notifier.get(verdict.key)
        if row is not None:
            await self._notify_row(row)

    async def _notify_row(self, row: Subscriber[Handle]) -> None:
        assert row.handle is not None
        link, dialog = row.handle
        ok = await self._notify(
            link,
            dialog,
            expires=row.remaining(trio.current_time()),
            status=self.notifier.status,
        )
        if not ok and self.notifier.get(row.key) is row:
            self.notifier.remove(row.key)
            self._end_subscriber(row)

    async def _notify(
        self,
        link: PeerLink,
        dialog: Dialog,
        *,
        status: Status,
        expires: int | None = None,
        final: str | None = None,
    ) -> bool:
        """One NOTIFY (RFC 6665 4.2.2); False if the subscriber is gone (481, error, no link)."""
        if not link.is_open:
            return False
        presence = Presence(
            entity=self.entity, availability=status.availability, note=status.note or None
        )
        try:
            with trio.fail_after(self.config.notify_timeout):
                request = notify_request(
                    link.endpoint,
                    dialog,
                    pidf=encode_pidf(presence),
                    expires=None if final else expires,
                    reason=final,
                )
                response = await link.request(request)
        except (*LINK_ERRORS, SipParseError) as exc:
            log.info("a presence NOTIFY did not get through: %s", exc)
            return False
        return response.is_success

    def _end_subscriber(self, row: Subscriber[Handle]) -> None:
        if row.handle is not None:
            link, dialog = row.handle
            link.endpoint.end_dialog(dialog)

    async def _notify_loop(self) -> None:
        """On each change of our status, NOTIFY every subscriber (coalescing bursts)."""
        while True:
            await self._changed.wait()
            self._changed = trio.Event()
            async with trio.open_nursery() as nursery:
                for row in self.notifier.subscribers():
                    if row.handle is not None:
                        nursery.start_soon(self._notify_row, row)

    async def goodbye(self) -> None:
        """Tell every subscriber we are going offline (RFC 6665 4.2.2 ``terminated``)."""
        if self._closing:
            return
        self._closing = True
        rows = [r for r in self.notifier.subscribers() if r.handle is not None]
        for row in self.notifier.subscribers():
            self.notifier.remove(row.key)
        with trio.move_on_after(self.config.goodbye_timeout):
            async with trio.open_nursery() as nursery:
                for row in rows:
                    assert row.handle is not None
                    nursery.start_soon(self._say_goodbye, *row.handle)
        for row in rows:
            self._end_subscriber(row)

    async def _say_goodbye(self, link: PeerLink, dialog: Dialog) -> None:
        offline = Status(availability=Availability.OFFLINE)
        await self._notify(link, dialog, status=offline, final="noresource")

    # -- incoming NOTIFY (we are the watcher) -------------------------------------

    async def on_notify(self, link: PeerLink, event: SipEvent) -> None:
        if not isinstance(event, RequestReceived):
            return
        request = event.request
        peer = Address(link.peer_public_key).text
        watch = self.watches.get(peer)
        if watch is None or event.dialog is None:
            await link.respond(request, 481)
            return
        code, presence = self._read_notify(request)
        if code is not None:
            await link.respond(request, code)
            return
        state = request.subscription_state
        assert state is not None
        before = watch.visible()
        now = trio.current_time()
        availability = None if presence is None else presence.availability
        if state.value == "terminated":
            ours = watch.on_terminated(
                request.call_id,
                reason=state.param("reason"),
                retry_after=_int_param(state.param("retry-after")),
                now=now,
                availability=availability,
            )
        else:
            ours = watch.on_notify(
                request.call_id,
                availability=availability,
                note=None if presence is None else presence.note,
                expires=_int_param(state.param("expires")),
                now=now,
            )
        await link.respond(request, 200 if ours else 481)
        if ours and state.value == "terminated":
            link.endpoint.end_dialog(event.dialog)
            sub = self._subs.get(peer)
            if sub is not None and sub[1] is event.dialog:
                del self._subs[peer]
            self._wake(peer)
        self._published(watch, before)

    @staticmethod
    def _read_notify(request: Request) -> tuple[int | None, Presence | None]:
        """(error status to answer, the PIDF body if any) of a presence NOTIFY."""
        try:
            package = request.event
            state = request.subscription_state
            ctype = request.content_type
        except SipParseError:
            return 400, None
        if package is None or package.value != "presence":
            return 489, None
        if state is None or state.value not in ("active", "pending", "terminated"):
            return 400, None
        if not request.body:
            return None, None
        if ctype is None or ctype.essence != PIDF_CONTENT_TYPE:
            return 415, None
        try:
            return None, parse_pidf(request.body)
        except SipParseError as exc:
            return exc.status_code or 400, None

    # -- running -------------------------------------------------------------------

    async def stopping(self) -> None:
        await self.goodbye()

    async def on_sip(self, link: PeerLink, event: SipEvent) -> None:
        if isinstance(event, RequestReceived) and event.request.method == "SUBSCRIBE":
            await self.on_subscribe(link, event)
        elif isinstance(event, RequestReceived):
            await self.on_notify(link, event)

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        self._closing = False
        try:
            async with trio.open_nursery() as nursery:
                self._nursery = nursery
                nursery.start_soon(self._notify_loop)
                task_status.started()
                while True:
                    self._rescan = trio.Event()
                    self._reconcile(nursery)
                    now = trio.current_time()
                    for row in self.notifier.expire(now):
                        self._end_subscriber(row)
                    deadline = min(
                        self.notifier.next_deadline() or math.inf, now + self.config.rescan
                    )
                    with trio.move_on_at(deadline):
                        await self._rescan.wait()
        finally:
            self._nursery = None
            with trio.CancelScope(shield=True):
                await self.goodbye()

    def _reconcile(self, nursery: trio.Nursery) -> None:
        """One watch per accepted contact; subscriptions of ex-contacts end."""
        accepted = {
            c.address
            for c in self.store.contacts()
            if c.state is ContactState.ACCEPTED and not self.store.is_blocked(c.address)
        }
        for peer in [p for p in self.watches if p not in accepted]:
            self._scopes.pop(peer).cancel()
            watch = self.watches.pop(peer)
            self._wakes.pop(peer, None)
            sub = self._subs.pop(peer, None)
            if sub is not None:
                sub[0].endpoint.end_dialog(sub[1])
            if watch.visible() != ("unknown", ""):
                self._ctx.publish("presence", PresenceView(address=peer))
        for row in self.notifier.subscribers():
            if row.key.peer not in accepted:
                self.notifier.remove(row.key)
                if row.handle is not None:
                    nursery.start_soon(self._say_rejected, row)
        for peer in sorted(accepted - self.watches.keys()):
            self.watches[peer] = Watch(peer, now=trio.current_time(), timings=self.config.timings)
            scope = trio.CancelScope()
            self._scopes[peer] = scope
            nursery.start_soon(self._watch_task, peer, scope)

    async def _say_rejected(self, row: Subscriber[Handle]) -> None:
        # RFC 6665 4.2.2 "rejected": the subscriber will not be let back in.
        assert row.handle is not None
        link, dialog = row.handle
        offline = Status(availability=Availability.OFFLINE)
        await self._notify(link, dialog, status=offline, final="rejected")
        self._end_subscriber(row)

    # -- watching one contact ---------------------------------------------------------

    def _kick(self, peer: str) -> None:
        watch = self.watches.get(peer)
        if watch is not None:
            watch.kick(trio.current_time())
            self._wake(peer)

    def _wake(self, peer: str) -> None:
        wake = self._wakes.get(peer)
        if wake is not None:
            wake.set()

    def _published(self, watch: Watch, before: tuple[str, str]) -> None:
        after = watch.visible()
        if after != before and self.watches.get(watch.peer) is watch:
            presence, note = after
            self._ctx.publish(
                "presence",
                PresenceView(address=watch.peer, status=_status(presence), note=note),
            )

    async def _watch_task(self, peer: str, scope: trio.CancelScope) -> None:
        with scope:
            watch = self.watches[peer]
            while True:
                self._wakes[peer] = wake = trio.Event()
                deadline = watch.next_deadline()
                with trio.move_on_at(math.inf if deadline is None else deadline):
                    await wake.wait()
                before = watch.visible()
                action = watch.on_timer(trio.current_time())
                self._published(watch, before)
                if action is Action.SUBSCRIBE:
                    await self._subscribe(watch)
                elif action is Action.REFRESH:
                    await self._refresh(watch)

    async def _subscribe(self, watch: Watch) -> None:
        assert self._nursery is not None
        peer = watch.peer
        before = watch.visible()
        old = self._subs.pop(peer, None)
        if old is not None and old[0].is_open:
            old[0].endpoint.end_dialog(old[1])
        try:
            with trio.fail_after(self.config.subscribe_timeout):
                link = await self._ctx.links.link_to(Address.parse(peer).public_key)
                request = subscribe_request(link.endpoint, expires=watch.timings.expires)
                watch.sending(request.call_id)
                response = await link.request(request)
        except LINK_ERRORS as exc:
            log.info("could not subscribe to a contact's presence: %s", exc)
            watch.on_failed(trio.current_time())
            self._published(watch, before)
            return
        now = trio.current_time()
        if response.is_success:
            dialog = link.endpoint.dialog(
                DialogId(
                    call_id=request.call_id,
                    local_tag=request.from_.tag or "",
                    remote_tag=response.to.tag or "",
                )
            )
            if dialog is None:
                watch.on_failed(now)
            else:
                self._subs[peer] = (link, dialog)
                watch.on_accepted(self._granted(response.expires, watch), now)
                self._nursery.start_soon(self._watch_link, watch, link, dialog)
        else:
            watch.on_refused(
                response.status_code, now, retry_after=_int_param(response.get("Retry-After"))
            )
        self._published(watch, before)

    @staticmethod
    def _granted(expires: int | None, watch: Watch) -> int:
        return watch.timings.expires if expires is None else min(expires, watch.timings.expires)

    async def _refresh(self, watch: Watch) -> None:
        peer = watch.peer
        before = watch.visible()
        sub = self._subs.get(peer)
        if sub is None or not sub[0].is_open:
            watch.on_link_broke(trio.current_time())
            self._published(watch, before)
            return
        link, dialog = sub
        try:
            with trio.fail_after(self.config.notify_timeout):
                request = subscribe_request(
                    link.endpoint, expires=watch.timings.expires, dialog=dialog
                )
                response = await link.request(request)
        except (*LINK_ERRORS, SipParseError) as exc:
            log.info("could not refresh a presence subscription: %s", exc)
            watch.on_failed(trio.current_time())
            self._published(watch, before)
            return
        now = trio.current_time()
        if response.is_success:
            watch.on_accepted(self._granted(response.expires, watch), now)
        else:
            self._subs.pop(peer, None)
            link.endpoint.end_dialog(dialog)
            watch.on_refused(response.status_code, now)
        self._published(watch, before)

    async def _watch_link(self, watch: Watch, link: PeerLink, dialog: Dialog) -> None:
        """The link carrying our subscription ended: re-subscribe elsewhere."""
        await link.wait_closed()
        if self._subs.get(watch.peer) == (link, dialog) and self.watches.get(watch.peer) is watch:
            del self._subs[watch.peer]
            before = watch.visible()
            watch.on_link_broke(trio.current_time())
            self._published(watch, before)
            self._wake(watch.peer)
