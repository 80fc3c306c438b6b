"""Sealed mailboxes in the DHT: mail between nodes that are never online together.

Run: .venv/bin/python -m bench.mailbox [--testnet DIR] [--messages 5] [--holders 4]

On one private network: the onion baseline (``bench.onion_baseline``)
between two plain client tors, then anonsip nodes as subprocesses (a
sender, a receiver, and ``--holders`` more DHT nodes). The pair become
contacts; the receiver stops; the sender writes ``--messages`` messages,
each deposited in the receiver's mailbox, and stops. Figures:

* deposit: ``send`` -> ``in_mailbox`` (the failed direct attempt, the
  proof of work, the anonymous DEPOSIT walk), per message;
* bytes stored network-wide per message: what every node's DHT holds in
  deposits afterwards (``status``: ``dht.deposit_bytes``), summed over the
  nodes, less what they held before, divided by the messages; and copies
  per message the same way;
* the receiver's start -> its node running, and -> the last message in
  its history (collected from the mailbox: its sender is offline), also as
  a ratio to the raw cold connect of the same run; running -> the last
  message is what collecting costs;
* the simulated availability after 24 h (``bench.dht --mailbox``'s
  simulator, small: ``--sim-nodes``, 30 % churn, 20 % adversarial).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from functools import partial
from pathlib import Path
from typing import Any

import trio

from anonsip.admission import RESTING_EFFORT
from anonsip.control import Event, TrioControlClient
from anonsip.dht.sim import MailboxSimulation
from anonsip.nodeproc import NodeFleet, NodeProcess
from bench._common import client_tors, private_network, report
from bench.dht import mailbox_config
from bench.onion_baseline import measure_baseline

TIMEOUT = 180.0


def _is(event: Event, message_id: str, state: str) -> bool:
    return (
        event.event == "message"
        and event.data.get("message_id") == message_id
        and event.data.get("state") == state
    )


async def _wait(client: TrioControlClient, message_id: str, state: str) -> None:
    with trio.fail_after(TIMEOUT):
        async for event in client.events():
            if _is(event, message_id, state):
                return
    raise RuntimeError("the node closed the control connection")


async def _send(node: NodeProcess, peer: str, text: str, state: str) -> tuple[str, float]:
    async with node.client() as client:
        await client.subscribe()
        start = time.perf_counter()
        sent = await client.call("send", peer=peer, text=text)
        await _wait(client, sent["message_id"], state)
        return str(sent["message_id"]), time.perf_counter() - start


async def befriend(sender: NodeProcess, receiver: NodeProcess) -> None:
    await _send(sender, receiver.address, "hello", "request")
    await receiver.call("accept", address=sender.address, nick=sender.name)
    await _send(receiver, sender.address, "hi", "delivered")
    await _send(sender, receiver.address, "we are contacts", "delivered")


async def held(nodes: list[NodeProcess]) -> tuple[int, int]:
    """Deposits and their bytes the nodes' DHTs hold, summed."""
    count = size = 0
    for node in nodes:
        dht = (await node.call("status"))["dht"]
        count += dht["deposits"]
        size += dht["deposit_bytes"]
    return count, size


async def start_and_collect(node: NodeProcess, message_ids: list[str]) -> tuple[float, float]:
    """Start ``node``; seconds until it runs, and until every message is in its history."""
    waiting = set(message_ids)
    ready = 0.0
    start = time.perf_counter()
    node.start()
    async with node.client(timeout=TIMEOUT) as client:
        await client.subscribe()
        with trio.fail_after(TIMEOUT):
            async for event in client.events():
                if not ready and event.event == "status" and event.data["phase"] == "running":
                    ready = time.perf_counter() - start
                if event.event == "message" and event.data.get("state") == "received":
                    waiting.discard(str(event.data.get("message_id")))
                    if not waiting:
                        return ready, time.perf_counter() - start
    raise RuntimeError("the node closed the control connection")


