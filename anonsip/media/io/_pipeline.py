"""The trio media loop of one call over one or more in-order byte streams (paths).

This is the thin adapter around the sans-IO parts: ``OpusEncoder`` and one
``MediaSealer`` per path on the way out; one ``MediaReceiver`` per path,
the ``PathMerger``, the ``JitterBuffer`` and ``OpusDecoder`` on the way in.
Tasks run in a nursery owned by ``MediaCall`` (an ``async with`` object).

One clock task does the call's work on a 20 ms tick: it reads what each
socket path received since the last tick, takes the next frame from a
source without a clock of its own (a file, silence), encodes it, seals it
and hands it to every open path (``PathMode.DUPLICATE``) or to one in turn
(``ALTERNATE``), then asks the jitter buffer what to play, decodes or
conceals, and writes to the sink. Everything the call does per frame thus
costs one wakeup of the process, which is most of a call's CPU on a busy
machine. A path on a ``trio.SocketStream`` is read and written without
blocking from that task (through a duplicate of its socket); whatever
would block goes to the path's writer task instead, so a slow path never
holds up the others. Any other stream (in memory, delayed) gets a reader
and a writer task of its own, and a source with its own clock (a sound
card) a capture task.

Until the first path is added, frames wait in a bounded backlog that the
first path sends at once, so what is said from the moment the call starts
is heard, late rather than never: a rendezvous on the public network can
take 3-10 s. A full backlog lets its oldest silent frame go (speech only
when it holds nothing else), and the frames it keeps are numbered without
gaps when they leave, flagged ``held`` so the peer's jitter buffer knows
their delay is not the network's; the peer then catches up in silence.
Each path's send queue is bounded and
drops its oldest frame: a backed-up path must not turn into seconds of
queued audio.

A path that breaks, closes without END, or carries a frame we refuse is
closed alone; the call goes on while another path is open. The call ends
when both directions have finished (each side sends a sealed END frame on
every path when it hangs up or its source runs out), or when its last
path fails; ``MediaEnded`` says why. ``MediaCall`` owns its paths' streams
and closes them.
"""

from __future__ import annotations

import collections
import enum
import math
import os
import select
import socket
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, field, replace
from types import TracebackType

import numpy as np
import trio

from anonsip._errors import LocalError, RemoteProtocolError
from anonsip.media._frame import MAX_PATHS, MediaFrame, MediaKeys, MediaReceiver, MediaSealer
from anonsip.media._jitter import Conceal, Idle, JitterBuffer, JitterPolicy, Play
from anonsip.media._opus import OpusDecoder, OpusEncoder
from anonsip.media._paths import PathCounts, PathMerger
from anonsip.media._quality import CallStatistics, InterarrivalJitter, RoundTrip, e_model_mos
from anonsip.media.io._audio import AudioSink, AudioSource, ClockedSink, ClockedSource

__all__ = ["EndReason", "MediaCall", "MediaEnded", "MediaParams", "PathMode", "PathView"]

_RECEIVE_CHUNK = 16384
_END_TIMEOUT_S = 2.0
PLAY_OUT_MAX_S = 3.0  # a node waits 5 s for a call's media once the call has ended
_LOG = 4096


class PathMode(enum.Enum):
    DUPLICATE = "duplicate"  # every frame on every open path; the first copy plays
    ALTERNATE = "alternate"  # frame n on open path n mod (open paths)


@dataclass(frozen=True, kw_only=True)
class MediaParams:
    """What both sides agreed on (from the session description) plus local tuning."""

    sample_rate: int = 16000
    frame_ms: int = 20
    bitrate: int = 24000
    complexity: int = 9
    frames_per_write: int = 1
    send_queue_frames: int = 6  # per path: 120 ms; older frames are dropped
    start_backlog_frames: int = 500  # 10 s said before the first path opened (~50 KB)
    path_mode: PathMode = PathMode.DUPLICATE
    speech_rms: float = 200.0  # voice activity threshold, int16 units
    speech_hangover_frames: int = 15  # stay "speech" this long after the last loud frame
    jitter: JitterPolicy = field(default_factory=JitterPolicy)

    def __post_init__(self) -> None:
        if self.frames_per_write not in (1, 2):
            raise LocalError("frames_per_write must be 1 or 2")
        if self.path_mode is PathMode.ALTERNATE and self.frames_per_write != 1:
            raise LocalError("alternating paths send one frame per write")
        if self.send_queue_frames < self.frames_per_write:
            raise LocalError("the send queue must hold at least one write")
        if self.start_backlog_frames < 0:
            raise LocalError("the start backlog cannot be negative")
        if self.jitter.frame_ms != self.frame_ms:
            raise LocalError("the jitter buffer and the codec must use the same frame length")


