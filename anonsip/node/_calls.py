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
    Direction,
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
    method_of,
    request_for,
    response_parts,
    signal_of,
)
from anonsip.call import Response as CallResponse
from anonsip.control import (
    AnswerArgs,
    AudioDevicesView,
    CallArgs,
    CallIdArgs,
    CallStatsView,
    CallView,
    DeclineCallArgs,
    HoldArgs,
    MuteArgs,
    NoArgs,
    TransferAnswerArgs,
    TransferArgs,
)
from anonsip.control import CallDirection as ViewDirection
from anonsip.control import CallState as ViewCallState
from anonsip.identity import Address
from anonsip.media import CallStatistics, JitterPolicy
from anonsip.media.io import (
    AudioChoice,
    CallAudio,
    EndReason,
    GatedSink,
    MediaCall,
    MediaEnded,
    MediaParams,
    audio_device_names,
    open_audio,
    silent_audio,
)
from anonsip.node._call_media import MediaDoor, dial_media, media_context, media_keys, media_token
from anonsip.node._context import NodeContext
from anonsip.node._link import LinkBroken, PeerLink, RequestTimedOut
from anonsip.node._service import NodeService, OperationHandler
from anonsip.sip import (
    AckReceived,
    Dialog,
    DialogId,
    InviteCancelled,
    Request,
    RequestReceived,
    SipEvent,
    bye_request,
)
from anonsip.sip import Response as SipResponse
from anonsip.store import ContactState

__all__ = ["CallLeg", "CallService", "CallSettings", "stats_view"]

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


def stats_view(s: CallStatistics, *, call_id: str = "", peer: str = "") -> CallStatsView:
    """A call's figures as clients read them."""

    def r(value: float | None, digits: int = 1) -> float | None:
        return None if value is None else round(value, digits)

    return CallStatsView(
        call_id=call_id,
        peer=peer,
        duration_s=r(s.duration_s),
        round_trip_ms=r(s.round_trip_ms),
        jitter_ms=r(s.jitter_ms),
        playout_delay_ms=r(s.playout_delay_ms),
        target_delay_ms=r(s.target_delay_ms),
        concealed_frames=s.concealed_frames,
        played_frames=s.played_frames,
        received_frames=s.received_frames,
        sent_frames=s.sent_frames,
        late_frames=s.late_frames,
        dropped_frames=s.dropped_frames + s.send_dropped_frames,
        bitrate=round(s.send_bitrate_bps),
        wire_bitrate=round(s.wire_bitrate_bps),
        mos=r(s.mos_estimate, 2),
    )


