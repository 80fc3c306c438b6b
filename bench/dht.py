"""DHT lookup benchmark on the simulator (the real cores over a simulated network).

    .venv/bin/python -m bench.dht --nodes 10000 --adversarial 0.2 --churn 0.3
    .venv/bin/python -m bench.dht --nodes 10000 --adversarial 0.2 --churn 0.3 --compare
    .venv/bin/python -m bench.dht --nodes 10000 --adversarial 0.2 --targeted --compare

Prints a table and, as its last line, one JSON object. ``--compare`` also
runs plain single-path Kademlia (alpha=3) twice on the same network: stopping
at the first value (classic FIND_VALUE) and walking to convergence keeping
the newest version (what plain Kademlia must do to resist stale records).

``--targeted`` runs the targeted eclipse (``anonsip.dht.sim``): the
adversary knows the address behind each of ``--targets`` records and moves
its nodes to the ids nearest that record's storage positions that it can
afford: ``--grind`` times its fleet in ids minted once it learns the
period's shared random value, young (on probation) in honest tables. Every
lookup asks for the targeted record. With ``--compare`` the same attack
also runs against positions known in advance (no shared random value: the
adversary grinds at leisure) and without probation.

``--mailbox`` runs mailboxes over simulated hours (``anonsip.dht.sim``'s
``MailboxSimulation``): ``--deposits`` deposits, then ``--hours`` hours in
which ``--churn`` of the network leaves (replaced by newcomers), a new
shared random value arrives halfway, and storing nodes republish; at each
checkpoint every mailbox is collected from a random honest node:

    .venv/bin/python -m bench.dht --mailbox --nodes 10000 --adversarial 0.2 --churn 0.3

The Tor half (FIND_VALUE latency over real onion services) plugs in through
``measure_find_value_latency``: give it ``DhtClient``s, whatever their
transport, and keys that were put. ``--tor`` runs it on a private Tor network
(``--testnet DIR`` reuses a running one, else one is started and stopped):

    .venv/bin/python -m bench.dht --tor [--testnet DIR] [--tor-nodes 12]

``--tor-nodes`` onion DHT nodes on two client tors join through one contact
and their anonymous clients put ``--tor-keys`` records. Cold: the first
``get`` of each of ``--tor-readers`` freshly published nodes that know only
one contact. Repeat: every node's client gets every key again. Every get is
an anonymous operation with its own isolation token, so each hop opens a
new rendezvous circuit (the client tor may already hold the peers'
descriptors); nothing is pooled between operations. Both are divided by
``measure_baseline`` (bench/onion_baseline.py) taken in the same run: by a
raw cold connect, and the repeat also by a 64-byte echo round trip.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import statistics
import time
from collections.abc import Sequence
from typing import Any

import trio

from anonsip.dht import (
    DhtClient,
    DhtConfig,
    DhtRecord,
    OnionDht,
    registration_record,
    start_onion_dht,
)
from anonsip.dht.sim import MailboxConfig, MailboxSimulation, SimConfig, Simulation, summarize
from anonsip.identity import TOR_TIME_PERIODS, Identity
from anonsip.registration import Contact, Presence, Registration, onion_address
from bench._common import client_tors, private_network, report
from bench.onion_baseline import measure_baseline
from onion import Tor


async def measure_find_value_latency(
    clients: Sequence[DhtClient], keys: Sequence[bytes], *, rounds: int = 1
) -> list[tuple[float, bytes, DhtRecord | None]]:
    """Seconds each ``get`` took, the key and what it found, asking every key from
    every client ``rounds`` times.

    Entry point for the onion-service benchmark: the caller builds the nodes
    and their clients on the onion transport (``start_onion_dht``).
    """
    samples = []
    for _ in range(rounds):
        for client in clients:
            for key in keys:
                start = trio.current_time()
                got = await client.get(key)
                samples.append((trio.current_time() - start, key, got))
    return samples


async def _keep_placed(dht: OnionDht, records: list[DhtRecord]) -> None:
    while True:
        await dht.shared_random.wait_changed()
        for record in records:
            await dht.client.put(record)


async def _run_onion_node(
    tor: Tor,
    config: DhtConfig,
    *,
    task_status: trio.TaskStatus[OnionDht] = trio.TASK_STATUS_IGNORED,
) -> None:
    async with start_onion_dht(tor, os.urandom(32), config=config) as dht:
        task_status.started(dht)
        await trio.sleep_forever()


async def _start_onion_nodes(
    nursery: trio.Nursery, tors: Sequence[Tor], count: int, config: DhtConfig
) -> list[OnionDht]:
    """``count`` onion DHT nodes spread over ``tors``, published concurrently; they run
    until ``nursery`` is cancelled."""
    started: list[OnionDht | None] = [None] * count

    async def start(i: int) -> None:
        started[i] = await nursery.start(_run_onion_node, tors[i % len(tors)], config)

    async with trio.open_nursery() as starting:
        for i in range(count):
            starting.start_soon(start, i)
    return [dht for dht in started if dht is not None]


def _bench_record(n: int) -> DhtRecord:
    """A fresh pseudonym's registration record for this period (what nodes store)."""
    identity = Identity(seed=os.urandom(32))
    now = time.time()
    registration = Registration(
        contacts=(Contact(onion=onion_address(os.urandom(32)), port=5061),),
        presence=Presence.AVAILABLE,
        expires=int(now) + 3600,
        sequence=n + 1,
    )
    return registration_record(
        identity, TOR_TIME_PERIODS.number_at(now), registration, rng=os.urandom
    )