class EndReason(enum.Enum):
    FINISHED = "finished"  # both directions sent END
    HUNG_UP = "hung-up"  # this side hung up
    PEER_CLOSED = "peer-closed"  # the last path ended without the peer's END
    BROKEN = "broken"  # the last path failed
    PROTOCOL_ERROR = "protocol-error"  # the last path carried something we refuse
    CLOSED = "closed"  # the last path was closed under us


@dataclass(frozen=True, kw_only=True)
class MediaEnded:
    reason: EndReason
    detail: str


@dataclass(frozen=True, kw_only=True)
class PathView:
    """One path as the call sees it."""

    path: int
    open: bool
    sent_frames: int
    dropped_frames: int  # dropped from this path's full send queue
    received_frames: int  # every packet it delivered, copies included
    first_frames: int  # packets it delivered before any other path
    closed_because: str = ""


@dataclass(frozen=True, kw_only=True)
class _Outgoing:
    seq: int
    timestamp_ms: int
    packet: bytes
    speech: bool
    held: bool = False  # waited in the start backlog


class _SocketTap:
    """A duplicate of a path's socket, used without blocking from the clock task.

    Reading and writing a ``trio.SocketStream`` the usual way costs a task
    wakeup each time; at a frame every 20 ms per path that is most of a
    call's CPU. The tap tries the socket directly instead; only what would
    block goes through trio (the path's writer task). The tap and trio never
    use the socket at the same time.
    """

    def __init__(self, stream: trio.SocketStream, poller: select.poll) -> None:
        self._owner = stream.socket
        self._sock = socket.socket(fileno=os.dup(stream.socket.fileno()))
        self._sock.setblocking(False)
        self._poller = poller
        self.fd = self._sock.fileno()
        poller.register(self.fd, select.POLLIN)

    def _check_open(self) -> None:
        if self._owner.fileno() < 0:
            raise trio.ClosedResourceError("the media stream was closed")

    def send(self, data: bytes) -> int:
        """Bytes sent now (0 if the socket is full); raises ``OSError`` if it broke,
        ``trio.ClosedResourceError`` if the stream was closed under us."""
        self._check_open()
        try:
            return self._sock.send(data)
        except BlockingIOError:
            return 0

    def recv(self, size: int) -> bytes | None:
        """What arrived (b"" at the end), or None if nothing did; raises as ``send``."""
        self._check_open()
        try:
            return self._sock.recv(size)
        except BlockingIOError:
            return None

    def close(self) -> None:
        self._poller.unregister(self.fd)
        self._sock.close()


class _Path:
    """One stream of the call: its sealer, its receiver, its send queue."""

    def __init__(
        self, index: int, stream: trio.abc.Stream, keys: MediaKeys, poller: select.poll
    ) -> None:
        self.index = index
        self.stream = stream
        self.tap = _SocketTap(stream, poller) if isinstance(stream, trio.SocketStream) else None
        self.sealer = MediaSealer(keys.send)
        self.receiver = MediaReceiver(keys.receive)
        self.backlog: collections.deque[_Outgoing] = collections.deque()  # sent first, unbounded
        self.queue: collections.deque[_Outgoing] = collections.deque()
        self.unsent = b""  # the rest of a frame the tap could not send at once
        self.writing = False  # the writer task is in a send
        self.changed = trio.Event()
        self.scope = trio.CancelScope()
        self.open = True
        self.end_sent = False
        self.sent = self.dropped = 0
        self.closed_because = ""

    def wake(self) -> None:
        self.changed.set()
        self.changed = trio.Event()

    def pending(self) -> int:
        return len(self.backlog) + len(self.queue) + (1 if self.unsent else 0)

    @property
    def busy(self) -> bool:
        """The writer task has something to send: the clock task must not send past it."""
        return self.writing or bool(self.unsent or self.backlog or self.queue)

    def close_tap(self) -> None:
        if self.tap is not None:
            self.tap.close()
            self.tap = None


