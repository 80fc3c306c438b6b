"""Voice calls on a node: RFC 3261 INVITE dialogs on the peer's link, sealed Opus beside it.

``CallService`` is the thin trio adapter of the sans-IO call machine
(``anonsip.call.Call``, one per call). It feeds each machine the requests
and responses that arrive on the peer's ``PeerLink``, the user's control
ops and its timer, and turns what the machine asks for into SIP (INVITE,
BYE, CANCEL, re-INVITE for hold per RFC 3264, REFER with sipfrag NOTIFY per
RFC 3515; the endpoint itself ACKs 2xx and answers CANCEL) and into
``anonsip.media.MediaCall``.

Media runs on a second onion stream on its own circuit: after the 200 OK
the caller dials the callee's onion service again (``open_media``) and sends
a 16-byte token, the first bytes of the secure session's export key for
``anonsip-media-token || Call-ID``. Only the authenticated peer of that
session can compute it; the callee attaches the stream to the call the
token names and closes a stream whose token it does not know. The media
keys, per call and direction, come from the same session
(``derive_media_keys`` over its export key ``anonsip-media-key``).

A call lasts until someone hangs up: a WAV that runs out goes on as
silence, and hold keeps frames flowing (encoded silence), so the stream's
size and timing say nothing about either. When the media stream breaks, or
the peer's media ends without its BYE following, this side hangs up with a
BYE, so both sides end the call cleanly. Only contacts that are not blocked
can make the phone ring (others get 403); at most ``max_calls`` calls exist
at once (more INVITEs get 486).

Audio: with ``play`` / ``record`` WAV files (16-bit mono 16 kHz), the other
direction is silence / discarded. Without either, the sound card: a user's
``call`` or ``answer`` fails at once with the device list if there is none
(nothing is dialled, an incoming call keeps ringing), while auto-answer on a
headless node goes on with silence and logs why.
"""

from __future__ import annotations

import collections
import logging
import math
import random
import secrets
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import trio

from anonsip._errors import AnonsipError, LocalError, RemoteProtocolError
from anonsip.call import (
    Ack,
    Bye,
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
    Notify,
    Refer,
    Send,
    SessionDescription,
    SignalEvent,
    StartMedia,
    StopMedia,
    TransferProgress,
    TransferRequested,
    UpdateMedia,
)
from anonsip.call import Response as CallResponse
from anonsip.identity import Address, InvalidAddress
from anonsip.media import (
    AudioSink,
    AudioSource,
    CallStatistics,
    DeviceSink,
    DeviceSource,
    JitterPolicy,
    MediaCall,
    MediaEnded,
    MediaParams,
    SilenceSource,
    WavSink,
    WavSource,
    derive_media_keys,
)
from anonsip.media import EndReason as MediaEndReason
from anonsip.node._link import LinkBroken, PeerLink, RequestTimedOut
from anonsip.sip import (
    AckReceived,
    Dialog,
    DialogId,
    InviteCancelled,
    Request,
    RequestReceived,
    SipEvent,
    Uri,
    bye_request,
    invite_request,
    refer_request,
    reinvite_request,
)
from anonsip.sip import Response as SipResponse
from anonsip.store import ContactState

if TYPE_CHECKING:
    from anonsip.node._node import Node

__all__ = [
    "CallAudio",
    "CallLeg",
    "CallService",
    "CallSettings",
    "Dialer",
    "install_calls",
    "media_token",
    "open_audio",
]

log = logging.getLogger(__name__)

MEDIA_TOKEN_LABEL = b"anonsip-media-token"
MEDIA_KEY_LABEL = b"anonsip-media-key"
TOKEN_BYTES = 16
MAX_CALLS = 4
MAX_CALL_ID = 128
MEDIA_OPEN_TIMEOUT_S = 45.0  # caller: dial the media stream (a new rendezvous circuit)
MEDIA_TOKEN_READ_S = 15.0  # callee: a media stream must name its call this fast
PEER_BYE_GRACE_S = 3.0  # the peer's media ended: its BYE is usually just behind
SHUTDOWN_BYE_S = 3.0
STATS_INTERVAL_S = 1.0
MAX_SIPFRAG = 256
SDP = "application/sdp"
SIPFRAG = "message/sipfrag;version=2.0"

Publish = Callable[[str, dict[str, Any]], None]
SipHandler = Callable[[PeerLink, SipEvent], Awaitable[None]]
Handler = Callable[[Mapping[str, Any]], Awaitable[Any]]


