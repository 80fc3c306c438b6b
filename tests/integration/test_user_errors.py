"""What a user sees when something is wrong: one line and a non-zero exit, through the real command.

Each case runs ``python -m anonsip.cli`` as a user would and checks that
stderr is one ``anonsip: error: …`` line that says what to do, with no
traceback: tor missing, tor too old, a bootstrap that never finishes, a
wrong passphrase, a home on a full disk and on a read-only one, a second
node on the same home.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from anonsip.nodeproc import NodeProcess
from onion.testnet import TestnetInfo

pytestmark = pytest.mark.integration


def anonsip(
    home: Path, *args: str, env: dict[str, str] | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "anonsip.cli", "--home", str(home), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
        check=False,
        stdin=subprocess.DEVNULL,
    )


def one_error_line(done: subprocess.CompletedProcess[str], *words: str) -> str:
    assert done.returncode != 0, done.stdout
    assert "Traceback" not in done.stderr, done.stderr
    lines = [line for line in done.stderr.splitlines() if line.startswith("anonsip: error:")]
    assert len(lines) == 1, done.stderr
    for word in words:
        assert word.lower() in lines[0].lower(), lines[0]
    return lines[0]


def init(home: Path, *extra: str, env: dict[str, str] | None = None) -> None:
    done = anonsip(home, "init", "--nick", "u", "--fast-kdf", *extra, env=env)
    assert done.returncode == 0, done.stderr


def test_tor_missing(tmp_path: Path) -> None:
    init(tmp_path / "h", "--no-passphrase")
    empty = tmp_path / "bin"
    empty.mkdir()
    done = anonsip(tmp_path / "h", "run", env={"PATH": str(empty)})
    one_error_line(done, "tor", "apt-get install tor")


def test_tor_too_old(tmp_path: Path) -> None:
    init(tmp_path / "h", "--no-passphrase")
    fake = tmp_path / "bin"
    fake.mkdir()
    (fake / "tor").write_text("#!/bin/sh\necho 'Tor version 0.3.5.8.'\n")
    (fake / "tor").chmod(0o755)
    done = anonsip(tmp_path / "h", "run", env={"PATH": f"{fake}:{os.environ['PATH']}"})
    one_error_line(done, "too old", "0.3.5")


def test_bootstrap_that_never_finishes(tmp_path: Path, testnet: TestnetInfo) -> None:
    """A private network whose authorities cannot be reached: tor stalls, we say so."""
    dead = tmp_path / "dead-net"
    shutil.copytree(testnet.directory, dead, ignore=shutil.ignore_patterns("*", "!*.json"))
    state = json.loads((Path(testnet.directory) / "testnet.json").read_text())
    _point_authorities_nowhere(state)
    (dead / "testnet.json").write_text(json.dumps(state))
    init(tmp_path / "h", "--no-passphrase")
    done = anonsip(
        tmp_path / "h", "run", "--testnet", str(dead), "--bootstrap-timeout", "15", timeout=120
    )
    one_error_line(done, "bootstrapping", "15 s")


def _point_authorities_nowhere(state: dict[str, object]) -> None:
    """Every DirAuthority line aims at a port nothing listens on (discard, 9)."""
    lines = state["authorities"]
    assert isinstance(lines, list)
    state["authorities"] = [
        re.sub(r"(\d+\.\d+\.\d+\.\d+):\d+", r"\1:9", re.sub(r"orport=\d+", "orport=9", line))
        for line in lines
    ]


def test_wrong_passphrase(tmp_path: Path) -> None:
    init(tmp_path / "h", env={"ANONSIP_PASSPHRASE": "correct horse battery"})
    done = anonsip(tmp_path / "h", "run", env={"ANONSIP_PASSPHRASE": "wrong horse battery"})
    line = one_error_line(done, "passphrase")
    assert "correct" not in line


@contextlib.contextmanager
def small_disk(where: Path, size: str = "512k") -> Iterator[Path]:
    where.mkdir(parents=True, exist_ok=True)
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size},mode=0700", "tmpfs", str(where)],
        capture_output=True,
        text=True,
        check=False,
    )
    if mounted.returncode != 0:
        pytest.fail(f"this test mounts a small disk and needs root: {mounted.stderr.strip()}")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)


def test_a_full_disk(tmp_path: Path) -> None:
    with small_disk(tmp_path / "disk") as disk:
        filler = disk / "filler"
        with contextlib.suppress(OSError), filler.open("wb") as f:
            while True:
                f.write(b"\0" * 65536)
        one_error_line(anonsip(disk / "h", "init", "--nick", "u", "--no-passphrase"), "space")


def test_a_read_only_home(tmp_path: Path) -> None:
    with small_disk(tmp_path / "disk") as disk:
        init(disk / "h", "--no-passphrase")
        subprocess.run(["mount", "-o", "remount,ro", str(disk)], check=True)
        one_error_line(anonsip(disk / "h", "run"), "read-only")


async def test_a_second_node_on_the_same_home(tmp_path: Path, testnet: TestnetInfo) -> None:
    first = NodeProcess("first", tmp_path / "h", testnet=Path(testnet.directory))
    first.start()
    try:
        async with first.client():
            pass  # the first node has its control socket
        done = anonsip(tmp_path / "h", "run", "--testnet", testnet.directory)
        one_error_line(done, "already running")
    finally:
        await first.stop()