async def _tor_figures(args: argparse.Namespace) -> tuple[dict[str, object], list[str]]:
    config = DhtConfig(
        k=args.k,
        alpha=args.alpha,
        paths=args.paths,
        rpc_timeout=args.rpc_timeout,
        difficulty=args.difficulty,
        store_spread=args.k,
    )
    notes: list[str] = []
    now = trio.current_time
    with private_network(args.testnet) as info:
        async with client_tors(info, 2, "dht") as tors:
            phase = now()
            baseline = await measure_baseline(
                tors[0], tors[1], echoes=args.echoes, bulk_bytes=256 * 1024
            )
            notes.append(f"baseline {now() - phase:.1f} s")
            async with trio.open_nursery() as nursery:
                phase = now()
                nodes = await _start_onion_nodes(nursery, tors, args.tor_nodes, config)
                notes.append(f"publish {len(nodes)} nodes {now() - phase:.1f} s")
                phase = now()
                seed = [nodes[0].contact]
                async with trio.open_nursery() as joining:
                    for dht in nodes[1:]:
                        joining.start_soon(dht.node.bootstrap, seed)
                notes.append(f"join {now() - phase:.1f} s")
                records = [_bench_record(n) for n in range(args.tor_keys)]
                stored = []
                for n, record in enumerate(records):
                    stored.append(await nodes[n % len(nodes)].client.put(record))
                keys = [record.key for record in records]
                expected = {record.key: record for record in records}
                # Their owners' registrars would store them again when a new shared random
                # value moves their positions (every few minutes on a private network):
                # so does the benchmark, or a slow (WAN) run times lookups of lost records.
                nursery.start_soon(_keep_placed, nodes[0], records)

                # Cold: fresh nodes that know one contact and hold no stream.
                phase = now()
                readers = await _start_onion_nodes(nursery, tors, args.tor_readers, config)
                notes.append(f"publish {len(readers)} readers {now() - phase:.1f} s")
                cold: list[float] = []
                cold_found = 0
                for i, reader in enumerate(readers):
                    reader.node.routing.seen(nodes[i % len(nodes)].contact)
                    key = keys[i % len(keys)]
                    start = now()
                    got = await reader.client.get(key)
                    cold.append(now() - start)
                    cold_found += got == expected[key]

                # Repeat: one untimed get per node (its tor has the other nodes'
                # descriptors by then), then measure; what the timed gets found is
                # the found rate (a second pass would double a WAN run's half hour).
                members = [dht.client for dht in nodes]
                await measure_find_value_latency(members, keys[:1])
                timed = await measure_find_value_latency(members, keys, rounds=args.tor_rounds)
                repeat = [took for took, _key, _got in timed]
                repeat_found = sum(got == expected[key] for _took, key, got in timed)
                nursery.cancel_scope.cancel()

    cold_median = statistics.median(cold)
    repeat_median = statistics.median(repeat)
    figures: dict[str, object] = {
        "transport": "tor",
        "nodes": args.tor_nodes,
        "k": args.k,
        "alpha": args.alpha,
        "paths": args.paths,
        "keys": args.tor_keys,
        "stored_min": min(stored),
        "cold_samples": len(cold),
        "cold_found_rate": round(cold_found / len(cold), 3),
        "cold_find_value_median_s": round(cold_median, 3),
        "cold_find_value_max_s": round(max(cold), 3),
        "repeat_samples": len(repeat),
        "repeat_found_rate": round(repeat_found / len(repeat), 3),
        "repeat_find_value_median_ms": round(1000 * repeat_median, 1),
        "repeat_find_value_p90_ms": round(1000 * sorted(repeat)[int(0.9 * (len(repeat) - 1))], 1),
        "baseline_cold_connect_s": baseline["cold_connect_s"],
        "baseline_echo_rtt_median_ms": baseline["echo_rtt_median_ms"],
        "cold_ratio_to_cold_connect": round(cold_median / baseline["cold_connect_s"], 2),
        "repeat_ratio_to_echo_rtt": round(1000 * repeat_median / baseline["echo_rtt_median_ms"], 2),
        "repeat_ratio_to_cold_connect": round(repeat_median / baseline["cold_connect_s"], 2),
    }
    return figures, notes


