"""``./go bench``: every benchmark, on one private Tor network started once.

Each benchmark runs as its own process (so one's memory or threads never
colour another's figures) with ``--testnet DIR`` where it uses Tor; their
outputs follow one another, each ending in its JSON line. The network is
stopped at the end, also on Ctrl-C.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile

# (module, arguments, uses the private network)
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
    ("bench.call", [], True),
]


def _anonsip(*args: str) -> None:
    subprocess.run([sys.executable, "-m", "anonsip.cli", *args], check=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--testnet", metavar="DIR", help="reuse a running private network")
    parser.add_argument("--only", action="append", help="run only these modules (bench.NAME)")
    args = parser.parse_args()
    own = args.testnet is None
    directory = args.testnet or tempfile.mkdtemp(prefix="anonsip-bench-")
    failed: list[str] = []
    try:
        if own:
            _anonsip("testnet", "up", "--dir", directory)
        for module, extra, uses_tor in BENCHMARKS:
            if args.only and module not in args.only:
                continue
            command = [sys.executable, "-m", module, *extra]
            if uses_tor:
                command += ["--testnet", directory]
            print(f"\n=== {' '.join(command[2:])}", flush=True)
            if subprocess.run(command, check=False).returncode != 0:
                failed.append(module)
    finally:
        if own:
            _anonsip("testnet", "down", "--dir", directory)
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
