import pathlib
import socket
import statistics
import struct

import numpy as np
import pytest
import trio
import trio.testing
from pesq import pesq

from anonsip.media import MediaKeys
from anonsip.media._delaymodel import TorLikeDelay
from anonsip.media._frame import MediaReceiver, derive_media_keys
from anonsip.media.io._audio import MemorySink, SilenceSource, WavSource
from anonsip.media.io._delaylink import DelayedStream
from anonsip.media.io._pipeline import EndReason, MediaCall, MediaParams

from .conftest import make_speech, read_pcm

SECRET = bytes(range(32))
CALL = "call-42"


def keys(caller: bool) -> MediaKeys:
    return derive_media_keys(SECRET, CALL, caller=caller)


def pesq_wb(reference: np.ndarray, degraded: bytes) -> float:
    deg = np.frombuffer(bytes(degraded), dtype="<i2").astype(np.float32)
    return float(pesq(16000, reference.astype(np.float32), deg, "wb"))


async def one_way_call(
    stream_a: trio.abc.Stream,
    stream_b: trio.abc.Stream,
    wav: pathlib.Path,
    params: MediaParams | None = None,
) -> tuple[MediaCall, MediaCall, MemorySink]:
    """A plays ``wav``; B listens for the same time; both run until finished."""
    seconds = read_pcm(wav)[1].size / 16000
    sink_b = MemorySink()
    async with (
        MediaCall(
            stream_a, keys=keys(True), source=WavSource(wav), sink=MemorySink(), params=params
        ) as a,
        MediaCall(
            stream_b,
            keys=keys(False),
            source=SilenceSource(seconds=seconds + 5),
            sink=sink_b,
            params=params,
        ) as b,
    ):
        with trio.fail_after(seconds + 30):
            await a.wait_ended()
            await b.wait_ended()
    return a, b, sink_b


def mouth_to_ear_ms(a: MediaCall, b: MediaCall) -> list[float]:
    return [1000 * (t - (a.media_start + ts / 1000)) for t, ts in b.played]


async def test_memory_pair_through_tor_model(
    speech_wav: pathlib.Path, speech_pcm: np.ndarray, autojump_clock: trio.abc.Clock
) -> None:
    raw_a, raw_b = trio.testing.memory_stream_pair()
    async with DelayedStream(raw_a, TorLikeDelay(seed=7)) as link_a:
        a, b, sink = await one_way_call(link_a, raw_b, speech_wav)
    assert a.ended is not None
    assert a.ended.reason is EndReason.FINISHED
    assert b.ended is not None
    assert b.ended.reason is EndReason.FINISHED
    score = pesq_wb(speech_pcm, sink.pcm)
    assert score >= 3.5
    s = b.statistics()
    assert s.received_frames == a.statistics().sent_frames
    assert s.played_frames + s.dropped_frames == s.received_frames
    assert a.statistics().round_trip_ms is not None
    assert a.statistics().round_trip_ms > 250  # one way is modelled, the other is instant
    m2e = mouth_to_ear_ms(a, b)
    assert 250 < statistics.median(m2e) < 600


async def test_two_frames_per_write(
    speech_wav: pathlib.Path, speech_pcm: np.ndarray, autojump_clock: trio.abc.Clock
) -> None:
    raw_a, raw_b = trio.testing.memory_stream_pair()
    a, b, sink = await one_way_call(raw_a, raw_b, speech_wav, MediaParams(frames_per_write=2))
    assert b.ended is not None
    assert b.ended.reason is EndReason.FINISHED
    assert pesq_wb(speech_pcm, sink.pcm) >= 3.8
    assert b.statistics().received_frames == a.statistics().sent_frames


async def test_real_tcp_through_tor_model(tmp_path: pathlib.Path) -> None:
    wav = make_speech(tmp_path / "short.wav", text="Hello, this call crosses the onion network.")
    reference = read_pcm(wav)[1]
    listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
    port = listeners[0].socket.getsockname()[1]
    async with listeners[0]:
        client = await trio.open_tcp_stream("127.0.0.1", port)
        server = await listeners[0].accept()
    async with DelayedStream(client, TorLikeDelay(seed=11)) as link:
        a, b, sink = await one_way_call(link, server, wav)
    assert b.ended is not None
    assert b.ended.reason is EndReason.FINISHED
    assert pesq_wb(reference, sink.pcm) >= 3.5
    assert statistics.median(mouth_to_ear_ms(a, b)) < 700


@pytest.mark.parametrize("transport", ["memory", "tcp"])
async def test_stream_break_ends_both_sides(transport: str) -> None:
    if transport == "memory":
        raw_a, raw_b = trio.testing.memory_stream_pair()
    else:
        listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
        port = listeners[0].socket.getsockname()[1]
        async with listeners[0]:
            raw_a = await trio.open_tcp_stream("127.0.0.1", port)
            raw_b = await listeners[0].accept()
    async with (
        MediaCall(raw_a, keys=keys(True), source=SilenceSource(), sink=MemorySink()) as a,
        MediaCall(raw_b, keys=keys(False), source=SilenceSource(), sink=MemorySink()) as b,
    ):
        await trio.sleep(0.3)
        await raw_a.aclose()  # the stream breaks under A: no END frame
        with trio.fail_after(5):
            ended_a = await a.wait_ended()
            ended_b = await b.wait_ended()
    assert ended_a.reason in (EndReason.CLOSED, EndReason.BROKEN)
    assert ended_b.reason in (EndReason.PEER_CLOSED, EndReason.BROKEN)
    assert "hanging up" in ended_b.detail or "broke" in ended_b.detail