class CallLeg:
    """One call from this side: its machine, its SIP dialog and its media."""

    def __init__(
        self,
        *,
        call_id: str,
        peer_key: bytes,
        outgoing: bool,
        machine: Call,
        audio: CallAudio | None = None,
        seconds: float | None = None,
    ) -> None:
        self.call_id = call_id  # also the SIP Call-ID of its dialog
        self.peer_key = peer_key
        self.peer = Address(peer_key).text
        self.outgoing = outgoing
        self.machine = machine
        self.audio = audio
        self.seconds = seconds
        self.link: PeerLink | None = None
        self.invite: Request | None = None  # the INVITE we sent
        self.dialog: Dialog | None = None
        self.server_requests: dict[Method, Request] = {}  # received, not answered yet
        self.lock = trio.Lock()  # one input at a time reaches the machine
        self.changed = trio.Event()
        self.ended = trio.Event()
        self.answered = trio.Event()
        self.stop_media = trio.Event()
        self.media_done = trio.Event()
        self.media: MediaCall | None = None
        self.media_running = False
        self.gate: GatedSink | None = None
        self.direction = Direction.SENDRECV
        self.token: bytes | None = None
        self.started: float | None = None  # wall-clock time it was answered
        self.reason: str | None = None  # overrides the machine's end reason
        self.detail = ""
        self.transfer: int | None = None  # status of the transfer we asked for
        self.transfer_to = ""  # the peer asks us to call this address
        self.consent: trio.Event | None = None
        self.consented = False
        self.pending_mute = False
        self.final_stats: CallStatsView | None = None
        self.published: tuple[str, bool, bool, str] | None = None
        self.nursery: trio.Nursery | None = None

    @property
    def state(self) -> ViewCallState:
        m = self.machine
        if self.ended.is_set() or m.state is CallState.ENDED:
            return ViewCallState.ENDED
        if m.state in (CallState.IDLE, CallState.CALLING, CallState.GLARE_BACKOFF):
            return ViewCallState.CALLING
        if m.state in (CallState.RINGBACK, CallState.INCOMING):
            return ViewCallState.RINGING
        if m.state in (CallState.CANCELLING, CallState.TERMINATING):
            return ViewCallState.ENDING
        return ViewCallState.HELD if self.held else ViewCallState.ACTIVE

    @property
    def held(self) -> bool:
        return self.machine.local_hold or self.machine.remote_hold

    @property
    def end_reason(self) -> str:
        if self.reason is not None:
            return self.reason
        ended = self.machine.ended
        return ended.reason.value if ended is not None else "failed"

    @property
    def muted(self) -> bool:
        return self.machine.muted or self.pending_mute

    def view(self, *, with_stats: bool = False) -> CallView:
        state = self.state
        stats = None
        if with_stats:
            stats = self.final_stats
            if self.media is not None:
                stats = stats_view(self.media.statistics(), call_id=self.call_id, peer=self.peer)
        return CallView(
            call_id=self.call_id,
            peer=self.peer,
            direction=ViewDirection.OUT if self.outgoing else ViewDirection.IN,
            state=state,
            started=self.started,
            muted=self.muted,
            held=self.held,
            reason=self.end_reason if state is ViewCallState.ENDED else "",
            detail=self.detail if state is ViewCallState.ENDED else "",
            transfer=self.transfer,
            transfer_to=self.transfer_to,
            stats=stats,
        )