KeysFor = Callable[[int], MediaKeys]
PathClosed = Callable[[int, str], None]


class MediaCall:
    """One call's media over its paths; ``async with MediaCall(...) as call``.

    ``keys`` are this side's keys, or a function of the path number giving
    them; ``stream``, if given, is path 0. More paths join with
    ``add_path``; ``on_path_closed(path, why)`` hears of each path that
    fails while the call goes on.
    """

    def __init__(
        self,
        stream: trio.abc.Stream | None = None,
        *,
        keys: MediaKeys | KeysFor,
        source: AudioSource,
        sink: AudioSink,
        params: MediaParams | None = None,
        clock: Callable[[], float] = trio.current_time,
        on_path_closed: PathClosed | None = None,
    ) -> None:
        self.params = p = params or MediaParams()
        if source.sample_rate != p.sample_rate:
            raise LocalError(
                f"the audio source runs at {source.sample_rate} Hz, the call at {p.sample_rate} Hz"
            )
        self._keys_for: KeysFor = keys if callable(keys) else _single_path(keys)
        self._source = source
        self._clocked = _clocked(source)
        self._sink = sink
        self._clocked_sink = sink if isinstance(sink, ClockedSink) else None
        self._clock = clock
        self._on_path_closed = on_path_closed
        self._encoder = OpusEncoder(
            sample_rate=p.sample_rate,
            bitrate=p.bitrate,
            complexity=p.complexity,
            frame_ms=p.frame_ms,
        )
        self._decoder = OpusDecoder(sample_rate=p.sample_rate, frame_ms=p.frame_ms)
        self._silence = b"\0" * (2 * self._encoder.frame_samples)
        self._paths: dict[int, _Path] = {}
        self._poller = select.poll()  # which socket paths have something to read
        self._first_path = trio.Event()
        self._backlog: collections.deque[_Outgoing] = collections.deque()
        self._copies: dict[int, int] = {}  # frame -> paths still holding it (bounded by queues)
        self._merger = PathMerger()
        self._jitter = JitterBuffer(p.jitter)
        self._interarrival = InterarrivalJitter()
        self._round_trip = RoundTrip()
        self._muted = False
        self._quiet_frames = 1 << 30
        self._peer_ended = False
        self._peer_done = trio.Event()  # the peer's END came, or no path is left to bring it
        self._peer_ended_first = False
        self._stopped_playing = False
        self._hanging_up = False
        self._capture_done = False
        self._send_done = trio.Event()
        self._playout_done = False
        self._ended: MediaEnded | None = None
        self._ended_event = trio.Event()
        self._tasks_scope = trio.CancelScope()
        self._nursery: trio.Nursery | None = None
        self._lifetime: AbstractAsyncContextManager[MediaCall] = self._run()
        self._start = 0.0
        self._next_seq = 0
        self._sent_frames = self._send_dropped = self._received = 0
        self._sent_bytes = 0
        self._latest_peer: tuple[int, float] | None = None  # (peer timestamp, our arrival ms)
        self.played: collections.deque[tuple[float, int]] = collections.deque(maxlen=_LOG)
        """(our clock when played, peer's timestamp in ms) of recently played frames."""
        self.arrivals: collections.deque[tuple[int, int, float]] = collections.deque(maxlen=_LOG)
        """(sequence, peer's timestamp ms, our media clock ms) of each first copy received."""
        if stream is not None:
            self._attach(stream, 0)

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
                await nursery.start(self._tasks)
                try:
                    yield self
                    if self._ended is None:
                        await self.hang_up()
                finally:
                    self._tasks_scope.cancel()
        finally:
            with trio.CancelScope(shield=True):
                for path in self._paths.values():
                    path.close_tap()
                    await path.stream.aclose()
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

    async def wait_first_path(self) -> None:
        await self._first_path.wait()

    async def wait_sent(self) -> None:
        """Until this side's END has gone out on every open path (its source ran
        out, or it hung up), after everything it had to send."""
        await self._send_done.wait()

    def add_path(self, stream: trio.abc.Stream, *, path: int) -> None:
        """Carry the call on ``stream`` too (from now on the call owns and closes it).

        Raises ``LocalError`` (and leaves the stream to the caller) if the
        call has ended or the path number is taken or out of range.
        """
        if self._ended is not None or self._hanging_up:
            raise LocalError("the call's media has ended")
        self._attach(stream, path)
        if self._nursery is not None:
            self._nursery.start_soon(self._run_path, self._paths[path])

    def _attach(self, stream: trio.abc.Stream, index: int) -> None:
        if not 0 <= index < MAX_PATHS:
            raise LocalError(f"media paths are numbered 0..{MAX_PATHS - 1}")
        if index in self._paths:
            raise LocalError(f"media path {index} is already in use")
        path = _Path(index, stream, self._keys_for(index), self._poller)
        if not self._first_path.is_set():
            # Numbered afresh: silence the full backlog let go leaves no gap
            # for the peer to conceal.
            held, self._backlog = self._backlog, collections.deque()
            first = held[0].seq if held else self._next_seq
            path.backlog = collections.deque(
                replace(frame, seq=first + i, held=True) for i, frame in enumerate(held)
            )
            self._next_seq = first + len(held)
            for frame in path.backlog:
                self._copies[frame.seq] = 1
            self._first_path.set()
        self._paths[index] = path

    def paths(self) -> list[PathView]:
        counts = {c.path: c for c in self._merger.counts()}
        views = []
        for index, path in sorted(self._paths.items()):
            c = counts.get(index, PathCounts(path=index, received=0, first=0))
            views.append(
                PathView(
                    path=index,
                    open=path.open,
                    sent_frames=path.sent,
                    dropped_frames=path.dropped,
                    received_frames=c.received,
                    first_frames=c.first,
                    closed_because=path.closed_because,
                )
            )
        return views

    @property
    def open_paths(self) -> int:
        return sum(1 for path in self._paths.values() if path.open)

    def set_muted(self, muted: bool) -> None:
        """Send encoded silence instead of the microphone (same size and rate)."""
        self._muted = muted

    @property
    def muted(self) -> bool:
        return self._muted

    async def hang_up(self, *, play_out: bool = False) -> MediaEnded:
        """Stop sending and playing, tell the peer with END on every path, and end the call.

        The streams stay open (bounded) until the peer's END comes back: closing
        a socket with the peer's last frames unread resets the connection, and a
        reset can throw away our END before the peer has read it.

        ``play_out``: the peer hung up first (its BYE came). What it said that
        has not played yet (a late first path leaves speech seconds behind)
        still plays, for at most ``PLAY_OUT_MAX_S``, before the call ends.
        """
        if self._ended is None:
            self._hanging_up = True
            self._stopped_playing = not play_out
            self._backlog.clear()
            self._copies.clear()
            for path in self._paths.values():
                path.backlog.clear()
                path.queue.clear()
            self._wake_writers()
            self._check_send_done()
            with trio.move_on_after(_END_TIMEOUT_S):
                await self._send_done.wait()
                if self.open_paths:
                    await self._peer_done.wait()
            if play_out and self._ended is None:
                self._jitter.end_of_stream()  # what came is all there is to play
                with trio.move_on_after(PLAY_OUT_MAX_S):
                    await self._ended_event.wait()
                self._stopped_playing = True
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
            missing_frames=js.missing_frames,
            discarded_frames=js.discarded_frames,
            duplicate_frames=self._merger.duplicates,
            open_paths=self.open_paths,
            used_paths=len(self._paths),
            send_bitrate_bps=float(p.bitrate),
            wire_bitrate_bps=self._sent_bytes * 8 / duration,
            mos_estimate=mos,
        )

    async def _tasks(
        self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
    ) -> None:
        # Own scope: ending the call cancels these tasks, never the body of
        # the caller's ``async with``, which runs inside the outer nursery.
        with self._tasks_scope:
            async with trio.open_nursery() as nursery:
                self._nursery = nursery
                nursery.start_soon(self._clock_task)
                if self._clocked is None:
                    nursery.start_soon(self._capture_task)
                for path in self._paths.values():
                    nursery.start_soon(self._run_path, path)
                task_status.started()
        self._nursery = None

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

    def _wake_writers(self) -> None:
        for path in self._paths.values():
            path.wake()

    async def _capture_task(self) -> None:
        """A source with its own clock (a sound card): its frames as they come."""
        while not self._hanging_up:
            pcm = await self._source.read_frame()
            if pcm is None:
                break
            self._capture(pcm, round(self._now_ms()))
        self._capture_done = True
        self._wake_writers()

    def _capture(self, pcm: bytes, timestamp: int) -> None:
        p = self.params
        if self._muted:
            pcm, speech = self._silence, False
        else:
            # Voice activity from the mean square, without a float copy.
            samples = np.frombuffer(pcm, dtype="<i2")
            energy = float(np.dot(samples, samples.astype(np.int64))) / max(1, samples.size)
            loud = math.sqrt(energy) > p.speech_rms
            # Hangover: quiet consonants and pauses inside words stay speech,
            # so the receiver only ever skips or stretches real silence.
            self._quiet_frames = 0 if loud else self._quiet_frames + 1
            speech = self._quiet_frames <= p.speech_hangover_frames
        frame = _Outgoing(
            seq=self._next_seq,
            timestamp_ms=timestamp,
            packet=self._encoder.encode(pcm),
            speech=speech,
        )
        self._next_seq += 1
        self._dispatch(frame)

    def _dispatch(self, frame: _Outgoing) -> None:
        p = self.params
        live = [path for path in self._paths.values() if path.open]
        if not self._first_path.is_set():
            self._backlog.append(frame)
            if len(self._backlog) > p.start_backlog_frames:
                silent = (i for i, f in enumerate(self._backlog) if not f.speech)
                del self._backlog[next(silent, 0)]
                self._send_dropped += 1
            return
        if p.path_mode is PathMode.ALTERNATE and live:
            live = [live[frame.seq % len(live)]]
        if not live:
            return
        self._copies[frame.seq] = len(live)
        for path in live:
            if path.tap is not None and not path.busy and p.frames_per_write == 1:
                self._send_now(path, frame)
                continue
            path.queue.append(frame)
            while len(path.queue) > p.send_queue_frames:
                self._copy_gone(path.queue.popleft().seq, sent=False)
                path.dropped += 1
            path.wake()

    def _send_now(self, path: _Path, frame: _Outgoing) -> None:
        """Seal and send ``frame`` on a socket path from the clock task, without waiting."""
        assert path.tap is not None
        wire = self._seal(path, [frame])
        try:
            sent = path.tap.send(wire)
        except (OSError, trio.ClosedResourceError) as exc:
            self._send_failed(path, exc)
            return
        if sent < len(wire):
            path.unsent = wire[sent:]  # the writer task sends the rest, waiting as it must
            path.wake()
        self._sent_bytes += len(wire)
        path.sent += 1
        self._copy_gone(frame.seq, sent=True)

    def _seal(self, path: _Path, batch: list[_Outgoing]) -> bytes:
        echo_ms, hold_ms = 0, 0
        if self._latest_peer is not None:
            echo_ms = self._latest_peer[0] + 1  # 0 means "nothing to echo"
            hold_ms = int(self._now_ms() - self._latest_peer[1])
        return path.sealer.seal(
            seq=batch[0].seq,
            timestamp_ms=batch[0].timestamp_ms,
            packets=[f.packet for f in batch],
            speech=any(f.speech for f in batch),
            held=batch[0].held,  # the timestamp is the first frame's
            echo_ms=echo_ms,
            echo_hold_ms=hold_ms,
        )

    def _copy_gone(self, seq: int, *, sent: bool) -> None:
        """One path sent or dropped its copy of frame ``seq``: count each frame once."""
        left = self._copies.get(seq)
        if left is None:
            return  # already counted: another path sent it
        if sent:
            del self._copies[seq]
            self._sent_frames += 1
        elif left <= 1:
            del self._copies[seq]
            self._send_dropped += 1  # no path sent it
        else:
            self._copies[seq] = left - 1

    async def _write_path(self, path: _Path) -> None:
        p = self.params
        while True:
            if path.unsent:
                data, path.unsent = path.unsent, b""
                await self._send(path, data, counted=True)
                continue
            if self._hanging_up or (self._capture_done and not path.pending()):
                end = path.sealer.seal_end(seq=self._next_seq, timestamp_ms=int(self._now_ms()))
                await self._send(path, end)
                path.end_sent = True
                self._check_send_done()
                return
            if path.backlog:
                source = path.backlog
            elif len(path.queue) >= p.frames_per_write or (self._capture_done and path.queue):
                source = path.queue
            else:
                await path.changed.wait()
                continue
            # Drops only ever remove the oldest frame, so a batch is consecutive.
            count = min(p.frames_per_write, len(source))
            batch = [source.popleft() for _ in range(count)]
            if count == 2 and batch[1].seq != batch[0].seq + 1:
                source.appendleft(batch.pop())
            await self._send(path, self._seal(path, batch))
            path.sent += len(batch)
            for f in batch:
                self._copy_gone(f.seq, sent=True)

    async def _send(self, path: _Path, wire: bytes, *, counted: bool = False) -> None:
        if not counted:
            self._sent_bytes += len(wire)
        path.writing = True
        try:
            await path.stream.send_all(wire)
        finally:
            path.writing = False

    def _check_send_done(self) -> None:
        if self._send_done.is_set():
            return
        if not (self._hanging_up or (self._capture_done and self._first_path.is_set())):
            return
        if all(path.end_sent or not path.open for path in self._paths.values()):
            self._send_done.set()
            self._maybe_finished()

    # -- one path ----------------------------------------------------------

    async def _run_path(self, path: _Path) -> None:
        with path.scope:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._path_writer, path)
                if path.tap is None:  # a socket path is read by the clock task
                    nursery.start_soon(self._path_reader, path)
        if not path.open:
            path.close_tap()
            await trio.aclose_forcefully(path.stream)

    async def _path_writer(self, path: _Path) -> None:
        try:
            await self._write_path(path)
        except (trio.BrokenResourceError, trio.ClosedResourceError) as exc:
            self._send_failed(path, exc)

    def _send_failed(self, path: _Path, exc: BaseException) -> None:
        # The peer's END may be waiting unread behind the failure (socket paths
        # are read at the tick): read it first, so a hang-up is not taken for a break.
        self._read_taps(self._now_ms())
        if not path.open:
            return
        if self._peer_ended:
            # The peer hung up first and may already have closed its end.
            path.end_sent = True
            self._check_send_done()
            self._path_closed(path, EndReason.FINISHED, "the peer hung up")
        elif isinstance(exc, trio.ClosedResourceError):
            self._path_closed(path, EndReason.CLOSED, "the media stream was closed")
        else:
            self._path_closed(path, EndReason.BROKEN, f"the media stream broke: {exc}")

    async def _path_reader(self, path: _Path) -> None:
        try:
            while True:
                data = await path.stream.receive_some(_RECEIVE_CHUNK)
                if not self._received_bytes(path, data, self._now_ms()):
                    return
        except trio.BrokenResourceError as exc:
            self._path_closed(path, EndReason.BROKEN, f"the media stream broke: {exc}")
        except trio.ClosedResourceError:
            self._path_closed(path, EndReason.CLOSED, "the media stream was closed")

    def _read_taps(self, now: float) -> None:
        """What each socket path received since the last tick (the clock task's reads):
        one poll for all of them, then one read for each that has something."""
        ready = {fd for fd, _ in self._poller.poll(0)}
        if not ready:
            return
        for path in list(self._paths.values()):
            if path.tap is None or path.tap.fd not in ready or not path.open:
                continue
            try:
                data = path.tap.recv(_RECEIVE_CHUNK)
            except trio.ClosedResourceError:
                self._path_closed(path, EndReason.CLOSED, "the media stream was closed")
                continue
            except OSError as exc:
                self._path_closed(path, EndReason.BROKEN, f"the media stream broke: {exc}")
                continue
            if data is not None:
                self._received_bytes(path, data, now)

    def _received_bytes(self, path: _Path, data: bytes | bytearray, now: float) -> bool:
        """Feed one read; False once the path has nothing more to read."""
        try:
            if not data:
                path.receiver.receive_eof()
                if not (path.receiver.ended or self._peer_ended):
                    self._path_closed(
                        path,
                        EndReason.PEER_CLOSED,
                        "the peer closed the media stream without hanging up",
                    )
                path.close_tap()  # nothing more to read; a writer still sends with trio
                return False
            path.receiver.receive_data(data)
            while (frame := path.receiver.next_frame()) is not None:
                self._received_frame(path, frame, now)
        except RemoteProtocolError as exc:
            self._path_closed(path, EndReason.PROTOCOL_ERROR, str(exc))
            return False
        return True

    def _received_frame(self, path: _Path, frame: MediaFrame, now: float) -> None:
        if frame.end:
            if not self._peer_ended:
                self._peer_ended = True
                self._peer_ended_first = not self._send_done.is_set()
                self._jitter.end_of_stream()
                self._peer_done.set()
            return
        frame_ms = self.params.frame_ms
        for i, packet in enumerate(frame.packets):
            seq = frame.seq + i
            if not self._merger.accept(path.index, seq):
                continue  # a copy: another path was faster
            send_ms = frame.timestamp_ms + i * frame_ms
            if i == 0:
                if not frame.held:  # echoing a held frame would add its wait to the round trip
                    self._latest_peer = (frame.timestamp_ms, now)
                if frame.echo_ms:
                    self._round_trip.update(
                        now_ms=now, echo_ms=frame.echo_ms - 1, hold_ms=frame.echo_hold_ms
                    )
            if not frame.held:  # a held frame's delay is its wait at the sender
                self._interarrival.update(send_ms=send_ms, arrival_ms=now)
            self._jitter.put(
                seq=seq,
                send_ms=send_ms,
                arrival_ms=now,
                payload=packet,
                speech=frame.speech,
                held=frame.held,
            )
            self.arrivals.append((seq, send_ms, now))
            self._received += 1

    def _path_closed(self, path: _Path, reason: EndReason, detail: str) -> None:
        """``path`` is done; the call goes on while another path is open."""
        if not path.open:
            return
        path.open = False
        path.closed_because = detail
        path.close_tap()  # the duplicate too, or the peer would not see the stream end
        path.scope.cancel()
        if self._on_path_closed is not None and reason is not EndReason.FINISHED:
            self._on_path_closed(path.index, detail)
        if any(other.open for other in self._paths.values()):
            self._check_send_done()
            return
        self._peer_done.set()
        if self._peer_ended:
            self._send_done.set()
            if not self._stopped_playing and self._jitter.statistics().buffered_frames:
                return  # what the peer said before its END still plays; then the call ends
            self._playout_done = True
            self._finish(EndReason.FINISHED, "the peer hung up")
        else:
            self._finish(reason, detail)

    # -- the clock ---------------------------------------------------------

    async def _clock_task(self) -> None:
        """Every tick: read the socket paths, capture a clocked source, play a frame."""
        frame_s = self.params.frame_ms / 1000
        tick = 0
        while True:
            await trio.sleep_until(self._start + tick * frame_s)
            tick += 1
            now = self._now_ms()
            self._read_taps(now)
            if self._clocked is not None and not (self._hanging_up or self._capture_done):
                pcm = self._clocked.next_frame()
                if pcm is None:
                    self._capture_done = True
                    self._wake_writers()
                    self._check_send_done()
                else:
                    self._capture(pcm, round(now))
            if not (self._playout_done or self._stopped_playing):
                await self._play(now)

    async def _play(self, now: float) -> None:
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
            self._wake_writers()
            self._check_send_done()
            self._maybe_finished()
            return
        else:
            pcm = self._silence
        if self._clocked_sink is not None:
            self._clocked_sink.write_now(pcm)  # the tick's sleep is this task's checkpoint
        else:
            await self._sink.write_frame(pcm)


def _clocked(source: AudioSource) -> ClockedSource | None:
    """``source`` if the call's clock can drive it (it has no clock of its own)."""
    return source if isinstance(source, ClockedSource) else None


def _single_path(keys: MediaKeys) -> KeysFor:
    def keys_for(path: int) -> MediaKeys:
        if path != 0:
            raise LocalError("a call keyed for one path cannot add another")
        return keys

    return keys_for