class CallsNotReady(AnonsipError):
    """The node is still starting; calls work once it is reachable."""


class Dialer(Protocol):
    """How the service reaches a peer (the node's ``LinkTable``)."""

    async def link_to(self, peer: bytes) -> PeerLink: ...

    async def open_media(self, peer: bytes) -> trio.abc.Stream: ...


@dataclass(frozen=True, kw_only=True)
class CallSettings:
    auto_answer: bool = False
    play: Path | None = None  # what auto-answered calls send
    record: Path | None = None  # where auto-answered calls are recorded
    max_calls: int = MAX_CALLS
    ring_timeout_s: float = 60.0
    media_wait_s: float = 45.0  # callee: how long the caller may take to open the media stream
    preferences: MediaPreferences = field(default_factory=MediaPreferences)


def media_token(link: PeerLink, call_id: str) -> bytes:
    """The token that names ``call_id``'s media stream; only the session's two ends know it."""
    return link.session.export_key(MEDIA_TOKEN_LABEL + call_id.encode())[:TOKEN_BYTES]


# -- audio -------------------------------------------------------------------------


class _PaddedSource:
    """``inner``, then silence: a call lasts until someone hangs up, not until a file ends."""

    def __init__(self, inner: WavSource) -> None:
        self.inner = inner
        self.sample_rate = inner.sample_rate
        self.frame_samples = inner.frame_samples
        self._silence: SilenceSource | None = None

    async def read_frame(self) -> bytes | None:
        if self._silence is None:
            frame = await self.inner.read_frame()
            if frame is not None:
                return frame
            self._silence = SilenceSource(
                sample_rate=self.sample_rate, frame_ms=self.inner.frame_ms
            )
        return await self._silence.read_frame()


class _DiscardSink:
    async def write_frame(self, pcm: bytes) -> None:
        await trio.lowlevel.checkpoint()


class _GatedSink:
    """Plays silence while the peer holds us or we hold it (the frames keep coming)."""

    def __init__(self, inner: AudioSink) -> None:
        self.inner = inner
        self.open = True

    async def write_frame(self, pcm: bytes) -> None:
        await self.inner.write_frame(pcm if self.open else bytes(len(pcm)))


@dataclass(eq=False)
class CallAudio:
    """One call's microphone and speaker (or files); ``close`` releases them."""

    source: AudioSource
    sink: AudioSink
    description: str
    play: Path | None = None
    record: Path | None = None
    closers: list[Callable[[], None]] = field(default_factory=list)

    def close(self) -> None:
        for close in self.closers:
            close()
        self.closers.clear()


def silent_audio(why: str) -> CallAudio:
    return CallAudio(source=SilenceSource(), sink=_DiscardSink(), description=why)


def open_audio(
    play: Path | None, record: Path | None, *, sample_rate: int = 16000, frame_ms: int = 20
) -> CallAudio:
    """WAV files if either is given (the other side silence / discarded), else the sound card.

    Raises ``LocalError`` with a message for the user (unreadable WAV, no
    sound device: the message lists the devices).
    """
    if play is None and record is None:
        source = DeviceSource(sample_rate=sample_rate, frame_ms=frame_ms)
        try:
            sink = DeviceSink(sample_rate=sample_rate, frame_ms=frame_ms)
        except BaseException:
            source.close()
            raise
        return CallAudio(
            source=source,
            sink=sink,
            description="sound card",
            closers=[source.close, sink.close],
        )
    closers: list[Callable[[], None]] = []
    audio_source: AudioSource = SilenceSource(sample_rate=sample_rate, frame_ms=frame_ms)
    if play is not None:
        wav = WavSource(play, sample_rate=sample_rate, frame_ms=frame_ms)
        closers.append(wav.close)
        audio_source = _PaddedSource(wav)
    audio_sink: AudioSink = _DiscardSink()
    if record is not None:
        try:
            recorder = WavSink(record, sample_rate=sample_rate)
        except BaseException:
            for close in closers:
                close()
            raise
        closers.append(recorder.close)
        audio_sink = recorder
    return CallAudio(
        source=audio_source,
        sink=audio_sink,
        description=f"play {play or 'silence'}, record {record or 'nothing'}",
        play=play,
        record=record,
        closers=closers,
    )


