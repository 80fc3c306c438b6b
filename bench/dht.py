"""DHT lookup benchmark on the simulator (the real cores over a simulated network).

    .venv/bin/python -m bench.dht --nodes 10000 --adversarial 0.2 --churn 0.3
    .venv/bin/python -m bench.dht --nodes 10000 --adversarial 0.2 --churn 0.3 --compare

Prints a table and, as its last line, one JSON object. ``--compare`` also
runs plain single-path Kademlia (alpha=3) twice on the same network: stopping
at the first value (classic FIND_VALUE) and walking to convergence keeping
the newest version (what plain Kademlia must do to resist stale records).

The Tor half (FIND_VALUE latency over real onion services) plugs in through
``measure_find_value_latency``: give it running ``DhtNode``s, whatever their
transport, and keys that were put.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Sequence

import trio

from anonsip.dht import DhtNode
from anonsip.dht.sim import SimConfig, Simulation, summarize


async def measure_find_value_latency(
    nodes: Sequence[DhtNode], keys: Sequence[bytes], *, rounds: int = 1
) -> list[float]:
    """Seconds each ``get`` took, asking every key from every node ``rounds`` times.

    Entry point for the onion-service benchmark: the caller builds the nodes
    on the onion transport (tor dialer, onion listener calling serve_stream).
    """
    latencies = []
    for _ in range(rounds):
        for node in nodes:
            for key in keys:
                start = trio.current_time()
                await node.get(key)
                latencies.append(trio.current_time() - start)
    return latencies


def _row(name: str, figures: dict[str, float]) -> str:
    return (
        f"{name:<34} {figures['success_rate'] * 100:7.2f}% {figures['median_hops']:5.0f} "
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
    args = parser.parse_args(argv)

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
        f"{'variant':<34} {'success':>8} {'hops':>5} {'p95':>5} {'msgs':>6} {'p95':>6} "
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


if __name__ == "__main__":
    main()