async def _run_tor(args: argparse.Namespace) -> None:
    started = time.perf_counter()
    figures, notes = await _tor_figures(args)
    figures["wall_seconds"] = round(time.perf_counter() - started, 1)
    f = figures
    rows = [
        (
            "DHT nodes (2 client tors), k/alpha/paths",
            f"{f['nodes']}, {f['k']}/{f['alpha']}/{f['paths']}",
        ),
        ("records put, fewest replicas", f"{f['keys']}, {f['stored_min']}"),
        (
            "cold FIND_VALUE median (max)",
            f"{f['cold_find_value_median_s']:.3f} s ({f['cold_find_value_max_s']:.3f} s)",
        ),
        ("  found / samples", f"{f['cold_found_rate']:.0%} of {f['cold_samples']}"),
        ("  raw cold connect (baseline)", f"{f['baseline_cold_connect_s']:.3f} s"),
        ("  ratio cold lookup / cold connect", f"{f['cold_ratio_to_cold_connect']:.2f}x"),
        (
            "repeat FIND_VALUE median (p90)",
            f"{f['repeat_find_value_median_ms']:.1f} ms ({f['repeat_find_value_p90_ms']:.1f} ms)",
        ),
        ("  found / samples", f"{f['repeat_found_rate']:.0%} of {f['repeat_samples']}"),
        ("  64-byte echo RTT (baseline)", f"{f['baseline_echo_rtt_median_ms']:.2f} ms"),
        ("  ratio repeat lookup / echo RTT", f"{f['repeat_ratio_to_echo_rtt']:.2f}x"),
        ("  ratio repeat lookup / cold connect", f"{f['repeat_ratio_to_cold_connect']:.2f}x"),
        ("phases", ", ".join(notes)),
        ("wall clock", f"{f['wall_seconds']:.1f} s"),
    ]
    report("DHT FIND_VALUE over onion services on the private Tor network", rows, figures)


