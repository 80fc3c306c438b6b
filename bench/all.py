"""``./go bench``: every benchmark, on the loopback network and on a WAN-shaped one.

Each benchmark runs as its own process (so one's memory or threads never
colour another's figures); their outputs follow one another, each ending
in its JSON line. The benchmarks that need no network run once. Those
that use Tor run on each private network in turn (one network up at a
time, so two do not share the machine's cores): first
``bench.onion_baseline``, the raw onion figures of that network, then the
others, which also measure the baseline themselves in their own run and
divide by it. ``--networks`` picks the networks: ``loopback`` (every hop
costs microseconds) and ``wan`` (``testnet up --wan PROFILE``: every hop
delayed as on the Internet, see ``onion/testnet/_linkshape.py``). The
last lines are a summary: each network's baseline, then each benchmark's
JSON line per network. Networks started here are stopped at the end,
also on Ctrl-C.

Benchmarks that start a network of their own (``bench.multihost``: on
network namespaces, the network on a host of its own) run last, once per
chosen network (``--wan PROFILE`` for ``wan``), when no other network is
up; ``--testnet`` and ``--wan-testnet`` do not apply to them.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
from typing import Any

# (module, arguments, uses a private network)
BENCHMARKS: list[tuple[str, list[str], bool]] = [
    ("bench.onion_baseline", [], True),
    ("bench.crypto", [], False),
    ("bench.pow", ["10"], False),
    (
        "bench.dht",
        ["--nodes", "10000", "--adversarial", "0.2", "--churn", "0.3", "--compare"],
        False,
    ),
    (
        "bench.dht",
        ["--nodes", "10000", "--adversarial", "0.2", "--targeted", "--compare"],
        False,
    ),
    ("bench.dht", ["--tor"], True),
    ("bench.im", [], True),
    ("bench.mailbox", [], True),
    ("bench.call", [], True),
    ("bench.bridges", [], True),
]
# (module, arguments): each starts its own network, on namespaced hosts; needs root.
OWN_NETWORK: list[tuple[str, list[str]]] = [
    ("bench.multihost", []),
]
# Extra arguments on one network only: on the WAN network an anonymous lookup takes
# ~8 s, so the DHT benchmark's repeat lookups go one round (48 gets), not two.
NETWORK_EXTRA: dict[tuple[str, str], list[str]] = {
    ("bench.dht", "wan"): ["--tor-rounds", "1"],
}
NETWORKS = ("loopback", "wan")
DEFAULT_WAN = "tor"


def _anonsip(*args: str) -> None:
    subprocess.run([sys.executable, "-m", "anonsip.cli", *args], check=True)


def _last_json(text: str) -> Any:
    for line in reversed(text.splitlines()):
        if line.startswith("{"):
            try:
                return json.loads(line)
            except ValueError:
                return None
    return None


def _run(module: str, extra: list[str], testnet: str | None, label: str) -> tuple[bool, Any]:
    command = [sys.executable, "-m", module, *extra]
    if testnet is not None:
        command += ["--testnet", testnet]
    print(f"\n=== [{label}] {' '.join(command[2:])}", flush=True)
    # Output is shown as it comes and kept, for the summary's JSON line.
    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    assert process.stdout is not None
    kept = []
    for line in process.stdout:
        print(line, end="", flush=True)
        kept.append(line)
    return process.wait() == 0, _last_json("".join(kept))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--testnet", metavar="DIR", help="reuse a running loopback network")
    parser.add_argument("--wan-testnet", metavar="DIR", help="reuse a running WAN-shaped network")
    parser.add_argument(
        "--networks",
        default=",".join(NETWORKS),
        help="which private networks to run on: loopback,wan (default both)",
    )
    parser.add_argument(
        "--wan", default=DEFAULT_WAN, metavar="PROFILE", help="the WAN network's link profile"
    )
    parser.add_argument("--only", action="append", help="run only these modules (bench.NAME)")
    args = parser.parse_args()
    networks = [n.strip() for n in args.networks.split(",") if n.strip()]
    if not set(networks) <= set(NETWORKS):
        parser.error(f"--networks takes {', '.join(NETWORKS)}")
    chosen = [b for b in BENCHMARKS if not args.only or b[0] in args.only]
    failed: list[str] = []
    results: dict[str, dict[str, Any]] = {}
    for module, extra, uses_tor in chosen:
        if not uses_tor:
            ok, figures = _run(module, extra, None, "no network")
            results.setdefault("no network", {})[" ".join([module, *extra])] = figures
            if not ok:
                failed.append(module)
    shared = [b for b in chosen if b[2]]
    for network in networks if shared else []:
        given = args.testnet if network == "loopback" else args.wan_testnet
        directory = given or tempfile.mkdtemp(prefix=f"anonsip-bench-{network}-")
        try:
            if not given:
                wan = ["--wan", args.wan] if network == "wan" else []
                _anonsip("testnet", "up", "--dir", directory, *wan)
            for module, extra, _ in shared:
                extra = [*extra, *NETWORK_EXTRA.get((module, network), [])]
                ok, figures = _run(module, extra, directory, network)
                results.setdefault(network, {})[" ".join([module, *extra])] = figures
                if not ok:
                    failed.append(f"{module} ({network})")
        finally:
            if not given:
                _anonsip("testnet", "down", "--dir", directory)
                shutil.rmtree(directory, ignore_errors=True)
    for module, extra in OWN_NETWORK:
        if args.only and module not in args.only:
            continue
        for network in networks:
            wan = ["--wan", args.wan] if network == "wan" else []
            ok, figures = _run(module, [*extra, *wan], None, f"{network}, its own hosts")
            results.setdefault(network, {})[" ".join([module, *extra])] = figures
            if not ok:
                failed.append(f"{module} ({network})")
    _summary(results, networks, args.wan)
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


def _summary(results: dict[str, dict[str, Any]], networks: list[str], wan: str) -> None:
    print("\n=== summary")
    baselines = {n: results.get(n, {}).get("bench.onion_baseline") for n in networks}
    if any(baselines.values()):
        keys = ("cold_connect_s", "warm_stream_s", "echo_rtt_median_ms", "echo_rtt_p90_ms",
                "download_mib_s", "upload_mib_s")  # fmt: skip
        header = "raw onion baseline".ljust(22) + "".join(n.rjust(12) for n in networks)
        print(header + (f"   (wan: {wan})" if "wan" in networks else ""))
        for key in keys:
            row = key.ljust(22)
            for network in networks:
                value = (baselines[network] or {}).get(key)
                row += (f"{value:.3f}" if isinstance(value, int | float) else "-").rjust(12)
            print(row)
    for group, found in results.items():
        for name, figures in found.items():
            print(f"[{group}] {name}: {json.dumps(figures, sort_keys=True)}")


if __name__ == "__main__":
    sys.exit(main())
