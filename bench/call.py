"""Voice call bench: codec quality, playout on a Tor-like path, CPU; calls over onion services.

Offline part (``python -m bench.call``):
  * PESQ-WB of Opus (CBR, 20 ms, 16 kHz) on espeak-ng speech at 12/16/24/32 kbit/s;
  * the jitter buffer's policies on the seeded Tor-like delay model
    (``anonsip.media.TorLikeDelay``): PESQ-WB and mouth-to-ear delay;
  * CPU per 20 ms frame: encode + seal, open + decode;
  * one real-time run of the full media loop over local TCP through the
    delay model (``run_pipeline_over``).

Private-network part (``--testnet DIR`` reuses a running network, ``--onion``
starts one; ``--onion-only`` skips the offline part):
  * mouth-to-ear of the media loop over a real onion stream between two
    client tors, minus the raw one-way onion delay (half the warm 64-byte
    echo round trip of ``measure_baseline``, same tors, same run): what
    anonsip's buffer and codec add to Tor;
  * call setup time between real node processes, from the ``call`` op to
    the answer (the callee runs ``--auto-answer``): the first call of a node
    that just joined; after a restart (new tor process, no link) with a
    fresh DHT lookup ("fresh") or with the contact's cached onion address
    ("cached"); and on an open link ("warm"); as ratios to the raw cold
    connect of the same run;
  * CPU of one call: each node process and its tor, during a call minus
    while idle, in percent of one core.

Mouth-to-ear here is capture-to-playout (network + buffer) plus 20 ms of
packetisation and Opus's 6.5 ms look-ahead; sound-card buffers are not
included. Prints tables, then one JSON line.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import pathlib
import statistics
import subprocess
import sys
import tempfile
import time
import wave
from typing import Any

import numpy as np
import trio
from pesq import pesq

from anonsip import AnonsipError
from anonsip.control import TrioControlClient
from anonsip.demo._clip import speak
from anonsip.media import (
    JitterBuffer,
    JitterPolicy,
    MediaReceiver,
    MediaSealer,
    OpusDecoder,
    OpusEncoder,
    Play,
    TorLikeDelay,
    derive_media_keys,
    e_model_mos,
    replay_trace,
)
from anonsip.media._jitter import Conceal
from anonsip.media.io import DelayedStream, MediaCall, MemorySink, SilenceSource, WavSource
from anonsip.nodeproc import NodeFleet, NodeProcess, children
from bench._common import client_tors, private_network
from bench.onion_baseline import measure_baseline
from onion.testnet import TestnetInfo

RATE = 16000
FRAME = 320
CODEC_EXTRA_MS = 20 + 6.5  # packetisation + Opus look-ahead
SENTENCES = [
    "The quick brown fox jumps over the lazy dog.",
    "Voice calls over onion services must stay clear and private.",
    "Nobody on the path learns who is speaking, or when.",
    "Please call me back tomorrow afternoon at three.",
    "The weather was cold, but the coffee was warm and strong.",
    "Seven slim swans swam silently southward.",
]
SEEDS = range(1, 9)


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


def tor_model(pcm: np.ndarray, policy: JitterPolicy, seed: int) -> dict[str, float]:
    frames = frames_of(pcm)
    enc, dec = OpusEncoder(bitrate=24000), OpusDecoder()
    packets = [enc.encode(f) for f in frames]
    arrivals = TorLikeDelay(seed=seed).trace(len(frames))
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
    s = jb.statistics()
    return {
        "pesq": pesq_wb(pcm, b"".join(out)),
        "m2e_mean": statistics.mean(m2e),
        "m2e_p95": sorted(m2e)[int(0.95 * len(m2e))],
        "concealed_pct": 100 * s.concealed_frames / max(1, s.played_frames + s.concealed_frames),
        "dropped": s.dropped_frames + s.compressed_frames,
    }


POLICIES = {
    "adaptive (default)": JitterPolicy(),
    "adaptive, min 40 ms": JitterPolicy(min_target_ms=40),
    "never catch up": JitterPolicy(catch_up_in_silence=False),
    "adaptive + compress 1/10": JitterPolicy(compress_every=10),
    "fixed 300 ms": JitterPolicy(adaptive=False, min_target_ms=300),
}


def policy_table(pcm: np.ndarray) -> dict[str, dict[str, float]]:
    table = {}
    for name, policy in POLICIES.items():
        runs = [tor_model(pcm, policy, seed) for seed in SEEDS]
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
    t0 = time.perf_counter()
    for i, f in enumerate(frames):
        wires.append(sealer.seal(seq=i, timestamp_ms=20 * i, packets=[enc.encode(f)]))
    t1 = time.perf_counter()
    for wire in wires:
        receiver.receive_data(wire)
        frame = receiver.next_frame()
        assert frame is not None
        dec.decode(frame.packets[0])
    t2 = time.perf_counter()
    return {
        "encode_seal_ms": 1000 * (t1 - t0) / len(frames),
        "open_decode_ms": 1000 * (t2 - t1) / len(frames),
        "frame_bytes": len(wires[0]),
    }


async def run_pipeline_over(
    stream_a: trio.abc.Stream, stream_b: trio.abc.Stream, wav_in: pathlib.Path, seconds: float
) -> dict[str, float | str | None]:
    """Play ``wav_in`` from A to B over the two ends of any stream pair.

    Returns PESQ-WB of what B heard, mouth-to-ear (capture to playout, plus
    packetisation and codec look-ahead), and both sides' statistics. Both
    ends run in this process, so one clock measures the delay.
    """
    reference = read_pcm(wav_in)
    sink_b = MemorySink()
    keys_a = derive_media_keys(bytes(range(32)), "bench-call", caller=True)
    keys_b = derive_media_keys(bytes(range(32)), "bench-call", caller=False)
    async with (
        MediaCall(stream_a, keys=keys_a, source=WavSource(wav_in), sink=MemorySink()) as a,
        MediaCall(
            stream_b, keys=keys_b, source=SilenceSource(seconds=seconds + 5), sink=sink_b
        ) as b,
    ):
        with trio.fail_after(seconds + 60):
            ended_a = await a.wait_ended()
            ended_b = await b.wait_ended()
    m2e = [1000 * (t - (a.media_start + ts / 1000)) + CODEC_EXTRA_MS for t, ts in b.played]
    sb = b.statistics()
    return {
        "pesq_wb": pesq_wb(reference, bytes(sink_b.pcm)),
        "m2e_median_ms": statistics.median(m2e),
        "m2e_p95_ms": sorted(m2e)[int(0.95 * len(m2e))],
        "round_trip_ms": a.statistics().round_trip_ms,
        "concealed_frames": sb.concealed_frames,
        "dropped_frames": sb.dropped_frames,
        "target_delay_ms": sb.target_delay_ms,
        "mos_estimate": sb.mos_estimate,
        "ended_a": ended_a.reason.value,
        "ended_b": ended_b.reason.value,
    }


async def pipeline_over_local_tcp(
    wav: pathlib.Path, seconds: float
) -> dict[str, float | str | None]:
    listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
    port = listeners[0].socket.getsockname()[1]
    async with listeners[0]:
        client = await trio.open_tcp_stream("127.0.0.1", port)
        server = await listeners[0].accept()
    async with DelayedStream(client, TorLikeDelay(seed=3)) as link:
        return await run_pipeline_over(link, server, wav, seconds)


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
    short_wav = make_speech(directory, " ".join(SENTENCES[:2]), "short")
    pcm = read_pcm(long_wav)
    seconds = len(pcm) / RATE
    clean = clean_quality(pcm)
    policies = policy_table(pcm)
    cpu = cpu_per_frame(pcm)
    live = trio.run(pipeline_over_local_tcp, short_wav, len(read_pcm(short_wav)) / RATE)

    print(f"Speech: espeak-ng, {seconds:.1f} s with 1 s pauses, 16 kHz, Opus CBR 20 ms frames\n")
    print("Clean Opus quality")
    print(f"  {'bitrate':>10}  {'PESQ-WB':>7}")
    for bitrate, score in clean.items():
        print(f"  {bitrate // 1000:>7} kb/s  {score:7.2f}")
    print(f"\nTor-like delay model (250 ms base, walk, stalls), 24 kbit/s, {len(SEEDS)} seeds")
    header = f"  {'policy':<26} {'PESQ-WB':>7} {'min':>5} {'m2e ms':>7} {'p95 ms':>7}"
    print(header + f" {'conc %':>6} {'drop':>5} {'E-model':>7}")
    for name, r in policies.items():
        mos = e_model_mos(
            one_way_delay_ms=r["m2e_mean"], bitrate=24000, concealed_percent=r["concealed_pct"]
        )
        print(
            f"  {name:<26} {r['pesq']:7.2f} {r['pesq_min']:5.2f} {r['m2e_mean']:7.0f} "
            f"{r['m2e_p95']:7.0f} {r['concealed_pct']:6.2f} {r['dropped']:5.1f} {mos:7.2f}"
        )
    print("\nCPU per 20 ms frame (24 kbit/s, complexity 9)")
    print(f"  encode + seal   {cpu['encode_seal_ms']:.3f} ms")
    print(f"  open + decode   {cpu['open_decode_ms']:.3f} ms")
    print(f"  frame on wire   {cpu['frame_bytes']:.0f} bytes (constant)")
    print("\nMedia loop in real time over local TCP through the delay model")
    for key, value in live.items():
        text = f"{value:.2f}" if isinstance(value, float) else str(value)
        print(f"  {key:<18} {text}")
    return {
        "clean_pesq_wb": {str(k): round(v, 3) for k, v in clean.items()},
        "tor_model": {k: {m: round(x, 3) for m, x in v.items()} for k, v in policies.items()},
        "cpu": {k: round(v, 4) for k, v in cpu.items()},
        "live_tcp": {k: round(v, 3) if isinstance(v, float) else v for k, v in live.items()},
    }


# -- the private Tor network part -----------------------------------------------------

CALL_TIMEOUT = 90.0
_TICK = os.sysconf("SC_CLK_TCK")


async def pipeline_over_onion(
    info: TestnetInfo, wav: pathlib.Path, seconds: float
) -> dict[str, object]:
    """The media loop over one onion stream between two client tors, and their baseline."""
    async with client_tors(info, 2, "call") as (client, server):
        baseline = await measure_baseline(
            client, server, echoes=200, bulk_bytes=1024 * 1024, cold_samples=3
        )
        send, receive = trio.open_memory_channel[trio.abc.Stream](1)
        done = trio.Event()

        async def handler(stream: trio.SocketStream) -> None:
            await send.send(stream)
            await done.wait()  # the service closes the stream when the handler returns

        async with server.publish_service(handler) as service:
            await service.wait_published(60)
            stream_a = await client.open_stream(service.address, 80, isolation="media", timeout=60)
            stream_b = await receive.receive()
            try:
                live = await run_pipeline_over(stream_a, stream_b, wav, seconds)
            finally:
                done.set()
    one_way = float(baseline["echo_rtt_median_ms"]) / 2
    m2e = live["m2e_median_ms"]
    assert isinstance(m2e, float)
    return {
        "baseline": baseline,
        "media": live,
        "one_way_onion_ms": round(one_way, 2),
        "added_m2e_median_ms": round(m2e - one_way, 1),
    }


class AutoAnswerNode(NodeProcess):
    """A node run with ``--auto-answer`` (silence in, nothing recorded)."""

    def start(self) -> None:
        assert not self.running, f"{self.name} is already running"
        self.reap()
        with open(self.home / "stdout.log", "ab") as out:
            self.process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "anonsip.cli",
                    "--home",
                    str(self.home),
                    "run",
                    "--testnet",
                    str(self.testnet),
                    "--pow-bits",
                    str(self.pow_bits),
                    "--auto-answer",
                    "--record",
                    os.devnull,
                ],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
            )


async def _until(
    client: TrioControlClient, call_id: str, states: tuple[str, ...]
) -> dict[str, object]:
    with trio.fail_after(CALL_TIMEOUT):
        async for event in client.events():
            data = event.data
            if event.event == "call" and data.get("call_id") == call_id and data["state"] in states:
                return dict(data)
    raise RuntimeError("the node closed its control connection")


async def timed_call(caller: NodeProcess, callee: str, hold_s: float = 0.0) -> float:
    """Seconds from the ``call`` op to the answer; the call is then held ``hold_s`` and hung up."""
    async with caller.client() as client:
        await client.subscribe()
        start = trio.current_time()
        call_id = (await client.call("call", peer=callee, record=os.devnull))["call_id"]
        answered = await _until(client, call_id, ("active", "ended"))
        took = trio.current_time() - start
        if answered["state"] == "ended":
            raise RuntimeError(f"the call was not answered: {answered.get('reason')}")
        await trio.sleep(hold_s)
        await client.call("hangup", call_id=call_id)
        await _until(client, call_id, ("ended",))
    return took


def cpu_seconds(pid: int) -> float:
    fields = pathlib.Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / _TICK  # utime, stime


def _cpu_of(nodes: list[NodeProcess]) -> dict[str, float]:
    out = {}
    for node in nodes:
        out[f"{node.name}.node"] = cpu_seconds(node.pid)
        out[f"{node.name}.tor"] = sum(cpu_seconds(p) for p in children(node.pid))
    return out


async def cpu_of_call(caller: NodeProcess, callee: NodeProcess, seconds: float) -> dict[str, float]:
    """Percent of one core per process: during a call of ``seconds`` minus idle as long."""
    nodes = [caller, callee]
    before = _cpu_of(nodes)
    await trio.sleep(seconds)
    idle = {k: v - before[k] for k, v in _cpu_of(nodes).items()}
    before = _cpu_of(nodes)
    start = trio.current_time()
    await timed_call(caller, callee.address, hold_s=seconds)
    elapsed = trio.current_time() - start
    busy = {k: v - before[k] for k, v in _cpu_of(nodes).items()}
    return {k: round(100 * (busy[k] / elapsed - idle[k] / seconds), 2) for k in sorted(busy)}


async def call_setup(
    info: TestnetInfo, root: pathlib.Path, callers: int, cpu_s: float
) -> dict[str, Any]:
    with NodeFleet(root, pathlib.Path(info.directory)) as fleet:
        fleet.add("seed")
        home = root / "bob"
        home.mkdir(mode=0o700)
        bob = fleet.nodes["bob"] = AutoAnswerNode("bob", home, fleet.testnet)
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
        cpu = await cpu_of_call(fleet[names[0]], bob, cpu_s)
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
        "first_s": first,
        "fresh_s": fresh,
        "cached_s": cached,
        "warm_s": warm,
        "cpu_percent": cpu,
    }


async def onion_part(
    info: TestnetInfo, wav: pathlib.Path, root: pathlib.Path, callers: int, cpu_s: float
) -> dict[str, object]:
    media = await pipeline_over_onion(info, wav, len(read_pcm(wav)) / RATE)
    setup = await call_setup(info, root, callers, cpu_s)
    baseline = media["baseline"]
    assert isinstance(baseline, dict)
    cold = float(baseline["cold_connect_s"])

    def med(key: str) -> float:
        values = setup[key]
        assert isinstance(values, list)
        return float(statistics.median(values))

    return {
        **media,
        "setup": {
            **{k: [round(x, 3) for x in v] for k, v in setup.items() if k.endswith("_s")},
            "first_median_s": round(med("first_s"), 3),
            "fresh_median_s": round(med("fresh_s"), 3),
            "cached_median_s": round(med("cached_s"), 3),
            "warm_median_s": round(med("warm_s"), 3),
            "first_vs_cold_connect": round(med("first_s") / cold, 2),
            "fresh_vs_cold_connect": round(med("fresh_s") / cold, 2),
            "cached_vs_cold_connect": round(med("cached_s") / cold, 2),
            "warm_vs_cold_connect": round(med("warm_s") / cold, 3),
        },
        "cpu_percent_of_core": setup["cpu_percent"],
    }


def print_onion(r: dict[str, object]) -> None:
    base, media, setup, cpu = r["baseline"], r["media"], r["setup"], r["cpu_percent_of_core"]
    assert isinstance(base, dict)
    assert isinstance(media, dict)
    assert isinstance(setup, dict)
    assert isinstance(cpu, dict)
    print("\nPrivate Tor network: onion baseline (same run)")
    print(f"  cold connect            {base['cold_connect_s']:.3f} s")
    print(
        f"  64-byte echo RTT median {base['echo_rtt_median_ms']:.1f} ms "
        f"(one way {r['one_way_onion_ms']} ms)"
    )
    print("\nMedia loop over one onion stream (speech, 24 kbit/s)")
    for key, value in media.items():
        text = f"{value:.2f}" if isinstance(value, float) else str(value)
        print(f"  {key:<18} {text}")
    print(f"  added by anonsip (m2e median - one-way onion) {r['added_m2e_median_ms']} ms")
    print("\nCall setup, call op to answer (auto-answer), median")
    for kind in ("first", "fresh", "cached", "warm"):
        print(
            f"  {kind:<7} {setup[kind + '_median_s']:7.3f} s  "
            f"{setup[kind + '_vs_cold_connect']:6.2f} x cold connect   {setup[kind + '_s']}"
        )
    print("\nCPU of one call, % of one core (call minus idle)")
    for key, value in cpu.items():
        print(f"  {key:<14} {value:6.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--testnet", metavar="DIR", help="also run the onion part on this network")
    parser.add_argument("--onion", action="store_true", help="also run the onion part")
    parser.add_argument("--onion-only", action="store_true", help="skip the offline part")
    parser.add_argument("--callers", type=int, default=2, help="caller nodes for setup times")
    parser.add_argument("--cpu-seconds", type=float, default=20.0)
    args = parser.parse_args()
    figures: dict[str, object] = {}
    with tempfile.TemporaryDirectory() as tmp:
        directory = pathlib.Path(tmp)
        if not args.onion_only:
            figures = offline(directory)
        if args.testnet or args.onion or args.onion_only:
            wav = make_speech(directory, " ".join(SENTENCES[:2]), "onion")
            with private_network(args.testnet) as info:
                nodes = pathlib.Path(info.directory) / "bench-call" / str(os.getpid())
                nodes.mkdir(parents=True)
                onion = trio.run(onion_part, info, wav, nodes, args.callers, args.cpu_seconds)
            print_onion(onion)
            figures["onion"] = onion
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