def _row(name: str, figures: dict[str, float]) -> str:
    return (
        f"{name:<44} {figures['success_rate'] * 100:7.2f}% {figures['median_hops']:5.0f} "
        f"{figures['p95_hops']:5.0f} {figures['median_messages']:6.0f} "
        f"{figures['p95_messages']:6.0f} {figures['mean_messages']:7.1f} "
        f"{figures['median_latency_s']:7.2f} {figures['p95_latency_s']:7.2f}"
    )


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=10_000)
    parser.add_argument("--adversarial", type=float, default=0.0)
    parser.add_argument("--churn", type=float, default=0.0)
    parser.add_argument("--paths", type=int, default=4, help="disjoint paths d")
    parser.add_argument("--alpha", type=int, default=1, help="parallel requests per path")
    parser.add_argument("--quorum", type=int, default=3, help="paths that must hold a value")
    parser.add_argument("--k", type=int, default=20)
    parser.add_argument("--lookups", type=int, default=2000)
    parser.add_argument("--records", type=int, default=200)
    parser.add_argument("--drop", type=float, default=0.3, help="adversary drop probability")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--compare", action="store_true")
    eclipse = parser.add_argument_group("targeted eclipse (--targeted)")
    eclipse.add_argument("--targeted", action="store_true", help="attack chosen records")
    eclipse.add_argument("--targets", type=int, default=10, help="records attacked in turn")
    eclipse.add_argument(
        "--grind", type=float, default=100.0, help="ids the adversary mints per period, in fleets"
    )
    mail = parser.add_argument_group("mailboxes over hours (--mailbox)")
    mail.add_argument("--mailbox", action="store_true", help="simulate mailbox availability")
    mail.add_argument("--deposits", type=int, default=200, help="deposits, one per mailbox")
    mail.add_argument("--hours", type=int, default=24)
    tor = parser.add_argument_group("onion services (--tor)")
    tor.add_argument("--tor", action="store_true", help="measure on a private Tor network")
    tor.add_argument("--testnet", metavar="DIR", help="reuse a running private network")
    tor.add_argument("--tor-nodes", type=int, default=12)
    tor.add_argument("--tor-keys", type=int, default=4)
    tor.add_argument("--tor-readers", type=int, default=8, help="fresh nodes, one cold get each")
    tor.add_argument("--tor-rounds", type=int, default=2, help="repeat rounds over all nodes")
    tor.add_argument("--rpc-timeout", type=float, default=10.0)
    tor.add_argument("--difficulty", type=int, default=8, help="node id puzzle (bench nodes)")
    tor.add_argument("--echoes", type=int, default=100, help="baseline echo round trips")
    args = parser.parse_args(argv)
    if args.tor:
        trio.run(_run_tor, args)
        return
    if args.targeted:
        _run_targeted(args)
        return
    if args.mailbox:
        _run_mailbox(args)
        return

    config = SimConfig(
        nodes=args.nodes,
        adversarial=args.adversarial,
        churn=args.churn,
        k=args.k,
        paths=args.paths,
        alpha=args.alpha,
        records=args.records,
        drop=args.drop,
        seed=args.seed,
    )
    started = time.perf_counter()
    sim = Simulation(config)
    built = time.perf_counter() - started
    runs: list[tuple[str, dict[str, object], dict[str, float]]] = []
    variants: list[tuple[str, dict[str, object]]] = []
    if args.compare:
        variants += [
            ("plain a=3, first value", {"paths": 1, "alpha": 3}),
            ("plain a=3, to convergence", {"paths": 1, "alpha": 3, "stop_at_first_value": False}),
        ]
    variants.append(
        (
            f"disjoint d={args.paths} a={args.alpha} q={args.quorum}",
            {"paths": args.paths, "alpha": args.alpha, "value_quorum": args.quorum},
        )
    )
    for name, options in variants:
        stats = sim.run(args.lookups, **options)  # type: ignore[arg-type]  # options built above
        runs.append((name, options, summarize(stats)))
    elapsed = time.perf_counter() - started

    print(
        f"DHT simulation: {args.nodes} nodes, {args.adversarial:.0%} adversarial, "
        f"{args.churn:.0%} offline (churn), k={args.k}, {args.lookups} FIND_VALUE lookups"
        f" per variant, {args.records} records (2 versions each)"
    )
    print(
        f"{'variant':<44} {'success':>8} {'hops':>5} {'p95':>5} {'msgs':>6} {'p95':>6} "
        f"{'mean':>7} {'lat(s)':>7} {'p95':>7}"
    )
    for name, _, figures in runs:
        print(_row(name, figures))
    print(f"(build {built:.1f} s, total {elapsed:.1f} s wall clock)")
    main_figures = runs[-1][2]
    result: dict[str, object] = {
        "nodes": args.nodes,
        "adversarial": args.adversarial,
        "churn": args.churn,
        "paths": args.paths,
        "alpha": args.alpha,
        "quorum": args.quorum,
        **{key: round(value, 4) for key, value in main_figures.items()},
        "wall_seconds": round(elapsed, 1),
    }
    if args.compare:
        result["comparison"] = [
            {"variant": name, **{key: round(value, 4) for key, value in figures.items()}}
            for name, _, figures in runs
        ]
    print(json.dumps(result))


def _run_targeted(args: argparse.Namespace) -> None:
    g = args.grind
    variants: list[tuple[str, dict[str, Any]]] = []
    if args.compare:
        variants += [
            ("positions known ahead (3 targets)", {"shared_random": False, "targets": 3}),
            ("shared random, grind 1x, no probation", {"grind": 1.0, "probation": False}),
            (f"shared random, grind {g:g}x, no probation", {"probation": False}),
        ]
    variants.append((f"anonsip: shared random + probation, {g:g}x", {}))
    started = time.perf_counter()
    runs: list[tuple[str, dict[str, float]]] = []
    base = SimConfig(
        nodes=args.nodes,
        adversarial=args.adversarial,
        churn=args.churn,
        k=args.k,
        paths=args.paths,
        alpha=args.alpha,
        drop=args.drop,
        seed=args.seed,
        targeted=True,
        targets=args.targets,
        grind=g,
    )
    for name, options in variants:
        sim = Simulation(dataclasses.replace(base, **options))
        stats = sim.run(args.lookups, paths=args.paths, alpha=args.alpha, value_quorum=args.quorum)
        runs.append((name, summarize(stats)))
    elapsed = time.perf_counter() - started
    print(
        f"DHT targeted eclipse: {args.nodes} nodes, {args.adversarial:.0%} adversarial, "
        f"{args.churn:.0%} offline (churn), k={args.k}, disjoint d={args.paths} a={args.alpha} "
        f"q={args.quorum}, {args.lookups} FIND_VALUE lookups of {args.targets} targeted records"
        f" per variant; the adversary mints {g:g}x its fleet in ids per period"
    )
    print(
        f"{'variant':<44} {'success':>8} {'hops':>5} {'p95':>5} {'msgs':>6} {'p95':>6} "
        f"{'mean':>7} {'lat(s)':>7} {'p95':>7}"
    )
    for name, figures in runs:
        print(_row(name, figures))
    print(f"(total {elapsed:.1f} s wall clock)")
    main_figures = runs[-1][1]
    print(
        f"targeted record found in {main_figures['success_rate']:.2%} of lookups"
        f" with {args.adversarial:.0%} adversarial nodes"
    )
    result: dict[str, object] = {
        "mode": "targeted-eclipse",
        "nodes": args.nodes,
        "adversarial": args.adversarial,
        "churn": args.churn,
        "grind": g,
        "targets": args.targets,
        "paths": args.paths,
        "alpha": args.alpha,
        "quorum": args.quorum,
        **{key: round(value, 4) for key, value in main_figures.items()},
        "wall_seconds": round(elapsed, 1),
    }
    if args.compare:
        result["comparison"] = [
            {"variant": name, **{key: round(value, 4) for key, value in figures.items()}}
            for name, figures in runs
        ]
    print(json.dumps(result))


