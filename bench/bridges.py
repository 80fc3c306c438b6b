"""Bridges: how much slower a node starts and first reaches someone through an obfs4 bridge.

Run: .venv/bin/python -m bench.bridges [--testnet DIR | --wan PROFILE] [--rounds 3]

On one private network (``--testnet DIR`` reuses a running one, else one
is started and stopped) an obfs4 bridge of that network runs on this
machine (``onion.testnet.start_bridge``, as ``testnet join --bridge``
does), and a receiver node runs. Then, alternating the order each round,
a fresh node (new home, empty tor data directory) starts once through
the bridge (``run --bridge LINE``) and once directly, and we time, from
the moment it is started:

* bootstrap: until its tor says 100 % (the node's own status events);
* registered: until its registration is stored in the DHT;
* first message: from registered until a message to the receiver (a
  pseudonym it never contacted: DHT lookup, rendezvous, Noise handshake,
  contact request with proof of work) is held by the receiver's node (the
  message's state becomes ``request``: a stranger's first message waits
  there to be accepted).

Each fresh node gets its own copy of the network's directory whose DHT
bootstrap list holds the receiver alone, and every node runs until the
end: a node stopped in an earlier round would stay in the others' routing
tables, and a registration that waits out its dead onion service would
measure the DHT, not the bridge.

Figures: medians of each mode and the ratios bridge / direct, measured in
the same run; the raw onion baseline (``bench.onion_baseline``) of the
same network is printed alongside, as every benchmark does.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import trio

from anonsip.control import StatusView
from anonsip.dht import BOOTSTRAP_FILE
from anonsip.nodeproc import NodeProcess
from bench._common import client_tors, private_network, report
from bench.onion_baseline import measure_baseline
from onion.testnet import TestnetInfo, running_bridge, start_bridge, stop_bridge

TIMEOUT = 180.0
POW_BITS = 8  # the network's cost, not the sender's CPU, is what a bridge changes
ARRIVED = ("request", "sent", "delivered")  # the receiver's node holds it


async def _timed_start(node: NodeProcess, started: float) -> tuple[float, float]:
    """Seconds from ``started`` until tor said 100 %, and until registered."""
    bootstrapped: float | None = None
    with trio.fail_after(TIMEOUT):
        async with node.client(TIMEOUT) as client:
            await client.subscribe()
            status = StatusView.decode(await client.call("status"))
            while True:
                now = time.monotonic()
                if bootstrapped is None and status.tor.progress >= 100:
                    bootstrapped = now - started
                if status.phase.value == "running" and status.registration.state == "registered":
                    assert bootstrapped is not None
                    return bootstrapped, now - started
                async for event in client.events():
                    if event.event == "status":
                        status = StatusView.decode(event.data)
                        break
                else:
                    raise node.failure("closed its control socket while starting")


async def _first_message(sender: NodeProcess, receiver: NodeProcess) -> float:
    async with sender.client() as client:
        await client.subscribe()
        start = time.monotonic()
        sent = await client.call("send", peer=receiver.address, text="hello through the bridge?")
        with trio.fail_after(TIMEOUT):
            async for event in client.events():
                if (
                    event.event == "message"
                    and event.data.get("message_id") == sent["message_id"]
                    and event.data.get("state") in ARRIVED
                ):
                    return time.monotonic() - start
    raise sender.failure("closed its control socket before the message arrived")


def _network_copy(info: TestnetInfo, template: Path, where: Path) -> Path:
    """A directory that leads to the network like ``info``'s, with ``template``'s DHT list."""
    where.mkdir(mode=0o700, parents=True)
    for name in ("testnet.json", "empty"):
        shutil.copy(Path(info.directory) / name, where / name)
    shutil.copy(template, where / BOOTSTRAP_FILE)
    return where


async def _one(
    root: Path,
    name: str,
    network: Path,
    options: list[str],
    receiver: NodeProcess,
    running: list[NodeProcess],
) -> dict[str, float]:
    node = await trio.to_thread.run_sync(
        lambda: NodeProcess(name, root / name, testnet=network, pow_bits=POW_BITS, options=options)
    )
    running.append(node)  # stopped at the end (see the module docstring)
    started = time.monotonic()
    node.start()
    bootstrap, registered = await _timed_start(node, started)
    first = await _first_message(node, receiver)
    return {
        "bootstrap_s": bootstrap,
        "registered_s": registered,
        "first_message_s": first,
        "start_to_first_message_s": registered + first,
    }


KEYS = ("bootstrap_s", "registered_s", "first_message_s", "start_to_first_message_s")


def _median(runs: list[dict[str, float]], key: str) -> float:
    return round(statistics.median(r[key] for r in runs), 3)


async def _run(args: argparse.Namespace) -> dict[str, Any]:
    with private_network(args.testnet, wan=args.wan) as info:
        ours = running_bridge(info) is None
        _, bridge = await start_bridge(info.directory, address=info.address)
        try:
            async with client_tors(info, 2, "bridges-baseline") as (client, server):
                baseline = await measure_baseline(
                    client, server, echoes=100, bulk_bytes=1024 * 1024, cold_samples=3
                )
            with tempfile.TemporaryDirectory(prefix="anonsip-bench-bridges-") as tmp:
                root = Path(tmp)
                receiver = await trio.to_thread.run_sync(
                    lambda: NodeProcess(
                        "receiver", root / "receiver", testnet=Path(info.directory), pow_bits=8
                    )
                )
                receiver.start()
                running = [receiver]
                try:
                    await receiver.wait_ready(TIMEOUT, registered=True)
                    template = root / "receiver-only.json"
                    shutil.copy(Path(info.directory) / BOOTSTRAP_FILE, template)
                    runs: dict[str, list[dict[str, float]]] = {"bridge": [], "direct": []}
                    for round_ in range(args.rounds):
                        order = ["bridge", "direct"] if round_ % 2 == 0 else ["direct", "bridge"]
                        for mode in order:
                            options = ["--bridge", bridge.line()] if mode == "bridge" else []
                            name = f"{mode}{round_}"
                            network = _network_copy(info, template, root / f"net-{name}")
                            runs[mode].append(
                                await _one(root, name, network, options, receiver, running)
                            )
                finally:
                    async with trio.open_nursery() as nursery:
                        for node in running:
                            nursery.start_soon(node.stop)
        finally:
            if ours:
                await stop_bridge(info.directory)
    figures: dict[str, Any] = {"rounds": args.rounds, "wan": info.wan, "baseline": baseline}
    for mode, found in runs.items():
        for key in KEYS:
            figures[f"{mode}_{key}"] = _median(found, key)
            figures[f"{mode}_{key}_all"] = [round(r[key], 3) for r in found]
    for key in KEYS:
        figures[f"ratio_{key.removesuffix('_s')}"] = round(
            figures[f"bridge_{key}"] / figures[f"direct_{key}"], 2
        )
    raw = baseline["cold_connect_s"] + baseline["echo_rtt_median_ms"] / 1000
    figures["raw_cold_connect_echo_s"] = round(raw, 3)
    for mode in runs:
        figures[f"{mode}_first_message_per_raw_cold"] = round(
            figures[f"{mode}_first_message_s"] / raw, 2
        )
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--testnet", metavar="DIR", help="reuse a running private network")
    parser.add_argument("--wan", metavar="PROFILE", help="else start a WAN-shaped one (tor, ...)")
    parser.add_argument("--rounds", type=int, default=3, help="starts in each mode")
    args = parser.parse_args()
    f = trio.run(_run, args)
    rows = [
        ("raw onion cold connect + echo (same network)", f"{f['raw_cold_connect_echo_s']:.3f} s"),
        ("bootstrap, direct (median)", f"{f['direct_bootstrap_s']:.2f} s"),
        ("bootstrap, obfs4 bridge (median)", f"{f['bridge_bootstrap_s']:.2f} s"),
        ("bootstrap ratio bridge / direct", f"{f['ratio_bootstrap']:.2f}"),
        (
            "registered, direct / bridge",
            f"{f['direct_registered_s']:.2f} / {f['bridge_registered_s']:.2f} s",
        ),
        ("registered ratio bridge / direct", f"{f['ratio_registered']:.2f}"),
        ("first message, direct (median)", f"{f['direct_first_message_s']:.2f} s"),
        ("first message, obfs4 bridge (median)", f"{f['bridge_first_message_s']:.2f} s"),
        ("first message ratio bridge / direct", f"{f['ratio_first_message']:.2f}"),
        (
            "start to first message ratio bridge / direct",
            f"{f['ratio_start_to_first_message']:.2f}",
        ),
        (
            "first message / raw cold, direct / bridge",
            f"{f['direct_first_message_per_raw_cold']:.2f} / "
            f"{f['bridge_first_message_per_raw_cold']:.2f}",
        ),
    ]
    where = f"WAN-shaped {f['wan']}" if f["wan"] else "loopback"
    report(
        f"bridges ({where}): obfs4 bridge against direct, {args.rounds} fresh starts each", rows, f
    )


if __name__ == "__main__":
    main()
