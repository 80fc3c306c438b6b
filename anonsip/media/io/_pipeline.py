"""The trio media loop of one call over one in-order byte stream.

This is the thin adapter around the sans-IO parts: ``OpusEncoder`` and
``MediaSealer`` on the way out, ``MediaReceiver``, ``JitterBuffer`` and
``OpusDecoder`` on the way in. Four tasks run in a nursery owned by
``MediaCall`` (an ``async with`` object):

* capture: reads 20 ms frames from the source (which paces itself), encodes
  them (silence when muted, so mute is invisible on the wire) and puts them
  on a bounded send queue, dropping the oldest frame when it is full: a
  backed-up stream must not turn into seconds of queued audio;
* writer: seals queued frames (optionally two per write) and sends them;
* receiver: parses the peer's frames into the jitter buffer;
* playout: on a 20 ms clock, asks the jitter buffer what to play, decodes
  or conceals, and writes to the sink (silence while buffering).

The call ends when both directions have finished (each side sends a sealed
END frame when it hangs up or its source runs out), or at once when the
stream breaks, closes without END, or carries a frame we refuse; both sides
see why in ``MediaEnded``. ``MediaCall`` owns the stream and closes it.
"""

from __future__ import annotations

import collections
import enum
import math
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, field
from types import TracebackType

import numpy as np
import trio

from anonsip._errors import LocalError, RemoteProtocolError
from anonsip.media._frame import MediaKeys, MediaReceiver, MediaSealer
from anonsip.media._jitter import Conceal, Idle, JitterBuffer, JitterPolicy, Play
from anonsip.media._opus import OpusDecoder, OpusEncoder
from anonsip.media._quality import CallStatistics, InterarrivalJitter, RoundTrip, e_model_mos
from anonsip.media.io._audio import AudioSink, AudioSource

__all__ = ["EndReason", "MediaCall", "MediaEnded", "MediaParams"]

_RECEIVE_CHUNK = 16384
_END_TIMEOUT_S = 2.0
_PLAYOUT_LOG = 4096


@dataclass(frozen=True, kw_only=True)
class MediaParams:
    """What both sides agreed on (from the session description) plus local tuning."""

    sample_rate: int = 16000
    frame_ms: int = 20
    bitrate: int = 24000
    complexity: int = 9
    frames_per_write: int = 1
    send_queue_frames: int = 6  # 120 ms; older frames are dropped
    speech_rms: float = 200.0  # voice activity threshold, int16 units
    speech_hangover_frames: int = 15  # stay "speech" this long after the last loud frame
    jitter: JitterPolicy = field(default_factory=JitterPolicy)

    def __post_init__(self) -> None:
        if self.frames_per_write not in (1, 2):
            raise LocalError("frames_per_write must be 1 or 2")
        if self.send_queue_frames < self.frames_per_write:
            raise LocalError("the send queue must hold at least one write")
        if self.jitter.frame_ms != self.frame_ms:
            raise LocalError("the jitter buffer and the codec must use the same frame length")


class EndReason(enum.Enum):
    FINISHED = "finished"  # both directions sent END
    HUNG_UP = "hung-up"  # this side hung up
    PEER_CLOSED = "peer-closed"  # the stream ended without the peer's END
    BROKEN = "broken"  # the stream failed
    PROTOCOL_ERROR = "protocol-error"  # the peer sent something we refuse
    CLOSED = "closed"  # the stream was closed under us


@dataclass(frozen=True, kw_only=True)
class MediaEnded:
    reason: EndReason
    detail: str


@dataclass(frozen=True, kw_only=True)
class _Outgoing:
    seq: int
    timestamp_ms: int
    packet: bytes
    speech: bool