def mailbox_config(
    *,
    nodes: int,
    adversarial: float,
    churn: float,
    deposits: int,
    hours: int = 24,
    k: int = 20,
    drop: float = 0.3,
    seed: int = 1,
) -> MailboxConfig:
    """The ``--mailbox`` simulation's setup (``bench.mailbox`` runs a small one too)."""
    network = SimConfig(
        nodes=nodes,
        adversarial=adversarial,
        churn=churn,
        k=k,
        paths=DhtConfig().paths,
        alpha=DhtConfig().alpha,
        drop=drop,
        seed=seed,
    )
    return MailboxConfig(
        network=network,
        deposits=deposits,
        hours=hours,
        checkpoints=tuple(sorted({0, hours // 4, hours // 2, 3 * hours // 4, hours})),
        srv_change_hour=hours // 2 if hours >= 2 else None,
        store_spread=DhtConfig().store_spread,
    )


def _run_mailbox(args: argparse.Namespace) -> None:
    hours = args.hours
    config = mailbox_config(
        nodes=args.nodes,
        adversarial=args.adversarial,
        churn=args.churn,
        deposits=args.deposits,
        hours=hours,
        k=args.k,
        drop=args.drop,
        seed=args.seed,
    )
    started = time.perf_counter()
    print(
        f"DHT mailboxes: {args.nodes} nodes, {args.adversarial:.0%} adversarial (keep nothing,"
        f" drop {args.drop:.0%}), {args.churn:.0%} of the network leaves over {hours} h"
        f" (replaced by newcomers), new shared random value at {config.srv_change_hour} h;"
        f" {args.deposits} deposits made at 0 h, their senders gone"
    )
    print(
        f"{'hour':>4} {'left':>6} {'available':>9} {'holders':>7} {'bytes/dep':>9}"
        f" {'collect(s)':>10} {'p95':>6} {'msgs':>6}"
    )

    def row(c: Any) -> None:
        print(
            f"{c.hour:>4} {c.left:>6} {c.available:>9.2%} {c.holders_median:>7.0f}"
            f" {c.stored_bytes_per_deposit:>9.0f} {c.collect_median_s:>10.2f}"
            f" {c.collect_p95_s:>6.2f} {c.collect_messages_median:>6.0f}",
            flush=True,
        )

    sim = MailboxSimulation(config)
    report = sim.run_hours(row)
    elapsed = time.perf_counter() - started
    last = report.checkpoints[-1]
    print(
        f"(copies taken per deposit, median {report.deposit_copies_median:.0f};"
        f" {report.republish_walks} republishing walks; {elapsed:.1f} s wall clock)"
    )
    print(
        f"mailbox availability after {hours} simulated hours: {last.available:.2%}"
        f" ({args.churn:.0%} churn, {args.adversarial:.0%} adversarial)"
    )
    result: dict[str, object] = {
        "mode": "mailbox",
        "nodes": args.nodes,
        "adversarial": args.adversarial,
        "churn": args.churn,
        "hours": hours,
        "deposits": args.deposits,
        "availability": round(last.available, 4),
        "deposit_copies_median": report.deposit_copies_median,
        "checkpoints": [dataclasses.asdict(c) for c in report.checkpoints],
        "wall_seconds": round(elapsed, 1),
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
