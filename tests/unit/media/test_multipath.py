"""One call over several paths: first copies play, copies are silent, a broken path is only a path.

Pairs of real ``MediaCall``s over memory stream pairs (some through the
Tor-like delay model, each path with its own seed), on trio's autojump
clock.
"""

import pathlib
import struct
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from functools import partial

import numpy as np
import pytest
import trio
import trio.testing

from anonsip import LocalError
from anonsip.media import MediaKeys, MediaReceiver, MediaSealer, TorLikeDelay, derive_media_keys
from anonsip.media.io import (
    DelayedStream,
    EndReason,
    MediaCall,
    MediaParams,
    MemorySink,
    PathMode,
    SilenceSource,
    WavSource,
)

from .conftest import first_100_ms_heard, read_pcm, write_wav
from .test_pipeline import pesq_wb

SECRET = bytes(range(32))
CALL = "call-multi"


def keys_for(caller: bool) -> Callable[[int], MediaKeys]:
    def keys(path: int) -> MediaKeys:
        return derive_media_keys(SECRET, CALL, caller=caller, path=path)

    return keys


Pair = tuple[trio.abc.Stream, trio.abc.Stream]


@asynccontextmanager
async def paths(n: int, seeds: list[int | None]) -> AsyncIterator[list[Pair]]:
    """``n`` stream pairs; the A->B direction of pair i goes through the delay model
    with ``seeds[i]`` (None: no delay)."""
    async with AsyncExitStack() as stack:
        pairs: list[Pair] = []
        for i in range(n):
            a, b = trio.testing.memory_stream_pair()
            seed = seeds[i]
            if seed is not None:
                a = await stack.enter_async_context(DelayedStream(a, TorLikeDelay(seed=seed)))
            pairs.append((a, b))
        yield pairs


async def speak_over(
    pairs: list[Pair],
    wav: pathlib.Path,
    *,
    params: MediaParams | None = None,
    closed_a: list[tuple[int, str]] | None = None,
    closed_b: list[tuple[int, str]] | None = None,
) -> tuple[MediaCall, MediaCall, MemorySink]:
    """A plays ``wav`` over every pair; B listens; both run until finished."""
    seconds = read_pcm(wav)[1].size / 16000
    sink = MemorySink()
    a = MediaCall(
        keys=keys_for(True),
        source=WavSource(wav),
        sink=MemorySink(),
        params=params,
        on_path_closed=lambda p, why: (closed_a if closed_a is not None else []).append((p, why)),
    )
    b = MediaCall(
        keys=keys_for(False),
        source=SilenceSource(seconds=seconds + 5),
        sink=sink,
        params=params,
        on_path_closed=lambda p, why: (closed_b if closed_b is not None else []).append((p, why)),
    )
    async with a, b:
        for i, (ours, theirs) in enumerate(pairs):
            a.add_path(ours, path=i)
            b.add_path(theirs, path=i)
        with trio.fail_after(seconds + 30):
            await a.wait_ended()
            await b.wait_ended()
    return a, b, sink


def m2e(a: MediaCall, b: MediaCall) -> list[float]:
    return [1000 * (t - (a.media_start + ts / 1000)) for t, ts in b.played]


async def test_two_paths_play_the_first_copy_and_drop_the_other_silently(
    speech_wav: pathlib.Path, speech_pcm: np.ndarray, autojump_clock: trio.abc.Clock
) -> None:
    async with paths(2, [7, 8]) as pairs:
        a, b, sink = await speak_over(pairs, speech_wav)
    assert a.ended is not None
    assert b.ended is not None
    assert (a.ended.reason, b.ended.reason) == (EndReason.FINISHED, EndReason.FINISHED)
    sa, sb = a.statistics(), b.statistics()
    assert sb.received_frames == sa.sent_frames  # each frame once
    # ... and its copy dropped without fuss (the last few may still be on the slow path)
    assert sb.received_frames - 10 <= sb.duplicate_frames <= sb.received_frames
    assert sb.open_paths == sb.used_paths == 2
    views = b.paths()
    assert all(v.first_frames > 0 for v in views)  # each path was first some of the time
    assert sum(v.first_frames for v in views) == sb.received_frames
    assert pesq_wb(speech_pcm, sink.pcm) >= 3.5
    # The same speech over path 7 alone waits longer for its stalls.
    async with paths(1, [7]) as single:
        a1, b1, _ = await speak_over(single, speech_wav)
    assert max(m2e(a, b)) < max(m2e(a1, b1))