def _choice(args: CallArgs | AnswerArgs) -> AudioChoice:
    def path(text: str | None) -> Path | None:
        return None if text is None else Path(text).expanduser()

    return AudioChoice(
        play=path(args.play),
        record=path(args.record),
        record_rate=args.record_rate,
        input_device=args.input_device,
        output_device=args.output_device,
    )


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
        self._door = MediaDoor()
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
        legs = [leg for leg in self._legs.values() if not leg.ended.is_set()]
        async with trio.open_nursery() as nursery:
            for leg in legs:
                nursery.start_soon(self._goodbye, leg)
        for leg in legs:
            leg.reason = leg.reason or "hung-up"
            leg.stop_media.set()
        for leg in legs:
            if leg.media_running:
                await leg.media_done.wait()

    async def _goodbye(self, leg: CallLeg) -> None:
        """Tell the peer (and wait for its answer, so the goodbye is not cut off)."""
        link = leg.link
        if link is None or not link.is_open:
            return
        try:
            if leg.dialog is not None and leg.machine.state is not CallState.INCOMING:
                await link.request(bye_request(link.endpoint, leg.dialog))
            elif leg.invite is not None:
                await link.cancel(leg.invite)
            elif (invite := leg.server_requests.get(Method.INVITE)) is not None:
                await link.respond(invite, 480)
        except (AnonsipError, trio.BrokenResourceError) as exc:
            log.info("could not tell the peer the call ended: %s", exc)

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
        audio = open_audio(_choice(args))
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
        await self._answer(leg, open_audio(_choice(args)))

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
                task_status.started()
                await leg.ended.wait()
                leg.stop_media.set()
                if leg.media_running:
                    with trio.move_on_after(5):
                        await leg.media_done.wait()
                nursery.cancel_scope.cancel()
        finally:
            if leg.token is not None:
                self._door.forget(leg.token)
            if leg.audio is not None:
                leg.audio.close()
            self._legs.pop(leg.call_id, None)
            leg.ended.set()
            view = leg.view(with_stats=True)
            self.recent.append(view)
            self._ctx.publish("call", view)
            log.info("a call ended: %s %s", leg.end_reason, leg.detail)

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
        await self._apply(leg, leg.machine.user_call)

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
                self._start_media(leg, event)
        for event in events:
            if isinstance(event, Send):
                await self._send(leg, event.message)
            elif isinstance(event, IncomingCall):
                if self.settings.auto_answer and leg.nursery is not None:
                    leg.nursery.start_soon(self._auto_answer, leg)
            elif isinstance(event, UpdateMedia):
                leg.direction = event.direction
                self._apply_direction(leg)
            elif isinstance(event, MuteChanged):
                self._apply_direction(leg)
            elif isinstance(event, StopMedia):
                leg.stop_media.set()
            elif isinstance(event, TransferRequested):
                if leg.nursery is not None:
                    leg.nursery.start_soon(self._transfer, leg, event.target)
            elif isinstance(event, TransferProgress):
                leg.transfer = event.status
                self._ctx.publish("call", leg.view())
            elif isinstance(event, Ended):
                leg.ended.set()

    # -- SIP out -----------------------------------------------------------------

    async def _send(self, leg: CallLeg, message: SignalEvent) -> None:
        link = leg.link
        assert link is not None, "the machine only signals once the link exists"
        try:
            if isinstance(message, CallResponse):
                await self._respond(leg, link, message)
            elif isinstance(message, Ack):
                pass  # the endpoint ACKs a 2xx itself (RFC 3261 13.2.2.4)
            elif isinstance(message, Cancel):
                if leg.invite is not None:
                    await link.cancel(leg.invite)
            else:
                request, method = request_for(
                    link.endpoint, message, call_id=leg.call_id, dialog=leg.dialog
                )
                if method is Method.INVITE and leg.invite is None:
                    leg.invite = request
                assert leg.nursery is not None
                leg.nursery.start_soon(self._transact, leg, link, request, method)
        except (AnonsipError, trio.BrokenResourceError) as exc:
            # Sending failed: the link is gone or the dialog ended. A request
            # fails with a response the machine understands; an answer is lost.
            log.info("a call could not send %s: %s", type(message).__name__, exc)
            failed = method_of(message)
            if failed is not None and leg.nursery is not None:
                leg.detail = leg.detail or str(exc)
                leg.nursery.start_soon(self._received, leg, CallResponse(status=503, method=failed))

    async def _respond(self, leg: CallLeg, link: PeerLink, message: CallResponse) -> None:
        if message.method is Method.CANCEL:
            return  # the endpoint answered the CANCEL, and the INVITE with 487 (RFC 3261 9.2)
        request = leg.server_requests.get(message.method)
        if request is None:
            return
        if message.status >= 200:
            del leg.server_requests[message.method]
        if message.method is Method.INVITE and message.status == 487:
            return  # already sent by the endpoint with the CANCEL's 200
        headers, body = response_parts(message)
        response = await link.respond(
            request, message.status, message.reason or None, headers=headers, body=body
        )
        if message.method is Method.INVITE and message.status < 300:
            leg.dialog = link.endpoint.dialog_of_response(response) or leg.dialog

    async def _transact(
        self, leg: CallLeg, link: PeerLink, request: Request, method: Method
    ) -> None:
        """One client transaction: provisional and final responses go back to the machine."""
        nursery = leg.nursery
        assert nursery is not None

        def provisional(response: SipResponse) -> None:
            if response.status_code > 100:
                nursery.start_soon(
                    self._received, leg, CallResponse(status=response.status_code, method=method)
                )

        try:
            response = await link.request(request, on_provisional=provisional)
        except (RequestTimedOut, LinkBroken) as exc:
            leg.detail = leg.detail or str(exc)
            status = 408 if isinstance(exc, RequestTimedOut) else 503
            await self._received(leg, CallResponse(status=status, method=method))
            return
        answer = None
        if method is Method.INVITE and response.is_success:
            if response.body:
                try:
                    answer = SessionDescription.parse(response.body)
                except RemoteProtocolError as exc:
                    leg.detail = str(exc)  # no answer: the machine hangs up (488)
            if request.to.tag is None:
                leg.dialog = link.endpoint.dialog(
                    DialogId(
                        call_id=request.call_id,
                        local_tag=request.from_.tag or "",
                        remote_tag=response.to.tag or "",
                    )
                )
        await self._received(
            leg, CallResponse(status=response.status_code, method=method, answer=answer)
        )

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

    def _start_media(self, leg: CallLeg, start: StartMedia) -> None:
        if leg.media_running or leg.nursery is None or leg.link is None:
            return
        context = media_context(leg.call_id, self._callee_tag(leg, start.caller))
        leg.media_running = True
        leg.direction = start.direction
        leg.token = media_token(leg.link, context)
        if not start.caller:
            self._door.expect(leg.token)
        leg.nursery.start_soon(self._run_media, leg, start, context)

    def _apply_direction(self, leg: CallLeg) -> None:
        if leg.media is not None:
            # Holding someone stops our microphone too: RFC 3264's sendonly
            # would play it to them, which is not what a user means by hold.
            m = leg.machine
            silent = m.muted or leg.pending_mute or m.local_hold
            leg.media.set_muted(silent or not leg.direction.sends)
        if leg.gate is not None:
            leg.gate.open = leg.direction.receives

    async def _open_media_stream(self, leg: CallLeg, caller: bool) -> trio.abc.Stream:
        assert leg.token is not None
        if caller:
            return await dial_media(
                self._ctx.links.open_media, leg.peer_key, leg.token, timeout=MEDIA_OPEN_TIMEOUT_S
            )
        with trio.fail_after(self.settings.media_wait_s):
            return await self._door.wait_stream(leg.token)

    async def _run_media(self, leg: CallLeg, start: StartMedia, context: str) -> None:
        ended: MediaEnded | None = None
        try:
            assert leg.link is not None
            params = MediaParams(
                sample_rate=start.sample_rate,
                frame_ms=start.frame_ms,
                bitrate=start.bitrate,
                jitter=JitterPolicy(frame_ms=start.frame_ms),
            )
            keys = media_keys(leg.link, context, caller=start.caller)
            stream = await self._open_media_stream(leg, start.caller)
            audio = leg.audio or silent_audio("silence")
            leg.audio = audio
            gate = GatedSink(audio.sink)
            try:
                media = MediaCall(stream, keys=keys, source=audio.source, sink=gate, params=params)
            except BaseException:
                await trio.aclose_forcefully(stream)
                raise
            async with media:
                leg.media, leg.gate = media, gate
                self._apply_direction(leg)
                async with trio.open_nursery() as helpers:
                    helpers.start_soon(self._stats_loop, leg, media)
                    helpers.start_soon(self._hang_up_media_on_stop, leg, media)
                    ended = await media.wait_ended()
                    helpers.cancel_scope.cancel()
                leg.final_stats = stats_view(media.statistics(), call_id=leg.call_id, peer=leg.peer)
        except trio.TooSlowError:
            detail = "the media stream did not " + (
                "open in time" if start.caller else "arrive in time"
            )
            ended = MediaEnded(reason=EndReason.BROKEN, detail=detail)
        except (AnonsipError, trio.BrokenResourceError, OSError) as exc:
            ended = MediaEnded(reason=EndReason.BROKEN, detail=f"the media stream failed: {exc}")
        finally:
            leg.media = None
            leg.gate = None
            if leg.token is not None:
                self._door.release(leg.token)
            leg.media_done.set()
        if ended is not None:
            await self._media_ended(leg, ended)

    async def _hang_up_media_on_stop(self, leg: CallLeg, media: MediaCall) -> None:
        await leg.stop_media.wait()
        await media.hang_up()

    async def _stats_loop(self, leg: CallLeg, media: MediaCall) -> None:
        while True:
            await trio.sleep(STATS_INTERVAL_S)
            self._ctx.publish(
                "call.stats", stats_view(media.statistics(), call_id=leg.call_id, peer=leg.peer)
            )

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
        await self._door.serve(stream)
