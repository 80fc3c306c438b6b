"""One private Tor network per test session, and client tors that join it.

``testnet`` is a session-scoped *sync* fixture (pytest-trio cannot share an
async fixture across tests): it runs ``anonsip testnet up`` as a subprocess,
``down`` at the end, and fails the session if any tor it started is left.
Set ``ANONSIP_TESTNET=DIR`` to reuse a network you started yourself.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

from onion import Tor, launch_tor
from onion.testnet import TestnetInfo

UP_TIMEOUT = 240
CLIENT_BOOTSTRAP_TIMEOUT = 90.0


def _tor_pids_mentioning(directory: str) -> list[int]:
    pids = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes()
            state = (proc / "stat").read_text().rpartition(")")[2].split()[0]
        except OSError:
            continue
        if state != "Z" and directory.encode() in cmdline and b"tor" in cmdline:
            pids.append(int(proc.name))
    return pids


def _running(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
    except OSError:
        return False
    return state != "Z"


def _cli(*args: str, timeout: float) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "anonsip.cli", "testnet", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


@pytest.fixture(scope="session")
def testnet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestnetInfo]:
    reuse = os.environ.get("ANONSIP_TESTNET")
    if reuse:
        yield TestnetInfo.load(reuse)
        return
    directory = str(tmp_path_factory.mktemp("testnet"))
    up = _cli("up", "--dir", directory, timeout=UP_TIMEOUT)
    if up.returncode != 0:
        _cli("down", "--dir", directory, timeout=60)
        pytest.fail(f"testnet up failed:\n{up.stdout}\n{up.stderr}")
    info = TestnetInfo.load(directory)
    try:
        yield info
    finally:
        down = _cli("down", "--dir", directory, timeout=60)
        # Zombies do not count: nothing reaps orphans when PID 1 is not an init.
        left = sorted(set(_tor_pids_mentioning(directory)) | {p for p in info.pids if _running(p)})
        assert down.returncode == 0, down.stderr
        assert left == [], f"tor processes left running after the session: {left}"


_IDENTIFYING = re.compile(
    r"\basip(?:inv)?1[02-9ac-hj-np-z]{20,}|\b[a-z2-7]{56}(?:\.onion)?\b", re.IGNORECASE
)
_NODE_LOGS = ("node.log", "stdout.log", "node.out", "me.log", "peer.log", "other.log")


@pytest.fixture(scope="session", autouse=True)
def logs_name_nobody(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """After the whole run: no node's log or output names an address or an onion."""
    yield
    found = []
    for path in sorted(tmp_path_factory.getbasetemp().rglob("*")):
        if path.name not in _NODE_LOGS or not path.is_file():
            continue
        for number, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
            if _IDENTIFYING.search(line):
                found.append(f"{path}:{number}: {line[:160]}")
    assert found == [], "identifying text in node logs:\n" + "\n".join(found[:20])


@asynccontextmanager
async def client_tor(testnet: TestnetInfo, name: str) -> AsyncIterator[Tor]:
    """A bootstrapped client tor on the session's network (data dir reused by name)."""
    data_dir = Path(testnet.directory) / "clients" / name
    async with launch_tor(data_dir, testnet=testnet) as tor:
        await tor.wait_bootstrapped(CLIENT_BOOTSTRAP_TIMEOUT)
        yield tor


@pytest.fixture
async def tor(testnet: TestnetInfo) -> AsyncIterator[Tor]:
    """One client tor per test (pytest-trio runs each test in its own trio.run)."""
    async with client_tor(testnet, "shared") as client:
        yield client