async def test_alternating_paths_send_each_frame_once(
    speech_wav: pathlib.Path, speech_pcm: np.ndarray, autojump_clock: trio.abc.Clock
) -> None:
    params = MediaParams(path_mode=PathMode.ALTERNATE)
    async with paths(2, [3, 4]) as pairs:
        a, b, sink = await speak_over(pairs, speech_wav, params=params)
    assert b.ended is not None
    assert b.ended.reason is EndReason.FINISHED
    sent = [v.sent_frames for v in a.paths()]
    assert abs(sent[0] - sent[1]) <= 1
    assert b.statistics().duplicate_frames == 0
    assert pesq_wb(speech_pcm, sink.pcm) >= 3.0


async def test_a_path_that_breaks_does_not_end_the_call(
    speech_wav: pathlib.Path, speech_pcm: np.ndarray, autojump_clock: trio.abc.Clock
) -> None:
    closed_a: list[tuple[int, str]] = []
    closed_b: list[tuple[int, str]] = []
    async with paths(2, [None, None]) as pairs, trio.open_nursery() as nursery:

        async def cut() -> None:
            await trio.sleep(1.0)
            await pairs[1][0].aclose()  # path 1 goes down under A, mid-speech

        nursery.start_soon(cut)
        a, b, sink = await speak_over(pairs, speech_wav, closed_a=closed_a, closed_b=closed_b)
    assert a.ended is not None
    assert b.ended is not None
    assert (a.ended.reason, b.ended.reason) == (EndReason.FINISHED, EndReason.FINISHED)
    assert [p for p, _ in closed_a] == [1]
    assert [p for p, _ in closed_b] == [1]
    assert "without hanging up" in closed_b[0][1]
    assert [v.open for v in b.paths()] == [True, False]
    assert b.statistics().received_frames == a.statistics().sent_frames
    assert pesq_wb(speech_pcm, sink.pcm) >= 3.8


async def test_when_the_last_path_fails_the_call_ends(autojump_clock: trio.abc.Clock) -> None:
    async with (
        paths(2, [None, None]) as pairs,
        MediaCall(keys=keys_for(True), source=SilenceSource(), sink=MemorySink()) as a,
        MediaCall(keys=keys_for(False), source=SilenceSource(), sink=MemorySink()) as b,
    ):
        for i, (ours, theirs) in enumerate(pairs):
            a.add_path(ours, path=i)
            b.add_path(theirs, path=i)
        await trio.sleep(0.5)
        await pairs[0][0].aclose()
        await trio.sleep(0.5)
        assert a.ended is None
        assert b.ended is None
        await pairs[1][0].aclose()
        with trio.fail_after(5):
            ended_a = await a.wait_ended()
            ended_b = await b.wait_ended()
    assert ended_a.reason is EndReason.CLOSED
    assert ended_b.reason is EndReason.PEER_CLOSED


async def _two_path_listener(
    pairs: list[Pair],
) -> tuple[MediaCall, list[tuple[int, str]]]:
    closed: list[tuple[int, str]] = []
    b = MediaCall(
        keys=keys_for(False),
        source=SilenceSource(),
        sink=MemorySink(),
        on_path_closed=lambda p, why: closed.append((p, why)),
    )
    for i, (_ours, theirs) in enumerate(pairs):
        b.add_path(theirs, path=i)
    return b, closed


def _sealers() -> list[MediaSealer]:
    return [MediaSealer(keys_for(True)(i).send) for i in range(2)]


