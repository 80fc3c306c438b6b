"""How long a contact-request proof of work takes on this machine, per difficulty.

Run: .venv/bin/python -m bench.pow [solves-per-difficulty]
Prints a table, then one JSON line with the figures.
"""

import hashlib
import json
import os
import statistics
import sys
import time

from anonsip.admission import RESTING_EFFORT, challenge, solve, verify


def hash_rate(seconds: float = 1.0) -> float:
    base = hashlib.blake2b(b"x" * 120, digest_size=32)
    n, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        for i in range(10_000):
            h = base.copy()
            h.update(i.to_bytes(8, "big"))
            h.digest()
        n += 10_000
    return n / (time.perf_counter() - start)


def main() -> None:
    runs = int(sys.argv[1]) if len(sys.argv) > 1 else 20
    rate = hash_rate()
    rows = {}
    print(f"raw BLAKE2b rate: {rate / 1e6:.2f} M hashes/s (one core)")
    print(f"{'bits':>4} {'runs':>5} {'mean s':>8} {'median s':>9} {'p90 s':>7} {'max s':>7}")
    for bits in (16, 18, RESTING_EFFORT, 22):
        n = runs if bits <= RESTING_EFFORT else max(3, runs // 4)
        times = []
        for i in range(n):
            material = challenge("asip1recipient", f"asip1sender{i}", 1000 + i)
            start = time.perf_counter()
            nonce = solve(material, bits, os.urandom)
            times.append(time.perf_counter() - start)
            assert verify(material, nonce, bits)
        times.sort()
        rows[bits] = {
            "runs": n,
            "mean_s": round(statistics.fmean(times), 3),
            "median_s": round(statistics.median(times), 3),
            "p90_s": round(times[int(0.9 * (n - 1))], 3),
            "max_s": round(times[-1], 3),
        }
        r = rows[bits]
        print(
            f"{bits:>4} {n:>5} {r['mean_s']:>8} {r['median_s']:>9} {r['p90_s']:>7} {r['max_s']:>7}"
        )
    print(
        json.dumps(
            {
                "bench": "pow",
                "hash_rate": round(rate),
                "default_bits": RESTING_EFFORT,
                "by_bits": rows,
            }
        )
    )


if __name__ == "__main__":
    main()
