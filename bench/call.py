"""Voice call bench: codec quality, playout on a Tor-like path, CPU per frame.

Offline part (this file, ``python -m bench.call``):
  * PESQ-WB of Opus (CBR, 20 ms, 16 kHz) on espeak-ng speech at 12/16/24/32 kbit/s;
  * the jitter buffer's policies on the seeded Tor-like delay model
    (``anonsip.media.TorLikeDelay``): PESQ-WB and mouth-to-ear delay;
  * CPU per 20 ms frame: encode + seal, open + decode;
  * one real-time run of the full media loop over local TCP through the
    delay model (``run_pipeline_over``).

The onion part (mouth-to-ear over real onion streams minus the raw one-way
onion delay; call setup time) is for the lead to add: call
``run_pipeline_over(stream_a, stream_b, wav_in, seconds)`` with two ends of
an onion stream.

Mouth-to-ear here is capture-to-playout (network + buffer) plus 20 ms of
packetisation and Opus's 6.5 ms look-ahead; sound-card buffers are not
included. Prints a table, then one JSON line.
"""

from __future__ import annotations

import json
import math
import pathlib
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import wave

import numpy as np
import trio
from pesq import pesq

from anonsip.media import (
    DelayedStream,
    JitterBuffer,
    JitterPolicy,
    MediaCall,
    MediaReceiver,
    MediaSealer,
    MemorySink,
    OpusDecoder,
    OpusEncoder,
    Play,
    SilenceSource,
    TorLikeDelay,
    WavSource,
    derive_media_keys,
    e_model_mos,
    replay_trace,
)
from anonsip.media._jitter import Conceal

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
    if shutil.which("espeak-ng") is None or shutil.which("sox") is None:
        sys.exit("bench/call.py needs espeak-ng and sox (apt-get install espeak-ng sox)")
    raw, out = directory / f"{name}.raw.wav", directory / f"{name}.wav"
    subprocess.run(["espeak-ng", "-w", str(raw), text], check=True, capture_output=True)
    subprocess.run(
        ["sox", str(raw), "-r", str(RATE), "-c", "1", "-b", "16", str(out)],
        check=True,
        capture_output=True,
    )
    return out


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


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        directory = pathlib.Path(tmp)
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
    print(
        json.dumps(
            {
                "clean_pesq_wb": {str(k): round(v, 3) for k, v in clean.items()},
                "tor_model": {
                    k: {m: round(x, 3) for m, x in v.items()} for k, v in policies.items()
                },
                "cpu": {k: round(v, 4) for k, v in cpu.items()},
                "live_tcp": {
                    k: round(v, 3) if isinstance(v, float) else v for k, v in live.items()
                },
            }
        )
    )


if __name__ == "__main__":
    main()