@pytest.mark.parametrize("attack", ["forged", "replayed", "copied from path 0"])
async def test_a_bad_frame_on_one_path_closes_that_path_only(
    attack: str, autojump_clock: trio.abc.Clock
) -> None:
    async with paths(2, [None, None]) as pairs:
        b, closed = await _two_path_listener(pairs)
        sealers = _sealers()
        async with b:
            frame0 = sealers[0].seal(seq=0, timestamp_ms=0, packets=[b"\xf8\xff\xfe"])
            frame1 = sealers[1].seal(seq=0, timestamp_ms=0, packets=[b"\xf8\xff\xfe"])
            await pairs[0][0].send_all(frame0)
            await pairs[1][0].send_all(frame1)  # a copy: dropped silently
            await trio.sleep(0.2)
            assert closed == []
            if attack == "forged":
                bad = struct.pack(">H", 40) + b"\x01" * 40
            elif attack == "replayed":
                bad = frame1
            else:
                bad = sealers[0].seal(seq=1, timestamp_ms=20, packets=[b"\xf8\xff\xfe"])
            await pairs[1][0].send_all(bad)
            await trio.sleep(0.2)
            assert [p for p, _ in closed] == [1]
            assert "authentication" in closed[0][1]
            assert b.ended is None  # path 0 carries on
            assert b.statistics().duplicate_frames == 1
            if attack == "copied from path 0":
                follow = bad  # where it belongs, it opens
            else:
                follow = sealers[0].seal(seq=2, timestamp_ms=40, packets=[b"\xf8\xff\xfe"])
            await pairs[0][0].send_all(follow)
            await trio.sleep(0.2)
            assert b.statistics().received_frames == 2
            await b.hang_up()


async def test_every_path_carries_frames_of_one_size(
    speech_wav: pathlib.Path, autojump_clock: trio.abc.Clock
) -> None:
    async with paths(2, [None, None]) as pairs:
        a = MediaCall(keys=keys_for(True), source=WavSource(speech_wav), sink=MemorySink())
        sizes: list[set[int]] = [set(), set()]

        async def read(i: int) -> None:
            receiver = MediaReceiver(keys_for(False)(i).receive)
            stream = pairs[i][1]
            while data := await stream.receive_some():
                receiver.receive_data(data)
                while (frame := receiver.next_frame()) is not None:
                    if frame.end:
                        await stream.aclose()
                        return
                    sizes[i].add(sum(len(p) for p in frame.packets))

        async with a, trio.open_nursery() as nursery:
            for i, (ours, _theirs) in enumerate(pairs):
                a.add_path(ours, path=i)
                nursery.start_soon(read, i)
    assert sizes[0] == sizes[1]
    assert len(sizes[0]) == 1  # constant bitrate: one packet size on both paths


async def test_speech_said_before_any_path_opened_is_heard(
    speech_wav: pathlib.Path, speech_pcm: np.ndarray, autojump_clock: trio.abc.Clock
) -> None:
    """The call starts when it is answered; its paths may open a moment later."""
    seconds = speech_pcm.size / 16000
    sink = MemorySink()
    async with paths(2, [None, None]) as pairs:
        a = MediaCall(keys=keys_for(True), source=WavSource(speech_wav), sink=MemorySink())
        b = MediaCall(keys=keys_for(False), source=SilenceSource(seconds=seconds + 5), sink=sink)
        async with a, b:
            await trio.sleep(2.0)  # the rendezvous takes a while
            for i, (ours, theirs) in enumerate(pairs):
                a.add_path(ours, path=i)
                b.add_path(theirs, path=i)
            with trio.fail_after(seconds + 30):
                await a.wait_ended()
                await b.wait_ended()
    sa, sb = a.statistics(), b.statistics()
    assert sa.send_dropped_frames == 0
    assert sb.received_frames == sa.sent_frames
    heard = np.frombuffer(bytes(sink.pcm), dtype="<i2")
    assert first_100_ms_heard(speech_pcm, heard)
    assert pesq_wb(speech_pcm, sink.pcm) >= 3.8
    # The 2 s the frames waited for a path are not the network's: neither the
    # jitter buffer's target nor the round trip (instant paths here) counts them.
    assert sb.target_delay_ms == pytest.approx(100.0)
    assert sa.round_trip_ms is not None
    assert sa.round_trip_ms < 100


