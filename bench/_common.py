"""Shared plumbing for benches that need a private Tor network.

``private_network(dir_or_none)`` reuses a running network (``--testnet DIR``)
or starts a throw-away one with ``anonsip testnet up`` (``wan=PROFILE``: a
WAN-shaped one, ``testnet up --wan``) and stops it after.
``client_tors(info, n)`` launches ``n`` bootstrapped client tors on it.
``report(title, rows, figures)`` prints a table and, last, one JSON line.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from contextlib import AsyncExitStack, asynccontextmanager, contextmanager
from pathlib import Path

from onion import Tor, launch_tor
from onion.testnet import TestnetInfo

BOOTSTRAP_TIMEOUT = 120.0


def _cli(*args: str) -> None:
    subprocess.run([sys.executable, "-m", "anonsip.cli", "testnet", *args], check=True)


@contextmanager
def private_network(directory: str | None, *, wan: str | None = None) -> Iterator[TestnetInfo]:
    """The network in ``directory`` if given, else a fresh one for this run only."""
    if directory:
        yield TestnetInfo.load(directory)
        return
    with tempfile.TemporaryDirectory(prefix="anonsip-bench-") as tmp:
        _cli("up", "--dir", tmp, *(["--wan", wan] if wan else []))
        try:
            yield TestnetInfo.load(tmp)
        finally:
            _cli("down", "--dir", tmp)


@asynccontextmanager
async def client_tors(info: TestnetInfo, count: int, name: str) -> AsyncIterator[list[Tor]]:
    """``count`` client tors on the network, bootstrapped, stopped on exit."""
    async with AsyncExitStack() as stack:
        tors = []
        for i in range(count):
            data_dir = Path(info.directory) / "bench" / f"{name}{i}"
            tor = await stack.enter_async_context(launch_tor(data_dir, testnet=info))
            tors.append(tor)
        for tor in tors:
            await tor.wait_bootstrapped(BOOTSTRAP_TIMEOUT)
        yield tors


def report(title: str, rows: Sequence[tuple[str, str]], figures: Mapping[str, object]) -> None:
    """A readable two-column table, then the figures as the last line (JSON)."""
    width = max(len(label) for label, _ in rows)
    print(title)
    print("-" * len(title))
    for label, value in rows:
        print(f"{label:<{width}}  {value}")
    print(json.dumps(figures, sort_keys=True))
