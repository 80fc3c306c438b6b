"""One call as the node's call service keeps it: its machine, dialog, media and views.

A ``CallLeg`` is a plain record the service, the signalling adapter
(``_call_sip``) and the media runner (``_call_media``) share; only the
service feeds its machine.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import trio

from anonsip.call import Call, CallState, Direction, Method
from anonsip.control import AnswerArgs, CallArgs, CallStatsView, CallView
from anonsip.control import CallDirection as ViewDirection
from anonsip.control import CallState as ViewCallState
from anonsip.identity import Address
from anonsip.media import CallStatistics
from anonsip.media.io import AudioChoice, CallAudio, GatedSink, MediaCall
from anonsip.node._link import PeerLink
from anonsip.sip import Dialog, Request

if TYPE_CHECKING:
    from anonsip.node._call_media import CallPaths

__all__ = ["CallLeg", "audio_choice", "stats_view"]


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
        self.play_out = False  # the media stops because the peer hung up: play what came
        self.media_done = trio.Event()
        self.media: MediaCall | None = None
        self.media_running = False
        self.gate: GatedSink | None = None
        self.direction = Direction.SENDRECV
        self.paths: CallPaths | None = None  # its media paths, from the INVITE or the ringing
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


def audio_choice(args: CallArgs | AnswerArgs) -> AudioChoice:
    def path(text: str | None) -> Path | None:
        return None if text is None else Path(text).expanduser()

    return AudioChoice(
        play=path(args.play),
        record=path(args.record),
        record_rate=args.record_rate,
        input_device=args.input_device,
        output_device=args.output_device,
    )
