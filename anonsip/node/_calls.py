"""Voice calls on a node: the call machine on the peer's SIP link, sealed Opus beside it.

``CallService`` is the thin trio adapter of the sans-IO call machine
(``anonsip.call.Call``, one per call). It feeds each machine the requests
and responses that arrive on the peer's ``PeerLink``, the user's control
operations and its timer, and carries out what the machine asks: SIP
messages built by ``anonsip.call`` (``request_for``, ``signal_of``), the
media stream (``_call_media``) and the audio (``anonsip.media.io``).

Rules a user relies on: only accepted contacts that are not blocked make
the phone ring (others get 403); at most ``max_calls`` calls exist (more
INVITEs get 486); a dial has a deadline, so a call never sits in
"calling"; a call lasts until someone hangs up (a WAV that runs out goes on
as silence, hold keeps frames flowing, so the stream's size and timing say
nothing of either). When the media stream breaks, or the peer's media ends
without its BYE following, this side hangs up with a BYE. A transfer the
peer asks for (REFER) is followed only with the user's consent
(``call.transfer_answer``), only to an accepted contact, and the new call
keeps the microphone as it was (muted or held stays silent); anything else
is refused with a NOTIFY saying so (RFC 3515 2.4.5).
"""

from __future__ import annotations

import collections
import logging
import math
import random
import secrets
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import trio

from anonsip._errors import AnonsipError, LocalError, RemoteProtocolError
from anonsip.call import (
    Ack,
    Call,
    CallEvent,
    CallState,
    Cancel,
    Ended,
    IncomingCall,
    Invite,
    MediaPreferences,
    Method,
    MuteChanged,
    Send,
    SessionDescription,
    SignalEvent,
    StartMedia,
    StopMedia,
    TransferProgress,
    TransferRequested,
    UpdateMedia,
    signal_of,
)
from anonsip.control import (
    AnswerArgs,
    AudioDevicesView,
    CallArgs,
    CallIdArgs,
    CallView,
    DeclineCallArgs,
    HoldArgs,
    MuteArgs,
    NoArgs,
    TransferAnswerArgs,
    TransferArgs,
)
from anonsip.control import CallState as ViewCallState
from anonsip.identity import Address
from anonsip.media.io import (
    AudioChoice,
    CallAudio,
    EndReason,
    MediaEnded,
    audio_device_names,
    open_audio,
    silent_audio,
)
from anonsip.node._call_leg import CallLeg, audio_choice
from anonsip.node._call_media import CallMedia
from anonsip.node._call_sip import CallSignals
from anonsip.node._context import NodeContext
from anonsip.node._link import PeerLink
from anonsip.node._service import NodeService, OperationHandler
from anonsip.sip import (
    AckReceived,
    InviteCancelled,
    Request,
    RequestReceived,
    SipEvent,
)
from anonsip.store import ContactState

__all__ = ["CallService", "CallSettings"]

log = logging.getLogger(__name__)

MAX_CALLS = 4
MAX_CALL_ID = 128
DIAL_TIMEOUT_S = 60.0  # reach the peer's node (lookup + rendezvous + handshake)
MEDIA_OPEN_TIMEOUT_S = 45.0  # caller: dial the media stream (a new rendezvous circuit)
PEER_BYE_GRACE_S = 3.0  # the peer's media ended: its BYE is usually just behind
SHUTDOWN_BYE_S = 3.0
STATS_INTERVAL_S = 1.0
CONSENT_TIMEOUT_S = 60.0  # a transfer the user did not answer is refused
MAX_RECENT = 8


@dataclass(frozen=True, kw_only=True)
class CallSettings:
    auto_answer: bool = False
    play: Path | None = None  # what auto-answered calls send
    record: Path | None = None  # where auto-answered calls are recorded
    max_calls: int = MAX_CALLS
    ring_timeout_s: float = 60.0
    media_wait_s: float = 45.0  # callee: how long the caller may take to open the media stream
    dial_timeout_s: float = DIAL_TIMEOUT_S
    preferences: MediaPreferences = field(default_factory=MediaPreferences)


class CallsNotReady(AnonsipError):
    """The node is still starting; calls work once it is reachable."""