async def test_hang_up_ends_both_sides(autojump_clock: trio.abc.Clock) -> None:
    raw_a, raw_b = trio.testing.memory_stream_pair()
    async with (
        MediaCall(raw_a, keys=keys(True), source=SilenceSource(), sink=MemorySink()) as a,
        MediaCall(raw_b, keys=keys(False), source=SilenceSource(), sink=MemorySink()) as b,
    ):
        await trio.sleep(1)
        assert (await a.hang_up()).reason is EndReason.HUNG_UP
        with trio.fail_after(5):
            ended_b = await b.wait_ended()
    assert ended_b.reason is EndReason.FINISHED
    assert ended_b.detail == "the peer hung up"


async def test_forged_bytes_end_the_call_with_a_protocol_error(
    autojump_clock: trio.abc.Clock,
) -> None:
    raw_a, raw_b = trio.testing.memory_stream_pair()
    async with MediaCall(raw_b, keys=keys(False), source=SilenceSource(), sink=MemorySink()) as b:
        await raw_a.send_all(struct.pack(">H", 40) + b"\x01" * 40)
        with trio.fail_after(5):
            ended = await b.wait_ended()
    assert ended.reason is EndReason.PROTOCOL_ERROR
    assert "authentication" in ended.detail


async def read_frames(stream: trio.abc.Stream, receiver: MediaReceiver, until_end: bool = True):
    sizes, frames = [], []
    buf = b""
    while True:
        data = await stream.receive_some()
        if not data:
            return sizes, frames
        buf += data
        while len(buf) >= 2 and len(buf) >= 2 + struct.unpack(">H", buf[:2])[0]:
            n = struct.unpack(">H", buf[:2])[0]
            sizes.append(n)
            receiver.receive_data(buf[: 2 + n])
            buf = buf[2 + n :]
            frame = receiver.next_frame()
            assert frame is not None
            frames.append(frame)
            if frame.end:
                return sizes, frames


async def test_mute_and_silence_are_invisible_on_the_wire(
    speech_wav: pathlib.Path, autojump_clock: trio.abc.Clock
) -> None:
    raw_a, raw_b = trio.testing.memory_stream_pair()
    async with MediaCall(
        raw_a, keys=keys(True), source=WavSource(speech_wav), sink=MemorySink()
    ) as a:
        async with trio.open_nursery() as nursery:

            async def toggle() -> None:
                await trio.sleep(1)
                a.set_muted(True)
                await trio.sleep(1)
                a.set_muted(False)

            nursery.start_soon(toggle)
            sizes, frames = await read_frames(raw_b, MediaReceiver(keys(False).receive))
        await raw_b.aclose()
    media = [f for f in frames if not f.end]
    assert len(set(sizes[:-1])) == 1  # every media frame the same size (END differs)
    speech = [f.speech for f in media]
    assert any(speech[:50])
    assert not any(speech[55:95])  # muted second carries no voice activity
    assert any(speech[100:])
    # Timestamps advance 20 ms per frame whatever the content.
    assert [f.timestamp_ms - media[0].timestamp_ms for f in media] == [
        20 * i for i in range(len(media))
    ]


async def test_backed_up_stream_drops_oldest_frames(autojump_clock: trio.abc.Clock) -> None:
    raw_a, raw_b = trio.testing.lockstep_stream_pair()
    params = MediaParams(send_queue_frames=5)
    async with MediaCall(
        raw_a, keys=keys(True), source=SilenceSource(seconds=4), sink=MemorySink(), params=params
    ) as a:
        await trio.sleep(2)  # nobody reads: the stream backs up
        assert a.statistics().send_dropped_frames > 50
        _, frames = await read_frames(raw_b, MediaReceiver(keys(False).receive))
        await raw_b.aclose()
    seqs = [f.seq for f in frames if not f.end]
    assert seqs == sorted(seqs)
    assert seqs[-1] - seqs[0] + 1 > len(seqs)  # a gap where frames were dropped
    # The frames sent after the stall are recent, not two seconds old.
    assert len(seqs) < 4000 / 20


async def test_a_socket_path_that_backs_up_hands_the_rest_to_its_writer() -> None:
    """The clock task never blocks on a full socket: what it cannot send at once
    goes through the path's writer, in order, and the oldest queued frames drop."""
    # Small buffers, set before the connection exists so they hold.
    with trio.socket.socket() as listener:
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 2048)
        await listener.bind(("127.0.0.1", 0))
        listener.listen()
        client = trio.socket.socket()
        client.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 2048)
        await client.connect(listener.getsockname())
        server, _ = await listener.accept()
    raw_a, raw_b = trio.SocketStream(client), trio.SocketStream(server)
    params = MediaParams(send_queue_frames=5)
    async with (
        raw_b,
        MediaCall(
            raw_a,
            keys=keys(True),
            source=SilenceSource(seconds=6),
            sink=MemorySink(),
            params=params,
        ) as a,
    ):
        await trio.sleep(3)  # nobody reads: the socket fills, then the queue
        assert a.paths()[0].dropped_frames > 0
        _, frames = await read_frames(raw_b, MediaReceiver(keys(False).receive))
    seqs = [f.seq for f in frames if not f.end]
    assert seqs == sorted(seqs)  # every frame opened in order: nothing interleaved
    assert seqs[-1] - seqs[0] + 1 > len(seqs)  # a gap where frames were dropped
    assert frames[-1].end