async def test_a_backlog_that_overflows_lets_silence_go_not_speech(
    tmp_path: pathlib.Path, speech_pcm: np.ndarray, autojump_clock: trio.abc.Clock
) -> None:
    """The rendezvous takes longer than the backlog holds: silence goes, every
    word said before it is heard, and the frames kept leave without gaps."""
    onset = int(np.argmax(np.abs(speech_pcm) > 300))
    first, second = speech_pcm[onset : onset + 16000], speech_pcm[onset + 32000 : onset + 48000]
    said = np.concatenate([first, np.zeros(5 * 16000, dtype="<i2"), second])  # 7 s, 350 frames
    wav = tmp_path / "words-pause-words.wav"
    write_wav(wav, said)
    params = MediaParams(start_backlog_frames=200)  # 4 s
    sink = MemorySink()
    async with paths(1, [None]) as pairs:
        a = MediaCall(keys=keys_for(True), source=WavSource(wav), sink=MemorySink(), params=params)
        b = MediaCall(
            keys=keys_for(False), source=SilenceSource(seconds=20), sink=sink, params=params
        )
        async with a, b:
            await trio.sleep(7.5)  # everything is said before the path opens
            a.add_path(pairs[0][0], path=0)
            b.add_path(pairs[0][1], path=0)
            with trio.fail_after(60):
                await a.wait_ended()
                await b.wait_ended()
    sa, sb = a.statistics(), b.statistics()
    assert sa.send_dropped_frames == 150  # 350 said, 200 kept
    assert sb.received_frames == 200
    assert sb.missing_frames == 0  # numbered afresh: no gap where silence went
    heard = np.frombuffer(bytes(sink.pcm), dtype="<i2")
    assert first_100_ms_heard(first, heard), "the words before the pause were lost"
    assert first_100_ms_heard(second, heard), "the words after the pause were lost"


async def _late_start_then_bye(
    tmp_path: pathlib.Path,
    speech_pcm: np.ndarray,
    pair: Pair,
    *,
    play_out: bool,
    bye: bool = True,
    rendezvous_s: float = 2.0,
) -> tuple[bool, MediaCall]:
    """3 s of speech, the path opens after ``rendezvous_s``, the caller hangs up
    0.2 s after its last word and lets its paths go; the callee is told by the
    BYE (or, ``bye=False``, only by the caller's END). Whether the callee heard
    the last 300 ms of speech, and its call."""
    onset = int(np.argmax(np.abs(speech_pcm) > 300))
    said = speech_pcm[onset : onset + 3 * 16000]
    last = int(np.nonzero(np.abs(said) > 300)[0][-1])
    wav = tmp_path / "three-seconds.wav"
    write_wav(wav, said)
    sink = MemorySink()
    a = MediaCall(keys=keys_for(True), source=WavSource(wav), sink=MemorySink())
    b = MediaCall(keys=keys_for(False), source=SilenceSource(seconds=20), sink=sink)
    async with b:
        async with a:
            await trio.sleep(rendezvous_s)
            a.add_path(pair[0], path=0)
            b.add_path(pair[1], path=0)
            await a.wait_sent()  # the caller has said it all, and it has all gone out
            async with trio.open_nursery() as nursery:
                nursery.start_soon(a.hang_up)
                if bye:
                    nursery.start_soon(partial(b.hang_up, play_out=play_out))
        # The caller's media is gone (its streams closed) while the callee may still play.
        with trio.fail_after(10):
            await b.wait_ended()
    heard = np.frombuffer(bytes(sink.pcm), dtype="<i2")
    return first_100_ms_heard(said[last - 4800 : last + 1], heard), b