class MediaCall:
    """One call's media over ``stream``; use as ``async with MediaCall(...) as call``."""

    def __init__(
        self,
        stream: trio.abc.Stream,
        *,
        keys: MediaKeys,
        source: AudioSource,
        sink: AudioSink,
        params: MediaParams | None = None,
        clock: Callable[[], float] = trio.current_time,
    ) -> None:
        self.params = p = params or MediaParams()
        if source.sample_rate != p.sample_rate:
            raise LocalError(
                f"the audio source runs at {source.sample_rate} Hz, the call at {p.sample_rate} Hz"
            )
        self._stream = stream
        self._source = source
        self._sink = sink
        self._clock = clock
        self._encoder = OpusEncoder(
            sample_rate=p.sample_rate,
            bitrate=p.bitrate,
            complexity=p.complexity,
            frame_ms=p.frame_ms,
        )
        self._decoder = OpusDecoder(sample_rate=p.sample_rate, frame_ms=p.frame_ms)
        self._silence = b"\0" * (2 * self._encoder.frame_samples)
        self._sealer = MediaSealer(keys.send)
        self._receiver = MediaReceiver(keys.receive)
        self._jitter = JitterBuffer(p.jitter)
        self._interarrival = InterarrivalJitter()
        self._round_trip = RoundTrip()
        self._queue: collections.deque[_Outgoing] = collections.deque()
        self._queue_changed = trio.Event()
        self._muted = False
        self._quiet_frames = 1 << 30
        self._peer_ended_first = False
        self._hanging_up = False
        self._capture_done = False
        self._send_done = trio.Event()
        self._playout_done = False
        self._ended: MediaEnded | None = None
        self._ended_event = trio.Event()
        self._tasks_scope = trio.CancelScope()
        self._lifetime: AbstractAsyncContextManager[MediaCall] = self._run()
        self._start = 0.0
        self._next_seq = 0
        self._sent_frames = self._send_dropped = self._received = 0
        self._sent_bytes = 0
        self._latest_peer: tuple[int, float] | None = None  # (peer timestamp, our arrival ms)
        self.played: collections.deque[tuple[float, int]] = collections.deque(maxlen=_PLAYOUT_LOG)
        """(our clock when played, peer's timestamp in ms) of recently played frames."""

    # -- lifetime ----------------------------------------------------------

    async def __aenter__(self) -> MediaCall:
        return await self._lifetime.__aenter__()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool | None:
        return await self._lifetime.__aexit__(exc_type, exc, tb)

    @asynccontextmanager
    async def _run(self) -> AsyncIterator[MediaCall]:
        try:
            async with trio.open_nursery() as nursery:
                self._start = self._clock()
                nursery.start_soon(self._tasks)
                try:
                    yield self
                    if self._ended is None:
                        await self.hang_up()
                finally:
                    self._tasks_scope.cancel()
        finally:
            with trio.CancelScope(shield=True):
                await self._stream.aclose()
            self._encoder.close()
            self._decoder.close()

    @property
    def media_start(self) -> float:
        """Our clock when the media clock (frame timestamps) started."""
        return self._start

    @property
    def ended(self) -> MediaEnded | None:
        return self._ended

    async def wait_ended(self) -> MediaEnded:
        await self._ended_event.wait()
        assert self._ended is not None
        return self._ended

    def set_muted(self, muted: bool) -> None:
        """Send encoded silence instead of the microphone (same size and rate)."""
        self._muted = muted

    @property
    def muted(self) -> bool:
        return self._muted

    async def hang_up(self) -> MediaEnded:
        """Stop sending, tell the peer with END, and end the call."""
        if self._ended is None:
            self._hanging_up = True
            self._queue.clear()
            self._wake_writer()
            with trio.move_on_after(_END_TIMEOUT_S):
                await self._send_done.wait()
            self._finish(EndReason.HUNG_UP, "this side hung up")
        return await self.wait_ended()

    def statistics(self) -> CallStatistics:
        """Live figures; the MOS is an E-model estimate from round trip and buffer."""
        p = self.params
        js = self._jitter.statistics()
        duration = max(self._now_ms() / 1000.0, 1e-3)
        rtt = self._round_trip.smoothed_ms
        mos = None
        if rtt is not None:
            # Mouth to ear: half the round trip, the playout buffer, one frame
            # of packetisation and Opus's 6.5 ms look-ahead.
            one_way = rtt / 2 + js.current_delay_ms + p.frame_ms + 6.5
            total = js.played_frames + js.concealed_frames
            mos = e_model_mos(
                one_way_delay_ms=one_way,
                bitrate=p.bitrate,
                concealed_percent=100.0 * js.concealed_frames / total if total else 0.0,
            )
        return CallStatistics(
            duration_s=duration,
            round_trip_ms=rtt,
            jitter_ms=self._interarrival.jitter_ms,
            playout_delay_ms=js.current_delay_ms,
            target_delay_ms=js.target_delay_ms,
            base_transit_ms=js.base_transit_ms,
            sent_frames=self._sent_frames,
            send_dropped_frames=self._send_dropped,
            received_frames=self._received,
            played_frames=js.played_frames,
            concealed_frames=js.concealed_frames,
            late_frames=js.late_frames,
            dropped_frames=js.dropped_frames,
            jumps=js.jumps,
            send_bitrate_bps=float(p.bitrate),
            wire_bitrate_bps=self._sent_bytes * 8 / duration,
            mos_estimate=mos,
        )

    async def _tasks(self) -> None:
        # Own scope: ending the call cancels these tasks, never the body of
        # the caller's ``async with``, which runs inside the outer nursery.
        with self._tasks_scope:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._capture)
                nursery.start_soon(self._writer)
                nursery.start_soon(self._receive)
                nursery.start_soon(self._playout)

    def _finish(self, reason: EndReason, detail: str) -> None:
        if self._ended is None:
            self._ended = MediaEnded(reason=reason, detail=detail)
            self._ended_event.set()
            self._tasks_scope.cancel()

    def _maybe_finished(self) -> None:
        if self._send_done.is_set() and self._playout_done:
            detail = "the peer hung up" if self._peer_ended_first else "this side finished sending"
            self._finish(EndReason.FINISHED, detail)

    def _now_ms(self) -> float:
        return (self._clock() - self._start) * 1000.0

    # -- sending -----------------------------------------------------------

    def _wake_writer(self) -> None:
        self._queue_changed.set()
        self._queue_changed = trio.Event()

    async def _capture(self) -> None:
        p = self.params
        while not self._hanging_up:
            pcm = await self._source.read_frame()
            if pcm is None:
                break
            timestamp = round(self._now_ms())
            if self._muted:
                pcm, speech = self._silence, False
            else:
                samples = np.frombuffer(pcm, dtype="<i2").astype(np.float32)
                loud = math.sqrt(float(np.mean(samples * samples))) > p.speech_rms
                # Hangover: quiet consonants and pauses inside words stay speech,
                # so the receiver only ever skips or stretches real silence.
                self._quiet_frames = 0 if loud else self._quiet_frames + 1
                speech = self._quiet_frames <= p.speech_hangover_frames
            packet = self._encoder.encode(pcm)
            self._queue.append(
                _Outgoing(seq=self._next_seq, timestamp_ms=timestamp, packet=packet, speech=speech)
            )
            self._next_seq += 1
            while len(self._queue) > p.send_queue_frames:
                self._queue.popleft()
                self._send_dropped += 1
            self._wake_writer()
        self._capture_done = True
        self._wake_writer()

    async def _writer(self) -> None:
        p = self.params
        try:
            while True:
                if self._hanging_up or (self._capture_done and not self._queue):
                    await self._send(
                        self._sealer.seal_end(seq=self._next_seq, timestamp_ms=int(self._now_ms()))
                    )
                    self._send_done.set()
                    self._maybe_finished()
                    return
                if len(self._queue) < p.frames_per_write and not self._capture_done:
                    await self._queue_changed.wait()
                    continue
                # Drops only ever remove the oldest frame, so a batch is consecutive.
                count = min(p.frames_per_write, len(self._queue))
                batch = [self._queue.popleft() for _ in range(count)]
                echo_ms, hold_ms = 0, 0
                if self._latest_peer is not None:
                    echo_ms = self._latest_peer[0] + 1  # 0 means "nothing to echo"
                    hold_ms = int(self._now_ms() - self._latest_peer[1])
                wire = self._sealer.seal(
                    seq=batch[0].seq,
                    timestamp_ms=batch[0].timestamp_ms,
                    packets=[f.packet for f in batch],
                    speech=any(f.speech for f in batch),
                    echo_ms=echo_ms,
                    echo_hold_ms=hold_ms,
                )
                await self._send(wire)
                self._sent_frames += len(batch)
        except (trio.BrokenResourceError, trio.ClosedResourceError) as exc:
            if self._receiver.ended:
                # The peer hung up first and may already have closed its end.
                self._send_done.set()
                self._playout_done = True
                self._finish(EndReason.FINISHED, "the peer hung up")
            elif isinstance(exc, trio.BrokenResourceError):
                self._finish(EndReason.BROKEN, f"the media stream broke while sending: {exc}")
            else:
                self._finish(EndReason.CLOSED, "the media stream was closed")

    async def _send(self, wire: bytes) -> None:
        self._sent_bytes += len(wire)
        await self._stream.send_all(wire)

    # -- receiving and playout ---------------------------------------------

    async def _receive(self) -> None:
        p = self.params
        try:
            while True:
                data = await self._stream.receive_some(_RECEIVE_CHUNK)
                if not data:
                    self._receiver.receive_eof()
                    if not self._receiver.ended:
                        self._finish(
                            EndReason.PEER_CLOSED,
                            "the peer closed the media stream without hanging up",
                        )
                    return
                self._receiver.receive_data(data)
                while (frame := self._receiver.next_frame()) is not None:
                    now = self._now_ms()
                    if frame.end:
                        self._peer_ended_first = not self._send_done.is_set()
                        self._jitter.end_of_stream()
                        continue
                    self._latest_peer = (frame.timestamp_ms, now)
                    if frame.echo_ms:
                        self._round_trip.update(
                            now_ms=now, echo_ms=frame.echo_ms - 1, hold_ms=frame.echo_hold_ms
                        )
                    for i, packet in enumerate(frame.packets):
                        send_ms = frame.timestamp_ms + i * p.frame_ms
                        self._interarrival.update(send_ms=send_ms, arrival_ms=now)
                        self._jitter.put(
                            seq=frame.seq + i,
                            send_ms=send_ms,
                            arrival_ms=now,
                            payload=packet,
                            speech=frame.speech,
                        )
                        self._received += 1
        except RemoteProtocolError as exc:
            self._finish(EndReason.PROTOCOL_ERROR, str(exc))
        except trio.BrokenResourceError as exc:
            self._finish(EndReason.BROKEN, f"the media stream broke: {exc}")
        except trio.ClosedResourceError:
            self._finish(EndReason.CLOSED, "the media stream was closed")

    async def _playout(self) -> None:
        frame_s = self.params.frame_ms / 1000
        tick = 0
        while True:
            await trio.sleep_until(self._start + tick * frame_s)
            tick += 1
            now = self._now_ms()
            event = self._jitter.pop(now)
            if isinstance(event, Play):
                try:
                    pcm = self._decoder.decode(event.payload)
                except RemoteProtocolError as exc:
                    self._finish(EndReason.PROTOCOL_ERROR, str(exc))
                    return
                self.played.append((self._clock(), int(event.send_ms)))
            elif isinstance(event, Conceal):
                pcm = self._decoder.conceal()
            elif isinstance(event, Idle) and event.finished:
                # The peer hung up and everything it sent was played: end our
                # direction too, so both sides finish.
                self._playout_done = True
                self._hanging_up = True
                self._wake_writer()
                self._maybe_finished()
                return
            else:
                pcm = self._silence
            await self._sink.write_frame(pcm)
