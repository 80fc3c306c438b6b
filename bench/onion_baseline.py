"""Baseline cost of Tor itself on the private network: what anonsip adds is measured against it.

Run: .venv/bin/python -m bench.onion_baseline [--testnet DIR | --wan PROFILE] [--echoes 200]
     [--bulk-mib 4]

Figures: cold connect to a freshly published onion (descriptor fetch,
introduction, rendezvous), a new stream on the warm rendezvous circuit,
64-byte echo round trips (median, p90) and bulk throughput on one stream.
Later benches call ``measure_baseline`` in the same run and divide by it.
"""

from __future__ import annotations

import argparse
import statistics
import struct

import trio

from bench._common import client_tors, private_network, report
from onion import OnionNotFound, Tor

ECHO_SIZE = 64
CHUNK = 64 * 1024
CONNECT_TIMEOUT = 60.0
NOT_FOUND_TRIES = 5


async def _bench_handler(stream: trio.SocketStream) -> None:
    """E: echo 64-byte messages; D n: send n bytes; U n: read n bytes then say K."""
    mode = await _exactly(stream, 1)
    if mode == b"E":
        while message := await _exactly(stream, ECHO_SIZE):
            await stream.send_all(message)
    elif mode in (b"D", b"U"):
        (count,) = struct.unpack(">Q", await _exactly(stream, 8))
        if mode == b"D":
            block = b"\0" * CHUNK
            while count > 0:
                await stream.send_all(block[: min(CHUNK, count)])
                count -= min(CHUNK, count)
        else:
            while count > 0:
                chunk = await stream.receive_some(min(CHUNK, count))
                if not chunk:
                    return
                count -= len(chunk)
            await stream.send_all(b"K")


async def _exactly(stream: trio.abc.ReceiveStream, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = await stream.receive_some(n - len(data))
        if not chunk:
            return b""
        data += chunk
    return data


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def measure_baseline(
    client: Tor,
    server: Tor | None = None,
    *,
    echoes: int = 200,
    bulk_bytes: int = 4 * 1024 * 1024,
    cold_samples: int = 3,
) -> dict[str, float]:
    """Onion figures between ``client`` and a service on ``server`` (default: same tor).

    Keys: cold_connect_s, warm_stream_s, echo_rtt_median_ms, echo_rtt_p90_ms,
    download_mib_s, upload_mib_s.
    """
    server = server or client
    now = trio.current_time
    cold: list[float] = []
    warm: list[float] = []
    rtts: list[float] = []
    down = up = 0.0
    for sample in range(cold_samples):
        async with server.publish_service(_bench_handler) as service:
            await service.wait_published(CONNECT_TIMEOUT)
            isolation = f"cold-{sample}"
            for attempt in range(NOT_FOUND_TRIES):
                start = now()
                try:
                    stream = await client.open_stream(
                        service.address, 80, isolation=isolation, timeout=CONNECT_TIMEOUT
                    )
                    break
                except OnionNotFound:
                    # "Published" means one HSDir has it; the client may ask one that does
                    # not yet (slow links). Not a cold connect: try again, timed afresh.
                    if attempt == NOT_FOUND_TRIES - 1:
                        raise
                    isolation = f"cold-{sample}-{attempt + 1}"
                    await trio.sleep(2.0)
            cold.append(now() - start)
            async with stream:
                start = now()
                second = await client.open_stream(
                    service.address, 80, isolation=isolation, timeout=CONNECT_TIMEOUT
                )
                warm.append(now() - start)
                await second.aclose()
                if sample > 0:
                    continue
                await stream.send_all(b"E")
                message = bytes(range(ECHO_SIZE))
                for _ in range(echoes):
                    start = now()
                    await stream.send_all(message)
                    if await _exactly(stream, ECHO_SIZE) != message:
                        raise RuntimeError("echo mismatch")
                    rtts.append(now() - start)
            down = await _bulk(client, service.address, b"D", bulk_bytes)
            up = await _bulk(client, service.address, b"U", bulk_bytes)
    mib = bulk_bytes / (1024 * 1024)
    return {
        "cold_connect_s": round(statistics.median(cold), 3),
        "warm_stream_s": round(statistics.median(warm), 4),
        "echo_rtt_median_ms": round(1000 * statistics.median(rtts), 2),
        "echo_rtt_p90_ms": round(1000 * _percentile(rtts, 0.9), 2),
        "download_mib_s": round(mib / down, 2),
        "upload_mib_s": round(mib / up, 2),
    }


async def _bulk(client: Tor, address: str, mode: bytes, count: int) -> float:
    """Seconds to move ``count`` bytes one way on a fresh stream (warm circuit)."""
    stream = await client.open_stream(address, 80, isolation="bulk", timeout=CONNECT_TIMEOUT)
    async with stream:
        await stream.send_all(mode + struct.pack(">Q", count))
        start = trio.current_time()
        if mode == b"D":
            left = count
            while left > 0:
                chunk = await stream.receive_some(CHUNK)
                if not chunk:
                    raise RuntimeError("download cut short")
                left -= len(chunk)
        else:
            block = b"\0" * CHUNK
            left = count
            while left > 0:
                await stream.send_all(block[: min(CHUNK, left)])
                left -= min(CHUNK, left)
            if await _exactly(stream, 1) != b"K":
                raise RuntimeError("upload not acknowledged")
        return trio.current_time() - start


async def _run(args: argparse.Namespace) -> None:
    with private_network(args.testnet, wan=args.wan) as info:
        async with client_tors(info, 2, "baseline") as (client, server):
            figures = await measure_baseline(
                client, server, echoes=args.echoes, bulk_bytes=int(args.bulk_mib * 1024 * 1024)
            )
    rows = [
        ("cold connect to a fresh onion", f"{figures['cold_connect_s']:.3f} s"),
        ("new stream, warm circuit", f"{1000 * figures['warm_stream_s']:.1f} ms"),
        (f"{ECHO_SIZE}-byte echo RTT median", f"{figures['echo_rtt_median_ms']:.2f} ms"),
        (f"{ECHO_SIZE}-byte echo RTT p90", f"{figures['echo_rtt_p90_ms']:.2f} ms"),
        ("bulk download, one stream", f"{figures['download_mib_s']:.2f} MiB/s"),
        ("bulk upload, one stream", f"{figures['upload_mib_s']:.2f} MiB/s"),
    ]
    where = f"WAN-shaped: {info.wan}" if info.wan else "loopback"
    report(
        f"onion baseline ({where}; {args.echoes} echoes, {args.bulk_mib} MiB bulk)", rows, figures
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--testnet", metavar="DIR", help="reuse a running private network")
    parser.add_argument("--wan", metavar="PROFILE", help="else start a WAN-shaped one (tor, ...)")
    parser.add_argument("--echoes", type=int, default=200)
    parser.add_argument("--bulk-mib", type=float, default=4.0)
    trio.run(_run, parser.parse_args())


if __name__ == "__main__":
    main()
