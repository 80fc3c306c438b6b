"""``testnet up --wan``: every hop of a circuit carries the profile's delay; ``down`` ends it all.

A network whose links each add 20 ms one way: an onion circuit has seven
links (client, guard, middle, rendezvous point, middle, middle, guard,
service), so a round trip crosses fourteen and cannot take less than
280 ms, where the loopback network answers in tens of milliseconds. The
links are made by the shaper process in front of every ORPort; ``down``
stops it with the tors.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import trio

from onion import Tor, launch_tor
from onion.testnet import TestnetInfo

pytestmark = pytest.mark.integration

PROFILE = "delay=20,jitter=1"
HOPS_PER_ROUND_TRIP = 14
MESSAGE = b"x" * 64


def _live_pids_mentioning(text: str) -> list[int]:
    pids = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes()
            state = (proc / "stat").read_text().rpartition(")")[2].split()[0]
        except OSError:
            continue
        if state != "Z" and text.encode() in cmdline:
            pids.append(int(proc.name))
    return pids


def _testnet(*args: str, timeout: float = 240) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "anonsip.cli", "testnet", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def _status(directory: Path, tries: int = 3) -> dict[str, Any]:
    """``testnet status``; again if the consensus could not be fetched in its 5 s (a
    loaded machine), never if it was read and something is missing."""
    for _ in range(tries):
        report: dict[str, Any] = json.loads(_testnet("status", "--dir", str(directory)).stdout)
        if report["usable"] or not report["problem"]:
            break
    return report


async def _echo_rtts(info: TestnetInfo, directory: Path, count: int) -> list[float]:
    async def echo(stream: object) -> None:
        assert isinstance(stream, trio.SocketStream)
        async for chunk in stream:
            await stream.send_all(chunk)

    async with (
        launch_tor(directory / "client", testnet=info) as client,
        launch_tor(directory / "server", testnet=info) as server,
    ):
        tors: list[Tor] = [client, server]
        for tor in tors:
            await tor.wait_bootstrapped(120)
        async with server.publish_service(echo) as service:
            await service.wait_published(60)
            stream = await client.open_stream(service.address, 80, timeout=60, not_found_retry=30)
            rtts = []
            async with stream:
                for _ in range(count):
                    start = trio.current_time()
                    await stream.send_all(MESSAGE)
                    got = b""
                    while len(got) < len(MESSAGE):
                        got += await stream.receive_some(len(MESSAGE) - len(got))
                    rtts.append(trio.current_time() - start)
            return rtts


def test_every_hop_is_delayed_and_down_stops_the_shaper_too(tmp_path: Path) -> None:
    directory = tmp_path / "wan"
    up = _testnet("up", "--dir", str(directory), "--wan", PROFILE)
    try:
        assert up.returncode == 0, up.stderr
        assert "every link is shaped in user space: delay=20,walk=0,jitter=1" in up.stdout
        report = _status(directory)
        assert report["usable"] is True, report
        assert report["wan"].startswith("delay=20,")
        (shaper,) = [n for n in report["nodes"] if n["role"] == "shaper"]
        assert shaper["alive"]
        info = TestnetInfo.load(directory)
        rtts = trio.run(_echo_rtts, info, tmp_path, 10)
        assert statistics.median(rtts) >= HOPS_PER_ROUND_TRIP * 20 / 1000, rtts
        assert min(rtts) >= HOPS_PER_ROUND_TRIP * 20 / 1000
    finally:
        down = _testnet("down", "--dir", str(directory), timeout=60)
    assert down.returncode == 0
    assert "stopped 9 " in down.stdout  # eight tors and the shaper
    assert _live_pids_mentioning(str(directory)) == []
