"""``anonsip demo --bridge``: the user's node enters the demo's network through an obfs4 bridge.

The terminal UI is replaced by a command that checks, from outside, what
the user would see: their node running and reachable, its tor configured
with the demo's bridge only, the demo peer greeting them through it. The
demo then stops everything, the bridge included.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from anonsip.demo import run_demo
from onion import parse_bridge_line

pytestmark = pytest.mark.integration

CHECK = """
import json, subprocess, sys
from pathlib import Path
home = Path(sys.argv[1]).parent
status = json.loads(subprocess.run(
    [sys.executable, "-m", "anonsip.cli", "--home", str(home), "status", "--json"],
    capture_output=True, text=True, check=True).stdout)
assert status["phase"] == "running", status
assert status["tor"]["progress"] == 100, status
history = json.loads(subprocess.run(
    [sys.executable, "-m", "anonsip.cli", "--home", str(home), "history", "demo-peer", "--json"],
    capture_output=True, text=True, check=True).stdout)
assert history, "the demo peer's greeting"
torrc = (home / "tor" / "torrc").read_text()
print("torrc-bridges:", [l for l in torrc.splitlines() if l.startswith(("Bridge ", "UseBridges"))])
"""


async def test_the_demo_with_a_bridge_runs_and_leaves_nothing(tmp_path: Path) -> None:
    said: list[str] = []
    status = await run_demo(
        tmp_path / "demo",
        bridge=True,
        say=said.append,
        ui_command=lambda socket: [sys.executable, "-c", CHECK, str(socket)],
    )
    assert status == 0, said
    text = "\n".join(said)
    assert "your node enters through it (the demo peer connects directly)" in text
    assert "stopped the private Tor network (9 tor processes)" in text  # 8 and the bridge
    kept = (tmp_path / "demo" / "me" / "bridges").read_text().splitlines()
    (line,) = kept
    bridge = parse_bridge_line(line)
    assert bridge.transport == "obfs4"
    assert bridge.host == "127.0.0.1"
    torrc = (tmp_path / "demo" / "me" / "tor" / "torrc").read_text()
    assert f"Bridge {line}\n" in torrc
    assert "UseBridges 1\n" in torrc
    assert (
        "entering the Tor network through an obfs4 bridge"
        in (tmp_path / "demo" / "me.log").read_text()
    )