class CallService(NodeService):
    """Every call of one node; ``run`` owns the nursery the calls and their media live in."""

    name = "calls"
    sip_methods = frozenset({"INVITE", "BYE", "REFER"})
    event_packages = frozenset({"refer"})
    handles_media = True

    def __init__(
        self,
        context: NodeContext,
        *,
        settings: CallSettings | None = None,
        wall_clock: Callable[[], float] = time.time,
        rng: random.Random | None = None,
    ) -> None:
        self._ctx = context
        self._own_key = context.identity.public_key
        self.settings = settings or CallSettings()
        self._wall_clock = wall_clock
        self._rng = rng or random.SystemRandom()  # glare backoffs and SDP session ids
        self._legs: dict[str, CallLeg] = {}
        self._media = CallMedia(
            open_media=lambda peer: self._ctx.links.open_media(peer),
            publish=context.publish,
            on_ended=self._media_ended,
            media_wait_s=self.settings.media_wait_s,
        )
        self._signals = CallSignals(self._received, media=self._media)
        self._nursery: trio.Nursery | None = None
        self.recent: collections.deque[CallView] = collections.deque(maxlen=MAX_RECENT)

    def may_ring(self, address: str) -> bool:
        """Only contacts (not strangers, not blocked) make the phone ring."""
        store = self._ctx.store
        contact = store.contact(address)
        return (
            contact is not None
            and contact.state is not ContactState.BLOCKED
            and not store.is_blocked(address)
        )

    def may_transfer_to(self, address: str) -> bool:
        """A transfer may only make us call an accepted contact, never ourselves."""
        contact = self._ctx.store.contact(address)
        return (
            address != self._ctx.address
            and contact is not None
            and contact.state is ContactState.ACCEPTED
        )

    # -- lifetime ----------------------------------------------------------------

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Serve calls until cancelled; ``stopping`` has hung every call up by then."""
        try:
            async with trio.open_nursery() as nursery:
                self._nursery = nursery
                task_status.started()
                await trio.sleep_forever()
        finally:
            self._nursery = None

    async def stopping(self) -> None:
        """The node stops: BYE (or CANCEL, or 480) to every peer, then END on every media stream."""
        with trio.move_on_after(SHUTDOWN_BYE_S):
            await self._say_goodbye()

    async def _say_goodbye(self) -> None:
        """Hang every call up through its machine (BYE, CANCEL or a decline, whatever its
        state calls for, a 200 crossing a CANCEL included) and wait until each has ended."""
        legs = [leg for leg in self._legs.values() if not leg.ended.is_set()]
        async with trio.open_nursery() as nursery:
            for leg in legs:
                nursery.start_soon(self._goodbye, leg)

    async def _goodbye(self, leg: CallLeg) -> None:
        try:
            await self.hang_up(leg, reason="hung-up")
        except (AnonsipError, trio.BrokenResourceError) as exc:
            log.info("could not tell the peer the call ended: %s", exc)
        await leg.ended.wait()
        leg.stop_media.set()
        if leg.media_running:
            await leg.media_done.wait()

    def _check_running(self) -> trio.Nursery:
        if self._nursery is None:
            raise CallsNotReady("the node is still starting; try the call again in a moment")
        return self._nursery

    def _machine(self, peer_key: bytes) -> Call:
        return Call(
            clock=trio.current_time,
            rng=self._rng,
            preferences=self.settings.preferences,
            ring_timeout_s=self.settings.ring_timeout_s,
            glare_owner=self._own_key > peer_key,
        )

    def calls(self) -> list[CallLeg]:
        return list(self._legs.values())

    # -- control ops -----------------------------------------------------------

    def operations(self) -> Mapping[str, OperationHandler]:
        return {
            "call": self.op_call,
            "answer": self.op_answer,
            "call.decline": self.op_decline,
            "hangup": self.op_hangup,
            "call.mute": self.op_mute,
            "call.hold": self.op_hold,
            "call.transfer": self.op_transfer,
            "call.transfer_answer": self.op_transfer_answer,
            "calls": self.op_calls,
            "audio.devices": self.op_devices,
        }

    async def op_call(self, args: CallArgs) -> CallView:
        address = self._ctx.peer_address(args.peer)
        if args.seconds is not None and not 0 < args.seconds <= 86400:
            raise LocalError("'seconds' is a number of seconds from 0 to 86400")
        audio = open_audio(audio_choice(args))
        try:
            leg = await self.place_call(address, audio=audio, seconds=args.seconds)
        except BaseException:
            audio.close()
            raise
        return leg.view()

    async def place_call(
        self,
        address: str,
        *,
        audio: CallAudio,
        seconds: float | None = None,
        muted: bool = False,
    ) -> CallLeg:
        """Start calling ``address``; the dial and the INVITE go on in the background."""
        nursery = self._check_running()
        peer_key = Address.parse(address).public_key
        if peer_key == self._own_key:
            raise LocalError("that is your own address")
        if len(self._legs) >= self.settings.max_calls:
            raise LocalError(
                f"there are already {len(self._legs)} calls; hang one up before calling again"
            )
        machine = self._machine(peer_key)
        leg = CallLeg(
            call_id=secrets.token_hex(16),
            peer_key=peer_key,
            outgoing=True,
            machine=machine,
            audio=audio,
            seconds=seconds,
        )
        # The machine mutes only a call in progress; until then the leg keeps it silent.
        leg.pending_mute = muted
        self._legs[leg.call_id] = leg
        await nursery.start(self._run_leg, leg)
        return leg

    def _pick(self, call_id: str | None, *, ringing_in: bool = False) -> CallLeg:
        if call_id is not None:
            leg = self._legs.get(call_id)
            if leg is None:
                raise LocalError("there is no such call (it may have ended)")
            return leg
        legs = list(self._legs.values())
        if ringing_in:
            legs = [g for g in legs if not g.outgoing and g.state is ViewCallState.RINGING]
            if not legs:
                raise LocalError("no call is ringing")
            return legs[0]
        for wanted in (ViewCallState.ACTIVE, ViewCallState.HELD, ViewCallState.RINGING):
            for leg in legs:
                if leg.state is wanted:
                    return leg
        for leg in legs:
            if leg.state is ViewCallState.CALLING:
                return leg
        raise LocalError("there is no call")

    async def op_answer(self, args: AnswerArgs) -> None:
        leg = self._pick(args.call_id, ringing_in=True)
        if leg.outgoing or leg.machine.state is not CallState.INCOMING:
            raise LocalError("that call is not ringing here")
        await self._answer(leg, open_audio(audio_choice(args)))

    async def _answer(self, leg: CallLeg, audio: CallAudio) -> None:
        previous, leg.audio = leg.audio, audio
        try:
            await self._apply(leg, leg.machine.user_answer)
        except BaseException:
            leg.audio = previous
            audio.close()
            raise

    async def op_decline(self, args: DeclineCallArgs) -> None:
        leg = self._pick(args.call_id, ringing_in=True)
        await self._apply(leg, lambda: leg.machine.user_decline(busy=args.busy))

    async def op_hangup(self, args: CallIdArgs) -> None:
        await self.hang_up(self._pick(args.call_id))

    async def hang_up(self, leg: CallLeg, *, reason: str | None = None, detail: str = "") -> None:
        if leg.ended.is_set():
            return
        if leg.machine.state is CallState.IDLE:  # still dialling: nothing was signalled
            self._end_unsignalled(leg, reason or "cancelled", detail)
            return
        if reason is not None:
            leg.reason, leg.detail = reason, detail
        await self._apply(leg, leg.machine.user_hangup)

    async def op_mute(self, args: MuteArgs) -> None:
        leg = self._pick(args.call_id)
        await self._apply(leg, lambda: leg.machine.user_mute(args.muted))

    async def op_hold(self, args: HoldArgs) -> None:
        leg = self._pick(args.call_id)
        machine = leg.machine
        await self._apply(leg, machine.user_hold if args.held else machine.user_resume)

    async def op_transfer(self, args: TransferArgs) -> None:
        leg = self._pick(args.call_id)
        address = self._ctx.peer_address(args.target)
        await self._apply(leg, lambda: leg.machine.user_transfer(address))

    async def op_transfer_answer(self, args: TransferAnswerArgs) -> None:
        legs = [g for g in self._legs.values() if g.consent is not None]
        if args.call_id is not None:
            legs = [g for g in legs if g.call_id == args.call_id]
        if not legs:
            raise LocalError("no call asks to be transferred")
        leg = legs[0]
        assert leg.consent is not None
        leg.consented = args.accept
        leg.consent.set()

    async def op_devices(self, args: NoArgs) -> AudioDevicesView:
        try:
            inputs, outputs = await self._ctx.db(audio_device_names)
        except LocalError as exc:
            return AudioDevicesView(problem=str(exc))
        problem = "" if inputs or outputs else "PortAudio sees no sound devices here"
        return AudioDevicesView(inputs=tuple(inputs), outputs=tuple(outputs), problem=problem)

    async def op_calls(self, args: NoArgs) -> list[CallView]:
        return [leg.view(with_stats=True) for leg in self._legs.values()]

    # -- one call's life -------------------------------------------------------

    async def _run_leg(
        self, leg: CallLeg, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
    ) -> None:
        try:
            async with trio.open_nursery() as nursery:
                leg.nursery = nursery
                nursery.start_soon(self._timer, leg)
                if leg.outgoing:
                    nursery.start_soon(self._dial, leg)
                else:
                    nursery.start_soon(self._watch_link, leg)
                task_status.started()
                await leg.ended.wait()
                leg.stop_media.set()
                if leg.media_running:
                    with trio.move_on_after(5):
                        await leg.media_done.wait()
                nursery.cancel_scope.cancel()
        finally:
            self._media.forget(leg)
            if leg.audio is not None:
                leg.audio.close()
            self._legs.pop(leg.call_id, None)
            leg.ended.set()
            view = leg.view(with_stats=True)
            self.recent.append(view)
            self._keep_in_history(leg, view)
            self._ctx.publish("call", view)
            log.info("a call ended: %s %s", leg.end_reason, leg.detail)

    def _keep_in_history(self, leg: CallLeg, view: CallView) -> None:
        """The conversation keeps the call: who called, how it ended, how long it lasted."""
        answered = leg.started is not None
        ended = leg.end_reason if answered or leg.outgoing else "missed"
        if not leg.outgoing and leg.end_reason in ("declined", "busy"):
            ended = leg.end_reason
        duration = 0.0
        if answered:
            measured = view.stats.duration_s if view.stats is not None else None
            duration = measured or max(0.0, self._wall_clock() - (leg.started or 0.0))
        try:
            self._ctx.store.record_call(
                leg.peer,
                leg.call_id,
                outgoing=leg.outgoing,
                ended=ended,
                duration_s=duration,
                time=leg.started or self._wall_clock(),
            )
        except AnonsipError as exc:
            log.info("could not keep the call in the history: %s", exc)

    def _end_unsignalled(self, leg: CallLeg, reason: str, detail: str) -> None:
        leg.reason, leg.detail = reason, detail
        leg.ended.set()

    async def _dial(self, leg: CallLeg) -> None:
        try:
            with trio.fail_after(self.settings.dial_timeout_s):
                link = await self._ctx.links.link_to(leg.peer_key)
        except (AnonsipError, trio.TooSlowError) as exc:
            self._end_unsignalled(leg, "unreachable", str(exc) or "the peer did not answer in time")
            return
        leg.link = link
        assert leg.nursery is not None
        leg.nursery.start_soon(self._watch_link, leg)
        await self._apply(leg, leg.machine.user_call)

    async def _watch_link(self, leg: CallLeg) -> None:
        """The session with the peer ended (it went away, or its tor died): so did the call.

        No BYE can reach it; the call ends here at once, saying why, instead
        of waiting for the media to notice.
        """
        assert leg.link is not None
        await leg.link.wait_closed()
        if not leg.ended.is_set() and leg.machine.ended is None:  # not already over by SIP
            self._end_unsignalled(leg, "connection-lost", "the session with the peer ended")

    async def _timer(self, leg: CallLeg) -> None:
        while True:
            changed = leg.changed
            deadline = leg.machine.deadline
            with trio.move_on_at(math.inf if deadline is None else deadline) as scope:
                await changed.wait()
            if scope.cancelled_caught:
                await self._apply(leg, lambda: leg.machine.timer(trio.current_time()))

    async def _apply(self, leg: CallLeg, step: Callable[[], list[CallEvent]]) -> None:
        """Give the machine one input and carry out what it asks, one input at a time."""
        async with leg.lock:
            events = step()
            await self._perform(leg, events)
        leg.changed.set()
        leg.changed = trio.Event()
        self._announce(leg)

    def _announce(self, leg: CallLeg) -> None:
        state = leg.state
        if state in (ViewCallState.ACTIVE, ViewCallState.HELD) and not leg.answered.is_set():
            leg.started = self._wall_clock()
            leg.answered.set()
            if leg.pending_mute:
                leg.pending_mute = False
                leg.machine.user_mute(True)  # right after _apply: no other input between
            if leg.seconds is not None and leg.nursery is not None:
                leg.nursery.start_soon(self._hang_up_after, leg, leg.seconds)
        key = (state.value, leg.muted, leg.held, leg.transfer_to)
        # "ended" is published once, at teardown.
        if key != leg.published and state is not ViewCallState.ENDED:
            leg.published = key
            self._ctx.publish("call", leg.view())

    async def _hang_up_after(self, leg: CallLeg, seconds: float) -> None:
        await trio.sleep(seconds)
        try:
            await self.hang_up(leg)
        except LocalError as exc:
            log.info("could not hang up after %s s: %s", seconds, exc)

    async def _perform(self, leg: CallLeg, events: list[CallEvent]) -> None:
        # The token must be known before the 200 OK leaves, so the caller's
        # media stream always finds its call.
        for event in events:
            if isinstance(event, StartMedia):
                self._media.start(leg, event, self._callee_tag(leg, event.caller))
        for event in events:
            if isinstance(event, Send):
                await self._signals.send(leg, event.message)
            elif isinstance(event, IncomingCall):
                if self.settings.auto_answer and leg.nursery is not None:
                    leg.nursery.start_soon(self._auto_answer, leg)
            elif isinstance(event, UpdateMedia):
                leg.direction = event.direction
                self._media.apply_direction(leg)
            elif isinstance(event, MuteChanged):
                self._media.apply_direction(leg)
            elif isinstance(event, StopMedia):
                leg.play_out = event.play_out
                leg.stop_media.set()
            elif isinstance(event, TransferRequested):
                if leg.nursery is not None:
                    leg.nursery.start_soon(self._transfer, leg, event.target)
            elif isinstance(event, TransferProgress):
                leg.transfer = event.status
                self._ctx.publish("call", leg.view())
            elif isinstance(event, Ended):
                leg.ended.set()

    async def _received(self, leg: CallLeg, message: SignalEvent) -> None:
        await self._apply(leg, lambda: leg.machine.received(message))

    # -- SIP in ------------------------------------------------------------------

    def _leg_of(self, link: PeerLink, call_id: str) -> CallLeg | None:
        leg = self._legs.get(call_id)
        if leg is None or leg.peer_key != link.peer_public_key:
            return None
        return leg

    async def on_sip(self, link: PeerLink, event: SipEvent) -> None:
        """INVITE, ACK, BYE, CANCEL, REFER and NOTIFY (Event: refer) from a peer."""
        if isinstance(event, AckReceived | InviteCancelled):
            leg = self._leg_of(link, event.request.call_id)
            if leg is not None:
                await self._received(leg, Ack() if isinstance(event, AckReceived) else Cancel())
            return
        if not isinstance(event, RequestReceived):
            return
        request = event.request
        if request.method == "INVITE" and event.dialog is None:
            await self._incoming_invite(link, request)
            return
        leg = self._leg_of(link, request.call_id)
        if leg is None:
            await link.respond(request, 481)
            return
        try:
            message, method = signal_of(request)
        except RemoteProtocolError as exc:
            log.info("a call refused a %s: %s", request.method, exc)
            code = 488 if request.method == "INVITE" else 400
            await link.respond(request, code)
            return
        leg.server_requests[method] = request
        await self._received(leg, message)

    async def _incoming_invite(self, link: PeerLink, request: Request) -> None:
        peer_key = link.peer_public_key
        peer = Address(peer_key).text
        call_id = request.call_id
        if not 0 < len(call_id) <= MAX_CALL_ID or call_id in self._legs:
            await link.respond(request, 400, "Bad Call-ID")
            return
        if not await self._ctx.db(self.may_ring, peer):
            log.info("refused a call from someone who is not a contact")
            await link.respond(request, 403, "Forbidden")
            return
        if self._nursery is None:
            await link.respond(request, 480)
            return
        if len(self._legs) >= self.settings.max_calls:
            await link.respond(request, 486)
            return
        try:
            offer = SessionDescription.parse(request.body)
        except RemoteProtocolError as exc:
            log.info("refused a call offer: %s", exc)
            await link.respond(request, 488)
            return
        leg = CallLeg(
            call_id=call_id, peer_key=peer_key, outgoing=False, machine=self._machine(peer_key)
        )
        leg.link = link
        leg.server_requests[Method.INVITE] = request
        self._legs[call_id] = leg
        await self._nursery.start(self._run_leg, leg)
        await self._received(leg, Invite(offer=offer))

    async def _auto_answer(self, leg: CallLeg) -> None:
        s = self.settings
        try:
            audio = open_audio(AudioChoice(play=s.play, record=s.record))
        except LocalError as exc:
            log.warning("auto-answer goes on without audio: %s", exc)
            audio = silent_audio(f"silence ({exc})")
        try:
            await self._answer(leg, audio)
        except LocalError as exc:
            log.info("could not auto-answer: %s", exc)  # e.g. the caller gave up meanwhile

    async def _transfer(self, leg: CallLeg, target: str) -> None:
        """The peer asked us to call ``target`` (blind transfer): ask the user, then report."""
        status, reason = 603, "Declined"
        try:
            if not self.may_transfer_to(target):
                status, reason = 403, "Forbidden"
                log.info("refused a transfer to someone who is not a contact")
            elif await self._consent(leg, target):
                status, reason = await self._follow_transfer(leg, target)
        except AnonsipError as exc:
            log.info("a transfer failed: %s", exc)
            status, reason = 503, "Service Unavailable"
        try:
            await self._apply(leg, lambda: leg.machine.transfer_progress(status, reason))
        except LocalError as exc:
            log.info("could not report the transfer: %s", exc)

    async def _consent(self, leg: CallLeg, target: str) -> bool:
        leg.consent, leg.consented, leg.transfer_to = trio.Event(), False, target
        self._announce(leg)
        try:
            with trio.move_on_after(CONSENT_TIMEOUT_S):
                await leg.consent.wait()
        finally:
            leg.consent, leg.transfer_to = None, ""
            self._announce(leg)
        return leg.consented

    async def _follow_transfer(self, leg: CallLeg, target: str) -> tuple[int, str]:
        await self._apply(leg, lambda: leg.machine.transfer_progress(100, "Trying"))
        choice = leg.audio.choice if leg.audio is not None else AudioChoice()
        audio = open_audio(choice)
        # The microphone stays as the user left it: a muted or held call's
        # transfer does not open it to someone new.
        silent = leg.machine.muted or leg.machine.local_hold
        try:
            new = await self.place_call(target, audio=audio, muted=silent)
        except BaseException:
            audio.close()
            raise
        async with trio.open_nursery() as race:

            async def outcome(event: trio.Event) -> None:
                await event.wait()
                race.cancel_scope.cancel()

            race.start_soon(outcome, new.answered)
            race.start_soon(outcome, new.ended)
        if new.answered.is_set():
            return 200, "OK"
        ended = new.machine.ended
        return (ended.status if ended and ended.status else 503), ""

    # -- media -------------------------------------------------------------------

    def _callee_tag(self, leg: CallLeg, caller: bool) -> str:
        if caller:
            assert leg.dialog is not None
            return leg.dialog.id.remote_tag
        invite = leg.server_requests.get(Method.INVITE)
        assert leg.link is not None
        assert invite is not None
        return leg.link.endpoint.local_tag(invite)

    async def _media_ended(self, leg: CallLeg, ended: MediaEnded) -> None:
        """The media stopped without our hang-up: hang up the call too, with a BYE."""
        if leg.stop_media.is_set() or leg.ended.is_set():
            return
        log.info("a call's media ended: %s", ended.detail)
        if ended.reason is EndReason.FINISHED:
            # The peer ended its media; its BYE normally follows on the other circuit.
            with trio.move_on_after(PEER_BYE_GRACE_S):
                await leg.ended.wait()
            reason = "remote-hung-up"
        else:
            reason = "media-failed"
        if leg.ended.is_set() or leg.stop_media.is_set():
            return
        try:
            await self.hang_up(leg, reason=reason, detail=ended.detail)
        except LocalError as exc:
            log.info("a call could not hang up: %s", exc)

    async def on_media(self, stream: trio.abc.Stream) -> None:
        await self._media.serve(stream)