@pytest.mark.parametrize("play_out", [True, False])
async def test_a_bye_after_a_late_start_lets_the_last_words_play_out(
    tmp_path: pathlib.Path, speech_pcm: np.ndarray, play_out: bool, autojump_clock: trio.abc.Clock
) -> None:
    """The path opened late, so the callee is seconds behind when the caller
    hangs up: its BYE must not cut off what the caller said last."""
    async with paths(1, [None]) as pairs:
        heard, _ = await _late_start_then_bye(tmp_path, speech_pcm, pairs[0], play_out=play_out)
    assert heard is play_out


async def test_the_last_words_play_out_after_the_callers_socket_closed(
    tmp_path: pathlib.Path, speech_pcm: np.ndarray
) -> None:
    """The caller's END comes, no BYE yet; the callee is more than the 2 s the
    caller waits for its END behind, so the caller's socket closes while the
    callee still plays: that must not end its call before what came has played
    (the real clock: sockets)."""
    heard, b = await _late_start_then_bye(
        tmp_path, speech_pcm, await _tcp_pair(), play_out=True, bye=False, rendezvous_s=4.0
    )
    assert heard
    assert b.ended is not None
    assert b.ended.reason is EndReason.FINISHED


async def test_paths_are_numbered_once_and_not_after_the_end(
    autojump_clock: trio.abc.Clock,
) -> None:
    async with paths(3, [None, None, None]) as pairs:
        a = MediaCall(keys=keys_for(True), source=SilenceSource(), sink=MemorySink())
        async with a:
            a.add_path(pairs[0][0], path=0)
            with pytest.raises(LocalError, match="already"):
                a.add_path(pairs[1][0], path=0)
            with pytest.raises(LocalError, match="numbered"):
                a.add_path(pairs[1][0], path=99)
            await a.hang_up()
            with pytest.raises(LocalError, match="ended"):
                a.add_path(pairs[2][0], path=2)
    single = MediaCall(keys=keys_for(True)(0), source=SilenceSource(), sink=MemorySink())
    with pytest.raises(LocalError, match="one path"):
        single.add_path(pairs[1][0], path=1)


async def test_statistics_of_a_single_path_call_count_one_path(
    autojump_clock: trio.abc.Clock,
) -> None:
    pair = trio.testing.memory_stream_pair()
    call = MediaCall(pair[0], keys=keys_for(True)(0), source=SilenceSource(), sink=MemorySink())
    s = call.statistics()
    assert (s.open_paths, s.used_paths, s.duplicate_frames) == (1, 1, 0)


async def _tcp_pair() -> tuple[trio.SocketStream, trio.SocketStream]:
    listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
    port = listeners[0].socket.getsockname()[1]
    async with listeners[0]:
        a = await trio.open_tcp_stream("127.0.0.1", port)
        b = await listeners[0].accept()
    return a, b


@pytest.mark.parametrize("trial", range(3))
async def test_a_hang_up_over_socket_paths_reaches_the_peer_whole(trial: int) -> None:
    """The side that hangs up waits for the peer's END before closing: its own END is
    never thrown away by a reset, so the peer sees a hang-up, not a broken path."""
    pairs = [await _tcp_pair() for _ in range(2)]
    async with MediaCall(keys=keys_for(False), source=SilenceSource(), sink=MemorySink()) as b:
        async with MediaCall(keys=keys_for(True), source=SilenceSource(), sink=MemorySink()) as a:
            for i, (ours, theirs) in enumerate(pairs):
                a.add_path(ours, path=i)
                b.add_path(theirs, path=i)
            await trio.sleep(0.3 + 0.1 * trial)
            assert (await a.hang_up()).reason is EndReason.HUNG_UP
        with trio.fail_after(5):
            ended = await b.wait_ended()
    assert ended.reason is EndReason.FINISHED
    assert ended.detail == "the peer hung up"
    assert [v.closed_because for v in b.paths()] == ["", ""]