def stats_view(s: CallStatistics) -> dict[str, Any]:
    """The ``call.stats`` figures (names the TUI reads: playout_delay_ms, concealed_frames, mos)."""

    def r(value: float | None, digits: int = 1) -> float | None:
        return None if value is None else round(value, digits)

    return {
        "duration_s": r(s.duration_s),
        "round_trip_ms": r(s.round_trip_ms),
        "jitter_ms": r(s.jitter_ms),
        "playout_delay_ms": r(s.playout_delay_ms),
        "target_delay_ms": r(s.target_delay_ms),
        "concealed_frames": s.concealed_frames,
        "played_frames": s.played_frames,
        "received_frames": s.received_frames,
        "sent_frames": s.sent_frames,
        "late_frames": s.late_frames,
        "dropped_frames": s.dropped_frames + s.send_dropped_frames,
        "bitrate": round(s.send_bitrate_bps),
        "wire_bitrate": round(s.wire_bitrate_bps),
        "mos": r(s.mos_estimate, 2),
    }


# -- one call ----------------------------------------------------------------------


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
        self.media_arrived = trio.Event()
        self.media_done = trio.Event()
        self.media_stream: trio.abc.Stream | None = None
        self.media: MediaCall | None = None
        self.media_running = False
        self.gate: _GatedSink | None = None
        self.direction = Direction.SENDRECV
        self.token: bytes | None = None
        self.started: float | None = None  # wall-clock time it was answered
        self.reason: str | None = None  # overrides the machine's end reason
        self.detail = ""
        self.final_stats: dict[str, Any] | None = None
        self.published: tuple[str, bool, bool] | None = None
        self.nursery: trio.Nursery | None = None

    @property
    def state(self) -> str:
        """ringing / active / held / ended, as the TUI reads them (plus calling / ending)."""
        m = self.machine
        if self.ended.is_set() or m.state is CallState.ENDED:
            return "ended"
        if m.state in (CallState.IDLE, CallState.CALLING, CallState.GLARE_BACKOFF):
            return "calling"
        if m.state in (CallState.RINGBACK, CallState.INCOMING):
            return "ringing"
        if m.state in (CallState.CANCELLING, CallState.TERMINATING):
            return "ending"
        return "held" if m.local_hold or m.remote_hold else "active"

    @property
    def held(self) -> bool:
        return self.machine.local_hold or self.machine.remote_hold

    @property
    def end_reason(self) -> str:
        if self.reason is not None:
            return self.reason
        ended = self.machine.ended
        return ended.reason.value if ended is not None else "failed"

    def view(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "call_id": self.call_id,
            "peer": self.peer,
            "direction": "out" if self.outgoing else "in",
            "state": self.state,
            "started": self.started,
            "muted": self.machine.muted,
            "held": self.held,
        }
        if self.state == "ended":
            data["reason"] = self.end_reason
            if self.detail:
                data["detail"] = self.detail
        return data

    def stats(self) -> dict[str, Any]:
        if self.media is not None:
            return stats_view(self.media.statistics())
        return dict(self.final_stats or {})


# -- the service ---------------------------------------------------------------------


def _text(args: Mapping[str, Any], name: str, *, required: bool = True) -> str | None:
    value = args.get(name)
    if value is None and not required:
        return None
    if not isinstance(value, str) or not value:
        raise LocalError(f"'{name}' must be given as text")
    return value


def _path(args: Mapping[str, Any], name: str) -> Path | None:
    text = _text(args, name, required=False)
    return None if text is None else Path(text).expanduser()


def _bool(args: Mapping[str, Any], name: str, default: bool) -> bool:
    value = args.get(name, default)
    if not isinstance(value, bool):
        raise LocalError(f"'{name}' is true or false")
    return value


def parse_address(text: str) -> str:
    try:
        if text.lower().startswith("sip:"):
            return Address.from_sip_uri(text).text
        return Address.parse(text).text
    except InvalidAddress as exc:
        raise LocalError(f"'{text}' is not an address: {exc}") from exc


