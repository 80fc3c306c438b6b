"""Voice call bench: quality, delay and CPU of calls, one path against several, and a baseline.

Offline part (``python -m bench.call``; no Tor):
  * PESQ-WB of Opus (CBR, 20 ms, 16 kHz) on espeak-ng speech at 12/16/24/32 kbit/s;
  * playout on the seeded Tor-like delay model (``anonsip.media.TorLikeDelay``,
    one independent trace per path): jitter-buffer policies on one path, and
    two or three paths with every frame on each ("dup") or alternating
    ("alt"); PESQ-WB (mean and worst of 8 seeds), mouth-to-ear mean and p95,
    the share of frames whose first copy arrived within 360 ms one way
    (DONAR's measure), concealed and skipped frames;
  * CPU per 20 ms frame: encode + seal, open + decode;
  * whole calls through the real media loop (``MediaCall``) over streams
    delayed by the model, one path against two, 5 calls each: PESQ-WB of
    everything the listener played, untrimmed (mean and worst),
    mouth-to-ear p50/p95, share within 360 ms, concealed frames.

Private-network part (``--testnet DIR`` runs on that network, which may be
a WAN-shaped one; ``--onion`` starts a loopback one; ``--onion-only`` skips
the offline part). ``--network`` names the network in the output. Every
figure comes with the raw onion baseline of the same network, same run:
  * the raw baseline between two client tors (cold connect, 64-byte echo);
  * the media loop over real onion streams between those tors, each path a
    stream on its own circuit (its own SOCKS isolation, its own
    rendezvous), one path against two, 5 calls each: the figures above,
    plus mouth-to-ear minus the raw one-way onion delay (half the echo
    round trip): what anonsip's buffer and codec add to Tor;
  * nothing lost at the start (issue 15 item 5), between real node
    processes: a caller plays a spoken clip into a call the callee answers
    automatically and records; the callee's whole recording against the
    clip, PESQ-WB untrimmed, whether its first 100 ms of speech are there,
    how long after the answer the speech began to play, and the callee's
    playout target at the end (the start's wait must not leave it high);
  * call setup, from the ``call`` op to the answer: the first call of a
    node that just joined; after a restart with a fresh DHT lookup or with
    the contact's cached onion; on an open link; as ratios to the raw cold
    connect of the same run;
  * CPU of one call, each node process and its tor, during a call minus
    while idle, in percent of one core.

Mouth-to-ear is capture-to-playout (network + buffer) plus 20 ms of
packetisation and Opus's 6.5 ms look-ahead; sound-card buffers are not
included. Socket paths are read at the 20 ms playout tick, so one-way
figures over onion streams are up to 20 ms pessimistic. Prints tables,
then one JSON line.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import pathlib
import statistics
import sys
import tempfile
import time
import wave
from collections.abc import Callable, Sequence
from contextlib import AsyncExitStack
from typing import Any

import numpy as np
import trio
import trio.testing
from pesq import pesq

from anonsip import AnonsipError
from anonsip.control import TrioControlClient
from anonsip.demo._clip import speak
from anonsip.media import (
    JitterBuffer,
    JitterPolicy,
    MediaKeys,
    MediaReceiver,
    MediaSealer,
    OpusDecoder,
    OpusEncoder,
    Play,
    TorLikeDelay,
    derive_media_keys,
    first_arrivals,
    replay_trace,
)
from anonsip.media._jitter import Conceal
from anonsip.media.io import (
    DelayedStream,
    MediaCall,
    MediaParams,
    MemorySink,
    PathMode,
    SilenceSource,
    WavSource,
)
from anonsip.nodeproc import NodeFleet, NodeProcess, children
from bench._common import client_tors, private_network
from bench.onion_baseline import measure_baseline
from onion.testnet import TestnetInfo

RATE = 16000
FRAME = 320
CODEC_EXTRA_MS = 20 + 6.5  # packetisation + Opus look-ahead
ONE_WAY_LIMIT_MS = 360.0  # DONAR's bound for a usable call
SENTENCES = [
    "The quick brown fox jumps over the lazy dog.",
    "Voice calls over onion services must stay clear and private.",
    "Nobody on the path learns who is speaking, or when.",
    "Please call me back tomorrow afternoon at three.",
    "The weather was cold, but the coffee was warm and strong.",
    "Seven slim swans swam silently southward.",
]
HELLO = "Hello, this is Alice. Can you hear me? " + " ".join(SENTENCES[:2])
SEEDS = range(1, 9)
CALLS = 5


def make_speech(directory: pathlib.Path, text: str, name: str) -> pathlib.Path:
    try:
        return speak(text, directory / f"{name}.wav", rate=RATE)
    except AnonsipError as exc:
        sys.exit(f"bench/call.py: {exc}")


def read_pcm(path: pathlib.Path) -> np.ndarray:
    with wave.open(str(path), "rb") as w:
        return np.frombuffer(w.readframes(w.getnframes()), dtype="<i2")


def frames_of(pcm: np.ndarray) -> list[bytes]:
    n = len(pcm) // FRAME
    return [pcm[i * FRAME : (i + 1) * FRAME].tobytes() for i in range(n)]


def pesq_wb(reference: np.ndarray, degraded: bytes | np.ndarray) -> float:
    deg = (
        np.frombuffer(bytes(degraded), dtype="<i2")
        if isinstance(degraded, bytes | bytearray)
        else degraded
    )
    return float(pesq(RATE, reference.astype(np.float32), deg.astype(np.float32), "wb"))


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def speech_onset(pcm: np.ndarray) -> int:
    return int(np.argmax(np.abs(pcm.astype(np.int32)) > 300))


def first_100_ms(reference: np.ndarray, heard: np.ndarray) -> tuple[bool, float]:
    """Whether the first 100 ms of speech are in ``heard`` (normalised correlation
    >= 0.8), and where (seconds into ``heard``) they play."""
    ref = reference.astype(np.float64)
    onset = speech_onset(reference)
    piece = ref[onset : onset + RATE // 10]
    rec = heard.astype(np.float64)
    if rec.size < piece.size:
        return False, math.nan
    corr = np.correlate(rec, piece, mode="valid")
    energy = np.sqrt(np.convolve(rec * rec, np.ones(piece.size), mode="valid")) + 1e-9
    score = corr / (energy * np.linalg.norm(piece))
    best = int(np.argmax(score))
    return bool(score[best] >= 0.8), best / RATE


# -- offline: codec, delay model, CPU ----------------------------------------------------


def clean_quality(pcm: np.ndarray) -> dict[int, float]:
    out = {}
    for bitrate in (12000, 16000, 24000, 32000):
        enc, dec = OpusEncoder(bitrate=bitrate), OpusDecoder()
        decoded = b"".join(dec.decode(enc.encode(f)) for f in frames_of(pcm))
        out[bitrate] = pesq_wb(pcm, decoded)
    return out


def vad(frames: list[bytes], *, rms: float = 200.0, hangover: int = 15) -> list[bool]:
    flags, quiet = [], 1 << 30
    for f in frames:
        x = np.frombuffer(f, dtype="<i2").astype(np.float32)
        quiet = 0 if math.sqrt(float(np.mean(x * x))) > rms else quiet + 1
        flags.append(quiet <= hangover)
    return flags


def model_run(
    pcm: np.ndarray, policy: JitterPolicy, seed: int, paths: int, alternate: bool
) -> dict[str, float]:
    frames = frames_of(pcm)
    enc, dec = OpusEncoder(bitrate=24000), OpusDecoder()
    packets = [enc.encode(f) for f in frames]
    # Path i of seed s has its own trace; path 0 is the same for any number of paths.
    delays = [TorLikeDelay(seed=100 * seed + i) for i in range(paths)]
    arrivals = first_arrivals(delays, len(frames), alternate=alternate)
    jb = JitterBuffer(policy)
    records = replay_trace(jb, arrivals, speech=vad(frames), payloads=packets)
    out = []
    for r in records:
        if isinstance(r.event, Play):
            out.append(dec.decode(r.event.payload))
        elif isinstance(r.event, Conceal):
            out.append(dec.conceal())
        else:
            out.append(b"\0" * 2 * FRAME)
    m2e = [r.time_ms - r.seq * 20 + CODEC_EXTRA_MS for r in records if r.seq is not None]
    one_way = [a - 20 * i for i, a in enumerate(arrivals)]
    s = jb.statistics()
    return {
        "pesq": pesq_wb(pcm, b"".join(out)),
        "m2e_mean": statistics.mean(m2e),
        "m2e_p95": pct(m2e, 0.95),
        "within_360": 100 * sum(x <= ONE_WAY_LIMIT_MS for x in one_way) / len(one_way),
        "concealed_pct": 100 * s.concealed_frames / max(1, s.played_frames + s.concealed_frames),
        "skipped": s.dropped_frames + s.compressed_frames,
    }


# (name, policy, paths, alternate)
MODEL_ROWS: list[tuple[str, JitterPolicy, int, bool]] = [
    ("1 path, adaptive (default)", JitterPolicy(), 1, False),
    ("1 path, min 40 ms", JitterPolicy(min_target_ms=40), 1, False),
    ("1 path, never catch up", JitterPolicy(catch_up_in_silence=False), 1, False),
    ("1 path, fixed 300 ms", JitterPolicy(adaptive=False, min_target_ms=300), 1, False),
    ("2 paths dup, min 100 ms", JitterPolicy(), 2, False),
    ("2 paths dup (default, 60)", JitterPolicy.for_paths(2), 2, False),
    ("2 paths dup, min 40 ms", JitterPolicy(min_target_ms=40), 2, False),
    ("2 paths alt", JitterPolicy.for_paths(2), 2, True),
    ("3 paths dup", JitterPolicy.for_paths(3), 3, False),
]


def model_table(pcm: np.ndarray) -> dict[str, dict[str, float]]:
    table = {}
    for name, policy, paths, alternate in MODEL_ROWS:
        runs = [model_run(pcm, policy, seed, paths, alternate) for seed in SEEDS]
        table[name] = {k: statistics.mean(r[k] for r in runs) for k in runs[0]}
        table[name]["pesq_min"] = min(r["pesq"] for r in runs)
    return table


def cpu_per_frame(pcm: np.ndarray) -> dict[str, float]:
    frames = frames_of(pcm)[:500]
    keys_a = derive_media_keys(bytes(32), "bench", caller=True)
    keys_b = derive_media_keys(bytes(32), "bench", caller=False)
    enc, dec = OpusEncoder(bitrate=24000), OpusDecoder()
    sealer, receiver = MediaSealer(keys_a.send), MediaReceiver(keys_b.receive)
    wires = []
    t0 = time.process_time()
    for i, f in enumerate(frames):
        wires.append(sealer.seal(seq=i, timestamp_ms=20 * i, packets=[enc.encode(f)]))
    t1 = time.process_time()
    for wire in wires:
        receiver.receive_data(wire)
        frame = receiver.next_frame()
        assert frame is not None
        dec.decode(frame.packets[0])
    t2 = time.process_time()
    return {
        "encode_seal_ms": 1000 * (t1 - t0) / len(frames),
        "open_decode_ms": 1000 * (t2 - t1) / len(frames),
        "frame_bytes": len(wires[0]),
    }


# -- whole calls through the media loop -----------------------------------------------------


def _keys(caller: bool) -> Callable[[int], MediaKeys]:
    def keys(path: int) -> MediaKeys:
        return derive_media_keys(bytes(range(32)), "bench-call", caller=caller, path=path)

    return keys


async def one_call(
    streams_a: Sequence[trio.abc.Stream],
    streams_b: Sequence[trio.abc.Stream],
    wav: pathlib.Path,
    params: MediaParams | None = None,
) -> dict[str, Any]:
    """A plays ``wav`` to B over the paths; both ends in this process, one clock."""
    reference = read_pcm(wav)
    seconds = len(reference) / RATE
    sink_b = MemorySink()
    async with (
        MediaCall(keys=_keys(True), source=WavSource(wav), sink=MemorySink(), params=params) as a,
        MediaCall(
            keys=_keys(False),
            source=SilenceSource(seconds=seconds + 5),
            sink=sink_b,
            params=params,
        ) as b,
    ):
        for i, (end_a, end_b) in enumerate(zip(streams_a, streams_b, strict=True)):
            a.add_path(end_a, path=i)
            b.add_path(end_b, path=i)
        with trio.fail_after(seconds + 60):
            await a.wait_ended()
            await b.wait_ended()
    m2e = [1000 * (t - (a.media_start + ts / 1000)) + CODEC_EXTRA_MS for t, ts in b.played]
    one_way = [
        1000 * (b.media_start - a.media_start) + arrived - sent for _, sent, arrived in b.arrivals
    ]
    sb = b.statistics()
    heard = np.frombuffer(bytes(sink_b.pcm), dtype="<i2")
    return {
        "pesq": pesq_wb(reference, heard),
        "m2e_p50": statistics.median(m2e),
        "m2e_p95": pct(m2e, 0.95),
        "within_360": 100 * sum(x <= ONE_WAY_LIMIT_MS for x in one_way) / max(1, len(one_way)),
        "one_way_p50": statistics.median(one_way),
        "concealed": sb.concealed_frames,
        "played": sb.played_frames,
        "duplicates": sb.duplicate_frames,
        "first_100_ms": first_100_ms(reference, heard)[0],
    }


def summarise(calls: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "calls": len(calls),
        "pesq_mean": statistics.mean(c["pesq"] for c in calls),
        "pesq_worst": min(c["pesq"] for c in calls),
        "m2e_p50": statistics.median(c["m2e_p50"] for c in calls),
        "m2e_p95": max(c["m2e_p95"] for c in calls),
        "within_360": statistics.mean(c["within_360"] for c in calls),
        "one_way_p50": statistics.median(c["one_way_p50"] for c in calls),
        "concealed": statistics.mean(c["concealed"] for c in calls),
        "first_100_ms": f"{sum(c['first_100_ms'] for c in calls)}/{len(calls)}",
    }


async def modelled_calls(wav: pathlib.Path, paths: int, mode: PathMode) -> dict[str, Any]:
    """CALLS calls over memory streams delayed by the model (one seed per path and call)."""
    calls = []
    for call in range(CALLS):
        async with AsyncExitStack() as stack:
            ends_a: list[trio.abc.Stream] = []
            ends_b: list[trio.abc.Stream] = []
            for i in range(paths):
                raw_a, raw_b = trio.testing.memory_stream_pair()
                delay = TorLikeDelay(seed=1000 + 100 * call + i)
                ends_a.append(await stack.enter_async_context(DelayedStream(raw_a, delay)))
                ends_b.append(raw_b)
            params = MediaParams(path_mode=mode, jitter=JitterPolicy.for_paths(paths))
            calls.append(await one_call(ends_a, ends_b, wav, params))
    return summarise(calls)


async def modelled(wav: pathlib.Path) -> dict[str, dict[str, Any]]:
    return {
        "1 path": await modelled_calls(wav, 1, PathMode.DUPLICATE),
        "2 paths dup": await modelled_calls(wav, 2, PathMode.DUPLICATE),
        "2 paths alt": await modelled_calls(wav, 2, PathMode.ALTERNATE),
    }


CALL_COLUMNS = (
    f"  {'':<14} {'PESQ-WB':>7} {'worst':>5} {'m2e p50':>8} {'p95':>6} "
    f"{'<=360ms':>8} {'conceal':>7} {'1st 100ms':>9}"
)


def call_row(name: str, r: dict[str, Any]) -> str:
    return (
        f"  {name:<14} {r['pesq_mean']:7.2f} {r['pesq_worst']:5.2f} {r['m2e_p50']:8.0f} "
        f"{r['m2e_p95']:6.0f} {r['within_360']:7.1f}% {r['concealed']:7.1f} "
        f"{r['first_100_ms']:>9}"
    )


def offline(directory: pathlib.Path) -> dict[str, object]:
    """The offline part: prints its tables, returns its figures."""
    # Sentences with conversational pauses (the other party's turn): the
    # buffer may only catch up in silence, so the material needs some.
    parts = [read_pcm(make_speech(directory, t, f"s{i}")) for i, t in enumerate(SENTENCES)]
    pause = np.zeros(RATE, dtype="<i2")
    long_wav = directory / "long.wav"
    with wave.open(str(long_wav), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(RATE)
        w.writeframes(np.concatenate([x for p in parts for x in (p, pause)]).tobytes())
    hello_wav = make_speech(directory, HELLO, "hello")
    pcm = read_pcm(long_wav)
    seconds = len(pcm) / RATE
    clean = clean_quality(pcm)
    table = model_table(pcm)
    cpu = cpu_per_frame(pcm)
    calls = trio.run(modelled, hello_wav, clock=trio.testing.MockClock(autojump_threshold=0))

    print(f"Speech: espeak-ng, {seconds:.1f} s with 1 s pauses, 16 kHz, Opus CBR 20 ms frames\n")
    print("Clean Opus quality")
    print(f"  {'bitrate':>10}  {'PESQ-WB':>7}")
    for bitrate, score in clean.items():
        print(f"  {bitrate // 1000:>7} kb/s  {score:7.2f}")
    print(
        f"\nTor-like delay model (250 ms base, walk, stalls; one trace per path), "
        f"24 kbit/s, {len(SEEDS)} seeds"
    )
    print(
        f"  {'':<28} {'PESQ-WB':>7} {'min':>5} {'m2e ms':>7} {'p95 ms':>7} {'<=360ms':>8} "
        f"{'conc %':>6} {'skip':>5}"
    )
    for name, r in table.items():
        print(
            f"  {name:<28} {r['pesq']:7.2f} {r['pesq_min']:5.2f} {r['m2e_mean']:7.0f} "
            f"{r['m2e_p95']:7.0f} {r['within_360']:7.1f}% {r['concealed_pct']:6.2f} "
            f"{r['skipped']:5.1f}"
        )
    print("\nCPU per 20 ms frame (24 kbit/s, complexity 9)")
    print(f"  encode + seal   {cpu['encode_seal_ms']:.3f} ms")
    print(f"  open + decode   {cpu['open_decode_ms']:.3f} ms")
    print(f"  frame on wire   {cpu['frame_bytes']:.0f} bytes (constant)")
    print(f"\nWhole calls through the media loop on the delay model, {CALLS} calls each")
    print(CALL_COLUMNS)
    for name, r in calls.items():
        print(call_row(name, r))
    return {
        "clean_pesq_wb": {str(k): round(v, 3) for k, v in clean.items()},
        "tor_model": {k: {m: round(x, 3) for m, x in v.items()} for k, v in table.items()},
        "cpu": {k: round(v, 4) for k, v in cpu.items()},
        "model_calls": _rounded(calls),
    }


def _rounded(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _rounded(v) for k, v in value.items()}
    if isinstance(value, float):
        return round(value, 3)
    return value


# -- the private Tor network part -----------------------------------------------------

CALL_TIMEOUT = 90.0
_TICK = os.sysconf("SC_CLK_TCK")


async def onion_calls(info: TestnetInfo, wav: pathlib.Path) -> dict[str, Any]:
    """The raw baseline, then the media loop over 1 and 2 onion streams, CALLS calls each."""
    async with client_tors(info, 2, "call") as (client, server):
        baseline = await measure_baseline(
            client, server, echoes=200, bulk_bytes=1024 * 1024, cold_samples=3
        )
        send, receive = trio.open_memory_channel[tuple[int, trio.SocketStream]](8)
        done = trio.Event()

        async def handler(stream: trio.SocketStream) -> None:
            index = await stream.receive_some(1)
            if len(index) == 1:
                await send.send((index[0], stream))
                await done.wait()  # the service closes the stream when the handler returns

        results: dict[str, Any] = {}
        async with server.publish_service(handler) as service:
            await service.wait_published(60)
            try:
                for paths in (1, 2):
                    calls = []
                    for call in range(CALLS):
                        ends_a: list[trio.abc.Stream] = []
                        for i in range(paths):
                            stream = await client.open_stream(
                                service.address,
                                80,
                                isolation=f"media-{paths}-{call}-{i}",
                                timeout=60,
                                # "Published" is one HSDir; on WAN the one asked may lag.
                                not_found_retry=60,
                            )
                            await stream.send_all(bytes([i]))
                            ends_a.append(stream)
                        arrived = sorted([await receive.receive() for _ in range(paths)])
                        params = MediaParams(jitter=JitterPolicy.for_paths(paths))
                        ends_b = [s for _, s in arrived]
                        calls.append(await one_call(ends_a, ends_b, wav, params))
                    results[f"{paths} path" + ("s" if paths > 1 else "")] = summarise(calls)
            finally:
                done.set()
    one_way = float(baseline["echo_rtt_median_ms"]) / 2
    for r in results.values():
        r["added_m2e_p50"] = r["m2e_p50"] - one_way
    return {"baseline": baseline, "one_way_onion_ms": one_way, "media": results}


async def _until(
    client: TrioControlClient, call_id: str, states: tuple[str, ...]
) -> dict[str, object]:
    with trio.fail_after(CALL_TIMEOUT):
        async for event in client.events():
            data = event.data
            if event.event == "call" and data.get("call_id") == call_id and data["state"] in states:
                return dict(data)
    raise RuntimeError("the node closed its control connection")


async def timed_call(
    caller: NodeProcess, callee: str, hold_s: float = 0.0, play: pathlib.Path | None = None
) -> float:
    """Seconds from the ``call`` op to the answer; the call is then held ``hold_s`` and hung up."""
    async with caller.client() as client:
        await client.subscribe()
        start = trio.current_time()
        args: dict[str, Any] = {"peer": callee, "record": os.devnull}
        if play is not None:
            args["play"] = str(play)
        call_id = (await client.call("call", **args))["call_id"]
        answered = await _until(client, call_id, ("active", "ended"))
        took = trio.current_time() - start
        if answered["state"] == "ended":
            raise RuntimeError(f"the call was not answered: {answered.get('reason')}")
        await trio.sleep(hold_s)
        await client.call("hangup", call_id=call_id)
        await _until(client, call_id, ("ended",))
    return took


async def spoken_call(
    caller: NodeProcess, callee: NodeProcess, clip: pathlib.Path, record: pathlib.Path
) -> dict[str, Any]:
    """The caller plays ``clip`` into a call the callee auto-answers and records."""
    reference = read_pcm(clip)
    seconds = len(reference) / RATE
    async with caller.client() as c_caller, callee.client() as c_callee:
        await c_caller.subscribe()
        await c_callee.subscribe()
        call_id = (
            await c_caller.call(
                "call", peer=callee.address, play=str(clip), record=os.devnull, seconds=seconds + 3
            )
        )["call_id"]
        await _until(c_caller, call_id, ("active",))
        ended = await _until(c_callee, call_id, ("ended",))  # the recording is closed
        await _until(c_caller, call_id, ("ended",))
    heard = read_pcm(record)
    found, at = first_100_ms(reference, heard)
    return {
        "pesq": pesq_wb(reference, heard),
        "first_100_ms": found,
        # The callee's recording starts at its answer: how late the first word played.
        "speech_starts_s": at - speech_onset(reference) / RATE,
        # Whether the start's wait left the callee's jitter buffer aiming high.
        "target_at_end_ms": float(ended["stats"]["target_delay_ms"]),
    }


def cpu_seconds(pid: int) -> float:
    fields = pathlib.Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / _TICK  # utime, stime


def _cpu_of(nodes: list[NodeProcess]) -> dict[str, float]:
    out = {}
    for node in nodes:
        out[f"{node.name}.node"] = cpu_seconds(node.pid)
        out[f"{node.name}.tor"] = sum(cpu_seconds(p) for p in children(node.pid))
    return out


async def cpu_of_call(
    caller: NodeProcess, callee: NodeProcess, seconds: float, clip: pathlib.Path
) -> dict[str, float]:
    """Percent of one core per process: during a call of ``seconds`` (the caller plays
    speech, the callee auto-answers and records) minus idle as long."""
    nodes = [caller, callee]
    before = _cpu_of(nodes)
    await trio.sleep(seconds)
    idle = {k: v - before[k] for k, v in _cpu_of(nodes).items()}
    before = _cpu_of(nodes)
    start = trio.current_time()
    await timed_call(caller, callee.address, hold_s=seconds, play=clip)
    elapsed = trio.current_time() - start
    busy = {k: v - before[k] for k, v in _cpu_of(nodes).items()}
    return {k: round(100 * (busy[k] / elapsed - idle[k] / seconds), 2) for k in sorted(busy)}


async def node_part(
    info: TestnetInfo, root: pathlib.Path, clip: pathlib.Path, callers: int, cpu_s: float
) -> dict[str, Any]:
    record = root / "bob-heard.wav"
    with NodeFleet(root, pathlib.Path(info.directory)) as fleet:
        fleet.add("seed")
        bob = fleet.nodes["bob"] = NodeProcess(
            "bob",
            root / "bob",
            testnet=fleet.testnet,
            pow_bits=fleet.pow_bits,
            options=["--auto-answer", "--record", str(record)],
        )
        names = [f"caller{i}" for i in range(callers)]
        for name in names:
            fleet.add(name)
        await fleet.start_all("seed")
        await fleet.start_all("bob", *names, registered=True)
        for name in names:
            caller = fleet[name]
            await bob.call("contacts.add", address=caller.address, nick=name)
            # A contact without a cached onion: the first dial must look bob up.
            await caller.call("contacts.add", address=bob.address, nick="bob")
        first, warm, fresh, cached = [], [], [], []
        for name in names:
            caller = fleet[name]
            first.append(await timed_call(caller, bob.address))
            for _ in range(3):
                warm.append(await timed_call(caller, bob.address))
        spoken = [await spoken_call(fleet[names[0]], bob, clip, record) for _ in range(CALLS)]
        cpu = await cpu_of_call(fleet[names[0]], bob, cpu_s, clip)
        # Fresh and cached are both measured right after a restart (new tor
        # process, no link): forgetting and re-adding bob drops the cached
        # onion address, so the first dial must look him up in the DHT.
        for name in names:
            await fleet[name].call("contacts.remove", peer=bob.address)
            await fleet[name].call("contacts.add", address=bob.address, nick="bob")
            await fleet[name].shutdown()
        await fleet.start_all(*names, registered=True)
        for name in names:
            fresh.append(await timed_call(fleet[name], bob.address))
        for name in names:  # the restart keeps bob's cached onion address, not the link
            await fleet[name].shutdown()
        await fleet.start_all(*names, registered=True)
        for name in names:
            cached.append(await timed_call(fleet[name], bob.address))
    return {
        "spoken": spoken,
        "setup": {"first_s": first, "fresh_s": fresh, "cached_s": cached, "warm_s": warm},
        "cpu_percent": cpu,
    }


async def onion_part(
    info: TestnetInfo, wav: pathlib.Path, root: pathlib.Path, callers: int, cpu_s: float
) -> dict[str, Any]:
    media = await onion_calls(info, wav)
    nodes = await node_part(info, root, wav, callers, cpu_s)
    cold = float(media["baseline"]["cold_connect_s"])
    setup = nodes["setup"]
    spoken = nodes["spoken"]
    return {
        **media,
        "start_of_call": {
            "calls": len(spoken),
            "pesq_untrimmed_mean": statistics.mean(c["pesq"] for c in spoken),
            "pesq_untrimmed_worst": min(c["pesq"] for c in spoken),
            "first_100_ms": f"{sum(c['first_100_ms'] for c in spoken)}/{len(spoken)}",
            "speech_starts_s": [round(c["speech_starts_s"], 3) for c in spoken],
            "target_at_end_ms": [round(c["target_at_end_ms"]) for c in spoken],
            "pesq_per_call": [round(c["pesq"], 2) for c in spoken],
        },
        "setup": {
            **{k: [round(x, 3) for x in v] for k, v in setup.items()},
            **{
                f"{k}_vs_cold_connect": round(statistics.median(setup[f"{k}_s"]) / cold, 3)
                for k in ("first", "fresh", "cached", "warm")
            },
            **{
                f"{k}_median_s": round(statistics.median(setup[f"{k}_s"]), 3)
                for k in ("first", "fresh", "cached", "warm")
            },
        },
        "cpu_percent_of_core": nodes["cpu_percent"],
    }


def print_onion(r: dict[str, Any], network: str) -> None:
    base, setup, cpu, start = (
        r["baseline"],
        r["setup"],
        r["cpu_percent_of_core"],
        r["start_of_call"],
    )
    print(f"\nPrivate Tor network ({network}): raw onion baseline, same run")
    print(f"  cold connect            {base['cold_connect_s']:.3f} s")
    print(
        f"  64-byte echo RTT median {base['echo_rtt_median_ms']:.1f} ms "
        f"(one way {r['one_way_onion_ms']:.1f} ms)"
    )
    print(f"\nMedia loop over onion streams, each path its own circuit, {CALLS} calls each")
    print(CALL_COLUMNS + f" {'added p50':>9}")
    for name, m in r["media"].items():
        print(call_row(name, m) + f" {m['added_m2e_p50']:9.0f}")
    print("  (added p50: mouth-to-ear p50 minus the raw one-way onion delay)")
    print(
        f"\nStart of a call: a caller plays speech, the callee auto-answers and records ({network})"
    )
    print(
        f"  PESQ-WB untrimmed, mean {start['pesq_untrimmed_mean']:.2f}, worst "
        f"{start['pesq_untrimmed_worst']:.2f} over {start['calls']} calls"
    )
    print(f"  each call, in order: {start['pesq_per_call']}")
    print(f"  first 100 ms of speech in the recording: {start['first_100_ms']}")
    print(f"  speech began to play, s after the answer: {start['speech_starts_s']}")
    print(f"  callee's playout target at the end, ms: {start['target_at_end_ms']}")
    print("\nCall setup, call op to answer (auto-answer), median")
    for kind in ("first", "fresh", "cached", "warm"):
        print(
            f"  {kind:<7} {setup[kind + '_median_s']:7.3f} s  "
            f"{setup[kind + '_vs_cold_connect']:6.2f} x cold connect   {setup[kind + '_s']}"
        )
    print("\nCPU of one call, % of one core (during the call minus idle)")
    for key, value in cpu.items():
        print(f"  {key:<14} {value:6.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--testnet", metavar="DIR", help="also run the onion part on this network")
    parser.add_argument("--onion", action="store_true", help="also run the onion part")
    parser.add_argument("--onion-only", action="store_true", help="skip the offline part")
    parser.add_argument(
        "--network", default=None, help="what the network is, for the output (loopback, wan:…)"
    )
    parser.add_argument("--callers", type=int, default=2, help="caller nodes for setup times")
    parser.add_argument("--cpu-seconds", type=float, default=20.0)
    args = parser.parse_args()
    figures: dict[str, object] = {}
    with tempfile.TemporaryDirectory() as tmp:
        directory = pathlib.Path(tmp)
        if not args.onion_only:
            figures = offline(directory)
        if args.testnet or args.onion or args.onion_only:
            wav = make_speech(directory, HELLO, "onion")
            network = args.network or ("given network" if args.testnet else "loopback")
            with private_network(args.testnet) as info:
                nodes = pathlib.Path(info.directory) / "bench-call" / str(os.getpid())
                nodes.mkdir(parents=True)
                onion = trio.run(onion_part, info, wav, nodes, args.callers, args.cpu_seconds)
            print_onion(onion, network)
            figures["onion"] = {"network": network, **_rounded(onion)}
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
