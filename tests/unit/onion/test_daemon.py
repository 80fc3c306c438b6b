"""Processes that outlive the command: own session, output, exit, and no handle kept on them."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import trio

from onion.testnet._daemon import Daemon

SH = "/bin/sh"


def _open_fds() -> set[str]:
    return {p.name for p in Path("/proc/self/fd").iterdir()}


async def test_output_and_exit_code_and_its_own_session() -> None:
    before = _open_fds()
    daemon = Daemon.spawn([SH, "-c", "echo hello; echo oops >&2; read x; exit 3"], env={})
    assert os.getsid(daemon.pid) == daemon.pid != os.getsid(0)
    assert daemon.output is None
    assert await daemon.wait() == 3  # stdin is /dev/null: `read` ends at once
    assert daemon.returncode == 3
    assert _open_fds() == before

    captured = Daemon.spawn(
        [SH, "-c", "echo hello; echo oops >&2; exit 0"], env={}, capture_output=True
    )
    assert captured.output is not None
    said = b""
    async for chunk in captured.output:
        said += chunk
    await captured.close_output()
    assert said == b"hello\noops\n"
    assert await captured.wait() == 0
    assert _open_fds() == before


async def test_a_long_lived_one_holds_nothing_of_ours_and_can_be_stopped() -> None:
    before = _open_fds()
    daemon = Daemon.spawn([SH, "-c", "exec sleep 60"], env={"PATH": os.defpath})
    assert _open_fds() == before  # nothing held while it runs and we do not watch it
    with trio.move_on_after(0.2):
        await daemon.wait()  # a cancelled wait closes its pidfd too
    assert daemon.returncode is None
    assert _open_fds() == before
    daemon.send_signal(signal.SIGTERM)
    assert await daemon.wait() == -signal.SIGTERM
    daemon.kill()  # after it ended: nothing happens
    assert _open_fds() == before


async def test_the_environment_is_only_what_it_is_given(tmp_path: Path) -> None:
    out = tmp_path / "env"
    daemon = Daemon.spawn([SH, "-c", f"env > {out}"], env={"ONLY": "this"})
    assert await daemon.wait() == 0
    lines = set(out.read_text().split())
    assert "ONLY=this" in lines
    assert not any(line.startswith("HOME=") for line in lines)


async def test_output_to_a_file_is_emptied_first_and_ours_alone(tmp_path: Path) -> None:
    out = tmp_path / "startup.log"
    out.write_text("from an earlier start\n")
    before = _open_fds()
    daemon = Daemon.spawn(
        [SH, "-c", "echo hello; echo oops >&2; exit 1"], env={}, output_file=str(out)
    )
    assert daemon.output is None
    assert await daemon.wait() == 1
    assert out.read_text() == "hello\noops\n"
    assert _open_fds() == before

    fresh = tmp_path / "new.log"
    daemon = Daemon.spawn([SH, "-c", "echo made"], env={}, output_file=str(fresh))
    assert await daemon.wait() == 0
    assert fresh.read_text() == "made\n"
    assert fresh.stat().st_mode & 0o777 == 0o600