def _sipfrag_status(body: bytes) -> tuple[int, str]:
    """The status line of a message/sipfrag body (RFC 3420), e.g. ``SIP/2.0 200 OK``."""
    if len(body) > MAX_SIPFRAG:
        raise RemoteProtocolError("the transfer progress is too long")
    line = body.split(b"\r\n", 1)[0].split(b"\n", 1)[0]
    parts = line.decode("ascii", errors="replace").split(" ", 2)
    if len(parts) < 2 or parts[0] != "SIP/2.0" or not parts[1].isdigit() or len(parts[1]) != 3:
        raise RemoteProtocolError("the transfer progress is not a SIP status line")
    status = int(parts[1])
    if not 100 <= status <= 699:
        raise RemoteProtocolError("the transfer progress status is out of range")
    reason = parts[2] if len(parts) == 3 and parts[2].isprintable() else ""
    return status, reason[:64]


class CallService:
    """Every call of one node; ``run`` owns the nursery the calls and their media live in."""

    def __init__(
        self,
        *,
        dialer: Dialer,
        publish: Publish,
        own_public_key: bytes,
        settings: CallSettings | None = None,
        accepts: Callable[[str], bool] = lambda _address: True,
        resolve: Callable[[str], str] = parse_address,
        wall_clock: Callable[[], float] = time.time,
        rng: random.Random | None = None,
    ) -> None:
        self._dialer = dialer
        self._publish = publish
        self._own_key = own_public_key
        self.settings = settings or CallSettings()
        self._accepts = accepts
        self._resolve = resolve
        self._wall_clock = wall_clock
        self._rng = rng or random.SystemRandom()  # glare backoffs and SDP session ids
        self._legs: dict[str, CallLeg] = {}
        self._tokens: dict[bytes, CallLeg] = {}
        self._nursery: trio.Nursery | None = None
        self.notify_fallback: SipHandler | None = None  # NOTIFYs that are not ours (presence)
        self.recent: collections.deque[dict[str, Any]] = collections.deque(maxlen=8)

    # -- lifetime ----------------------------------------------------------------

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Serve calls until cancelled; then hang every call up before its media is cut."""
        calls_scope = trio.CancelScope(shield=True)  # the node's shutdown reaches calls last
        try:
            async with trio.open_nursery() as outer:
                await outer.start(self._hold_calls, calls_scope)
                task_status.started()
                try:
                    await trio.sleep_forever()
                finally:
                    with trio.CancelScope(shield=True), trio.move_on_after(SHUTDOWN_BYE_S):
                        await self._say_goodbye()
                    calls_scope.cancel()
        finally:
            self._nursery = None

    async def _hold_calls(
        self, scope: trio.CancelScope, *, task_status: trio.TaskStatus[None]
    ) -> None:
        with scope:
            async with trio.open_nursery() as nursery:
                self._nursery = nursery
                task_status.started()
                await trio.sleep_forever()

    async def _say_goodbye(self) -> None:
        """The node stops: BYE (or CANCEL, or 480) to every peer, then END on every media stream."""
        legs = list(self._legs.values())
        for leg in legs:
            link = leg.link
            if link is None or not link.is_open or leg.ended.is_set():
                continue
            try:
                if leg.dialog is not None and leg.machine.state is not CallState.INCOMING:
                    await link.send_only(bye_request(link.endpoint, leg.dialog))
                elif leg.invite is not None:
                    await link.cancel(leg.invite)
                elif (invite := leg.server_requests.get(Method.INVITE)) is not None:
                    await link.respond(invite, 480)
            except (AnonsipError, trio.BrokenResourceError) as exc:
                log.info("could not tell the peer the call ended: %s", exc)
            leg.reason = leg.reason or "hung-up"
            leg.stop_media.set()
        for leg in legs:
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

    def handlers(self) -> dict[str, Handler]:
        return {
            "call": self.op_call,
            "answer": self.op_answer,
            "call.decline": self.op_decline,
            "hangup": self.op_hangup,
            "call.mute": self.op_mute,
            "call.hold": self.op_hold,
            "call.transfer": self.op_transfer,
            "calls": self.op_calls,
        }

    async def op_call(self, args: Mapping[str, Any]) -> Any:
        peer = _text(args, "peer")
        assert peer is not None
        address = self._resolve(peer)
        seconds = args.get("seconds")
        if seconds is not None and (
            not isinstance(seconds, int | float) or not 0 < seconds <= 86400
        ):
            raise LocalError("'seconds' is a number of seconds from 0 to 86400")
        audio = open_audio(_path(args, "play"), _path(args, "record"))
        try:
            leg = await self.place_call(address, audio=audio, seconds=seconds)
        except BaseException:
            audio.close()
            raise
        return {"call_id": leg.call_id}

    async def place_call(
        self, address: str, *, audio: CallAudio, seconds: float | None = None
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
        leg = CallLeg(
            call_id=secrets.token_hex(16),
            peer_key=peer_key,
            outgoing=True,
            machine=self._machine(peer_key),
            audio=audio,
            seconds=seconds,
        )
        self._legs[leg.call_id] = leg
        await nursery.start(self._run_leg, leg)
        return leg

    def _pick(self, args: Mapping[str, Any], *, ringing_in: bool = False) -> CallLeg:
        call_id = _text(args, "call_id", required=False)
        if call_id is not None:
            leg = self._legs.get(call_id)
            if leg is None:
                raise LocalError("there is no such call (it may have ended)")
            return leg
        legs = list(self._legs.values())
        if ringing_in:
            legs = [g for g in legs if not g.outgoing and g.state == "ringing"]
            if not legs:
                raise LocalError("no call is ringing")
            return legs[0]
        for wanted in ("active", "held", "ringing", "calling"):
            for leg in legs:
                if leg.state == wanted:
                    return leg
        raise LocalError("there is no call")

    async def op_answer(self, args: Mapping[str, Any]) -> Any:
        leg = self._pick(args, ringing_in=True)
        if leg.outgoing or leg.machine.state is not CallState.INCOMING:
            raise LocalError("that call is not ringing here")
        audio = open_audio(_path(args, "play"), _path(args, "record"))
        await self._answer(leg, audio)
        return None

    async def _answer(self, leg: CallLeg, audio: CallAudio) -> None:
        previous, leg.audio = leg.audio, audio
        try:
            await self._apply(leg, leg.machine.user_answer)
        except BaseException:
            leg.audio = previous
            audio.close()
            raise

    async def op_decline(self, args: Mapping[str, Any]) -> Any:
        leg = self._pick(args, ringing_in=True)
        busy = _bool(args, "busy", False)
        await self._apply(leg, lambda: leg.machine.user_decline(busy=busy))
        return None

    async def op_hangup(self, args: Mapping[str, Any]) -> Any:
        leg = self._pick(args)
        await self.hang_up(leg)
        return None

    async def hang_up(self, leg: CallLeg, *, reason: str | None = None, detail: str = "") -> None:
        if leg.ended.is_set():
            return
        if leg.machine.state is CallState.IDLE:  # still dialling: nothing was signalled
            self._end_unsignalled(leg, reason or "cancelled", detail)
            return
        if reason is not None:
            leg.reason, leg.detail = reason, detail
        await self._apply(leg, leg.machine.user_hangup)

    async def op_mute(self, args: Mapping[str, Any]) -> Any:
        leg = self._pick(args)
        muted = _bool(args, "muted", True)
        await self._apply(leg, lambda: leg.machine.user_mute(muted))
        return None

    async def op_hold(self, args: Mapping[str, Any]) -> Any:
        leg = self._pick(args)
        held = _bool(args, "held", True)
        await self._apply(leg, leg.machine.user_hold if held else leg.machine.user_resume)
        return None

    async def op_transfer(self, args: Mapping[str, Any]) -> Any:
        leg = self._pick(args)
        target = _text(args, "target")
        assert target is not None
        address = self._resolve(target)
        await self._apply(leg, lambda: leg.machine.user_transfer(address))
        return None

    async def op_calls(self, args: Mapping[str, Any]) -> Any:
        return [{**leg.view(), "stats": leg.stats()} for leg in self._legs.values()]

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
                self._tokens.pop(leg.token, None)
            if leg.audio is not None:
                leg.audio.close()
            self._legs.pop(leg.call_id, None)
            view = {**leg.view(), "state": "ended", "reason": leg.end_reason}
            if leg.final_stats:
                view["stats"] = leg.final_stats
            self.recent.append(view)
            self._publish("call", view)
            log.info("call %s… ended: %s %s", leg.call_id[:8], leg.end_reason, leg.detail)

    def _end_unsignalled(self, leg: CallLeg, reason: str, detail: str) -> None:
        leg.reason, leg.detail = reason, detail
        leg.ended.set()

    async def _dial(self, leg: CallLeg) -> None:
        try:
            link = await self._dialer.link_to(leg.peer_key)
        except (AnonsipError, trio.TooSlowError) as exc:
            self._end_unsignalled(leg, "unreachable", str(exc) or "the peer did not answer in time")
            return
        leg.link = link
        leg.token = media_token(link, leg.call_id)
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
        if state in ("active", "held") and not leg.answered.is_set():
            leg.started = self._wall_clock()
            leg.answered.set()
            if leg.seconds is not None and leg.nursery is not None:
                leg.nursery.start_soon(self._hang_up_after, leg, leg.seconds)
        key = (state, leg.machine.muted, leg.held)
        if key != leg.published and state != "ended":  # "ended" is published once, at teardown
            leg.published = key
            self._publish("call", leg.view())

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
                self._publish("call", {**leg.view(), "transfer": event.status})
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
                request, method = self._request_for(leg, link, message)
                assert leg.nursery is not None
                leg.nursery.start_soon(self._transact, leg, link, request, method)
        except (AnonsipError, trio.BrokenResourceError) as exc:
            # Sending failed: the link is gone or the dialog ended. A request
            # fails with a response the machine understands; an answer is lost.
            log.info("call %s…: could not send %s: %s", leg.call_id[:8], message, exc)
            failed = _method_of(message)
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
        headers: tuple[tuple[str, str], ...] = ()
        body = b""
        if message.answer is not None:
            headers, body = (("Content-Type", SDP),), message.answer.to_bytes()
        response = await link.respond(
            request, message.status, message.reason or None, headers=headers, body=body
        )
        if message.method is Method.INVITE and message.status < 300:
            leg.dialog = link.endpoint.dialog_of_response(response) or leg.dialog

    def _request_for(
        self, leg: CallLeg, link: PeerLink, message: SignalEvent
    ) -> tuple[Request, Method]:
        endpoint = link.endpoint
        if isinstance(message, Invite) and not message.reinvite:
            request = invite_request(endpoint, message.offer.to_bytes())
            request = request.with_replaced("Call-ID", leg.call_id)
            leg.invite = request
            return request, Method.INVITE
        dialog = leg.dialog
        if dialog is None:
            raise LocalError("the call has no dialog yet")
        if isinstance(message, Invite):
            return reinvite_request(endpoint, dialog, message.offer.to_bytes()), Method.INVITE
        if isinstance(message, Bye):
            return bye_request(endpoint, dialog), Method.BYE
        if isinstance(message, Refer):
            target = Uri.parse(Address.parse(message.target).sip_uri)
            return refer_request(endpoint, dialog, target), Method.REFER
        if isinstance(message, Notify):
            final = message.status >= 200
            state = "terminated;reason=noresource" if final else "active;expires=60"
            frag = f"SIP/2.0 {message.status} {message.reason}".strip().encode()
            headers = (
                ("Event", "refer"),
                ("Subscription-State", state),
                ("Content-Type", SIPFRAG),
            )
            return endpoint.create_in_dialog(dialog, "NOTIFY", headers=headers, body=frag), (
                Method.NOTIFY
            )
        raise LocalError(f"the call machine asked for an unknown message {message!r}")

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
        """The node hands us INVITE, ACK, BYE, CANCEL, REFER and NOTIFY from a peer."""
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
            if request.method == "NOTIFY" and self.notify_fallback is not None:
                await self.notify_fallback(link, event)
            else:
                await link.respond(request, 481)
            return
        try:
            message, method = self._signal_of(request)
        except RemoteProtocolError as exc:
            log.info("call %s…: refused a %s: %s", leg.call_id[:8], request.method, exc)
            code = 488 if request.method == "INVITE" else 400
            await link.respond(request, code)
            return
        leg.server_requests[method] = request
        await self._received(leg, message)

    def _signal_of(self, request: Request) -> tuple[SignalEvent, Method]:
        method = request.method
        if method == "INVITE":
            offer = SessionDescription.parse(request.body)
            return Invite(offer=offer, reinvite=True), Method.INVITE
        if method == "BYE":
            return Bye(), Method.BYE
        if method == "REFER":
            refer_to = request.refer_to
            if refer_to is None:
                raise RemoteProtocolError("a REFER without Refer-To")
            try:
                target = Address.from_sip_uri(str(refer_to.uri)).text
            except InvalidAddress as exc:
                raise RemoteProtocolError(f"the transfer target is not an address: {exc}") from exc
            return Refer(target=target), Method.REFER
        if method == "NOTIFY":
            status, reason = _sipfrag_status(request.body)
            return Notify(status=status, reason=reason), Method.NOTIFY
        raise RemoteProtocolError(f"{method} does not belong to a call")

    async def _incoming_invite(self, link: PeerLink, request: Request) -> None:
        peer_key = link.peer_public_key
        peer = Address(peer_key).text
        call_id = request.call_id
        if not 0 < len(call_id) <= MAX_CALL_ID or call_id in self._legs:
            await link.respond(request, 400, "Bad Call-ID")
            return
        if not self._accepts(peer):
            log.info("refused a call from %s…: not a contact", peer[:12])
            await link.respond(request, 403, "Not a contact")
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
            audio = open_audio(s.play, s.record)
        except LocalError as exc:
            log.warning("auto-answer goes on without audio: %s", exc)
            audio = silent_audio(f"silence ({exc})")
        try:
            await self._answer(leg, audio)
        except LocalError as exc:
            log.info("could not auto-answer: %s", exc)  # e.g. the caller gave up meanwhile

    async def _transfer(self, leg: CallLeg, target: str) -> None:
        """The peer asked us to call ``target`` (blind transfer); report how it goes."""
        status = 503
        try:
            await self._apply(leg, lambda: leg.machine.transfer_progress(100, "Trying"))
            old = leg.audio
            audio = open_audio(old.play if old else None, old.record if old else None)
            try:
                new = await self.place_call(target, audio=audio)
            except BaseException:
                audio.close()
                raise
            async with trio.open_nursery() as race:

                async def outcome(event: trio.Event) -> None:
                    await event.wait()
                    race.cancel_scope.cancel()

                race.start_soon(outcome, new.answered)
                race.start_soon(outcome, new.ended)
            ended = new.machine.ended
            status = (
                200 if new.answered.is_set() else (ended.status if ended and ended.status else 503)
            )
        except AnonsipError as exc:
            log.info("transfer to %s… failed: %s", target[:12], exc)
        try:
            await self._apply(leg, lambda: leg.machine.transfer_progress(status))
        except LocalError as exc:
            log.info("could not report the transfer: %s", exc)

    # -- media -------------------------------------------------------------------

    def _start_media(self, leg: CallLeg, start: StartMedia) -> None:
        if leg.media_running or leg.nursery is None or leg.link is None:
            return
        leg.media_running = True
        leg.direction = start.direction
        leg.token = media_token(leg.link, leg.call_id)
        if not start.caller:
            self._tokens[leg.token] = leg
        leg.nursery.start_soon(self._run_media, leg, start)

    def _apply_direction(self, leg: CallLeg) -> None:
        if leg.media is not None:
            # Holding someone stops our microphone too: RFC 3264's sendonly
            # would play it to them, which is not what a user means by hold.
            m = leg.machine
            leg.media.set_muted(m.muted or m.local_hold or not leg.direction.sends)
        if leg.gate is not None:
            leg.gate.open = leg.direction.receives

    async def _open_media_stream(self, leg: CallLeg, caller: bool) -> trio.abc.Stream:
        if caller:
            assert leg.token is not None
            with trio.fail_after(MEDIA_OPEN_TIMEOUT_S):
                stream = await self._dialer.open_media(leg.peer_key)
                try:
                    await stream.send_all(leg.token)
                except BaseException:
                    await trio.aclose_forcefully(stream)
                    raise
            return stream
        with trio.fail_after(self.settings.media_wait_s):
            await leg.media_arrived.wait()
        assert leg.media_stream is not None
        return leg.media_stream

    async def _run_media(self, leg: CallLeg, start: StartMedia) -> None:
        ended: MediaEnded | None = None
        try:
            assert leg.link is not None
            params = MediaParams(
                sample_rate=start.sample_rate,
                frame_ms=start.frame_ms,
                bitrate=start.bitrate,
                jitter=JitterPolicy(frame_ms=start.frame_ms),
            )
            keys = derive_media_keys(
                leg.link.session.export_key(MEDIA_KEY_LABEL), leg.call_id, caller=start.caller
            )
            stream = await self._open_media_stream(leg, start.caller)
            audio = leg.audio or silent_audio("silence")
            leg.audio = audio
            gate = _GatedSink(audio.sink)
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
                leg.final_stats = stats_view(media.statistics())
        except trio.TooSlowError:
            detail = "the media stream did not " + (
                "open in time" if start.caller else "arrive in time"
            )
            ended = MediaEnded(reason=MediaEndReason.BROKEN, detail=detail)
        except (AnonsipError, trio.BrokenResourceError, OSError) as exc:
            ended = MediaEnded(
                reason=MediaEndReason.BROKEN, detail=f"the media stream failed: {exc}"
            )
        finally:
            leg.media = None
            leg.gate = None
            leg.media_done.set()
        if ended is not None:
            await self._media_ended(leg, ended)

    async def _hang_up_media_on_stop(self, leg: CallLeg, media: MediaCall) -> None:
        await leg.stop_media.wait()
        await media.hang_up()

    async def _stats_loop(self, leg: CallLeg, media: MediaCall) -> None:
        while True:
            await trio.sleep(STATS_INTERVAL_S)
            self._publish(
                "call.stats",
                {"call_id": leg.call_id, "peer": leg.peer, **stats_view(media.statistics())},
            )

    async def _media_ended(self, leg: CallLeg, ended: MediaEnded) -> None:
        """The media stopped without our hang-up: hang up the call too, with a BYE."""
        if leg.stop_media.is_set() or leg.ended.is_set():
            return
        log.info("call %s…: media ended: %s", leg.call_id[:8], ended.detail)
        if ended.reason is MediaEndReason.FINISHED:
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
            log.info("call %s…: could not hang up: %s", leg.call_id[:8], exc)

    async def on_media(self, stream: trio.abc.Stream) -> None:
        """A stream that reached our onion service marked as media: find its call by token."""
        token = b""
        try:
            with trio.move_on_after(MEDIA_TOKEN_READ_S):
                while len(token) < TOKEN_BYTES:
                    chunk = await stream.receive_some(TOKEN_BYTES - len(token))
                    if not chunk:
                        break
                    token += chunk
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            token = b""
        leg = self._tokens.pop(token, None) if len(token) == TOKEN_BYTES else None
        if leg is None or leg.media_arrived.is_set():
            log.info("refused a media stream that names no call")
            await trio.aclose_forcefully(stream)
            return
        leg.media_stream = stream
        leg.media_arrived.set()
        # The onion service closes the stream when this returns: hold it for the call.
        await leg.media_done.wait()


def _method_of(message: SignalEvent) -> Method | None:
    if isinstance(message, Invite):
        return Method.INVITE
    if isinstance(message, Bye):
        return Method.BYE
    if isinstance(message, Refer):
        return Method.REFER
    if isinstance(message, Notify):
        return Method.NOTIFY
    return None


# -- wiring into the node ------------------------------------------------------------


class _NodeDialer:
    def __init__(self, node: Node) -> None:
        self._node = node

    def _links(self) -> Any:
        if self._node.links is None:
            raise CallsNotReady("the node is still starting; try the call again in a moment")
        return self._node.links

    async def link_to(self, peer: bytes) -> PeerLink:
        link: PeerLink = await self._links().link_to(peer)
        return link

    async def open_media(self, peer: bytes) -> trio.abc.Stream:
        stream: trio.abc.Stream = await self._links().open_media(peer)
        return stream


def install_calls(node: Node) -> CallService:
    """Calls on ``node``: SIP methods, the media stream handler, control ops, the service task."""
    store = node.store

    def accepts(address: str) -> bool:
        contact = store.contact(address)
        return (
            contact is not None
            and contact.state is not ContactState.BLOCKED
            and not store.is_blocked(address)
        )

    def resolve(text: str) -> str:
        contact = store.contact_by_nick(text)
        return contact.address if contact is not None else parse_address(text)

    service = CallService(
        dialer=_NodeDialer(node),
        publish=node.publish,
        own_public_key=node.identity.public_key,
        settings=CallSettings(
            auto_answer=node.config.auto_answer,
            play=node.config.play,
            record=node.config.record,
        ),
        accepts=accepts,
        resolve=resolve,
    )
    for method in ("INVITE", "ACK", "BYE", "CANCEL", "REFER"):
        node.register_sip_method(method, service.on_sip)
    # Presence takes NOTIFY too (RFC 6665 event packages share the method):
    # ours are "Event: refer" in a call's dialog, the rest go to whoever
    # registered NOTIFY before us. The node has no getter for it yet.
    service.notify_fallback = node._extensions.get("NOTIFY")
    node.register_sip_method("NOTIFY", service.on_sip)
    node.media_handler = service.on_media
    node.extra_handlers.update(service.handlers())
    node.background.append(service.run)
    return service