async def _run(args: argparse.Namespace) -> dict[str, Any]:
    with private_network(args.testnet) as info:
        async with client_tors(info, 2, "mailbox-baseline") as (client, server):
            baseline = await measure_baseline(
                client, server, echoes=100, bulk_bytes=256 * 1024, cold_samples=3
            )
        with (
            tempfile.TemporaryDirectory(prefix="anonsip-bench-mailbox-") as root,
            NodeFleet(Path(root), Path(info.directory), pow_bits=RESTING_EFFORT) as fleet,
        ):
            holders = [f"holder{i}" for i in range(args.holders)]
            for name in ["sender", "receiver", *holders]:
                fleet.add(name)
            await fleet.start_all(holders[0])  # alone: the others join through it
            await fleet.start_all("sender", "receiver", *holders[1:], registered=True)
            sender, receiver = fleet["sender"], fleet["receiver"]
            await befriend(sender, receiver)
            assert await receiver.shutdown() == 0
            online = [sender, *(fleet[n] for n in holders)]
            before = await held(online)
            ids: list[str] = []
            deposits: list[float] = []
            for i in range(args.messages):
                message_id, took = await _send(sender, receiver.address, f"m{i}", "in_mailbox")
                ids.append(message_id)
                deposits.append(took)
            after = await held(online)
            assert await sender.shutdown() == 0
            ready, collected = await start_and_collect(receiver, ids)
    started = time.perf_counter()
    sim = MailboxSimulation(
        mailbox_config(nodes=args.sim_nodes, adversarial=0.2, churn=0.3, deposits=args.sim_deposits)
    ).run_hours(lambda _checkpoint: None)
    sim_seconds = time.perf_counter() - started
    cold = baseline["cold_connect_s"]
    return {
        "baseline": baseline,
        "raw_cold_connect_s": round(cold, 3),
        "messages": args.messages,
        "dht_nodes": len(online) + 1,
        "deposit_median_s": round(statistics.median(deposits), 3),
        "deposit_max_s": round(max(deposits), 3),
        "stored_bytes_per_message": round((after[1] - before[1]) / args.messages),
        "copies_per_message": round((after[0] - before[0]) / args.messages, 1),
        "start_to_running_s": round(ready, 3),
        "start_to_history_s": round(collected, 3),
        "start_to_history_ratio": round(collected / cold, 1),
        "running_to_history_s": round(collected - ready, 3),
        "running_to_history_ratio": round((collected - ready) / cold, 1),
        "sim_nodes": args.sim_nodes,
        "sim_deposits": args.sim_deposits,
        "sim_availability_24h": round(sim.checkpoints[-1].available, 4),
        "sim_wall_s": round(sim_seconds, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--testnet", metavar="DIR", help="reuse a running private network")
    parser.add_argument("--messages", type=int, default=5, help="messages deposited")
    parser.add_argument("--holders", type=int, default=4, help="DHT nodes besides the pair")
    parser.add_argument("--sim-nodes", type=int, default=1000, help="simulated DHT nodes")
    parser.add_argument("--sim-deposits", type=int, default=50, help="simulated deposits")
    args = parser.parse_args()
    f = trio.run(partial(_run, args))
    rows = [
        ("raw cold connect (same run)", f"{f['raw_cold_connect_s']:.3f} s"),
        (
            "send -> in the mailbox, median / max",
            f"{f['deposit_median_s']:.2f} / {f['deposit_max_s']:.2f} s",
        ),
        (
            f"bytes stored per message ({f['dht_nodes']} DHT nodes)",
            f"{f['stored_bytes_per_message']} B",
        ),
        ("copies stored per message", f"{f['copies_per_message']:.1f}"),
        ("receiver start -> node running", f"{f['start_to_running_s']:.2f} s"),
        ("receiver start -> last message in history", f"{f['start_to_history_s']:.2f} s"),
        ("  as a ratio to the raw cold connect", f"{f['start_to_history_ratio']:.1f}"),
        ("node running -> last message (collecting)", f"{f['running_to_history_s']:.2f} s"),
        ("  as a ratio to the raw cold connect", f"{f['running_to_history_ratio']:.1f}"),
        (
            f"simulated availability after 24 h ({f['sim_nodes']} nodes, 30 % churn, 20 % adv.)",
            f"{f['sim_availability_24h']:.2%}",
        ),
    ]
    report(
        f"anonsip mailboxes over the private network ({args.messages} messages, "
        f"{args.holders} more DHT nodes)",
        rows,
        f,
    )


if __name__ == "__main__":
    main()
