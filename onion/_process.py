"""Launch our own tor process, or attach to a running one (tor(1), control-spec).

``launch_tor`` writes a torrc into a private DataDirectory, starts tor with
ports chosen by the OS (``ControlPort auto``, ``SocksPort auto``), learns the
control port from tor's own log line, authenticates with the cookie and
takes ownership, so tor exits when we close the control connection or our
process dies (``__OwningControllerProcess``). A nursery owned by the
``async with`` reads tor's log into a bounded tail and watches the process.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import signal
import subprocess
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager, suppress
from pathlib import Path
from typing import TYPE_CHECKING

import trio

from onion._control import ControlConnection
from onion._errors import (
    OnionLocalError,
    PortInUse,
    TorExited,
    TorNotFound,
    TorTooOld,
    unwrapped_errors,
)
from onion._tor import Tor, TorLog
from onion._torrc import client_config, render_torrc

if TYPE_CHECKING:
    from onion.testnet._state import TestnetInfo

__all__ = [
    "MIN_TOR_VERSION",
    "attach_tor",
    "check_tor_version",
    "find_tor",
    "launch_tor",
    "parse_tor_version",
]

log = logging.getLogger(__name__)

MIN_TOR_VERSION = (0, 4, 5)
DEFAULT_START_TIMEOUT = 30.0
STOP_TIMEOUT = 5.0
INSTALL_HINT = "install it with: apt-get install tor"

_CONTROL_READY = re.compile(
    r"Opened Control listener connection \(ready\) on (?:[\d.]+|\[[0-9a-fA-F:]+\]):(\d+)"
)
_BIND_FAILED = re.compile(r"Could not bind to (\S+): Address already in use")
_VERSION = re.compile(r"Tor version (\d+)\.(\d+)\.(\d+)")


def find_tor(binary: str | None = None) -> str:
    """Path of the tor executable; ``TorNotFound`` with the install hint if missing."""
    name = binary or "tor"
    path = shutil.which(name)
    if path is None:
        raise TorNotFound(f"cannot find the tor program ({name!r} is not on PATH); {INSTALL_HINT}")
    return path


def parse_tor_version(text: str) -> tuple[int, int, int]:
    match = _VERSION.search(text)
    if match is None:
        raise TorNotFound(f"the tor program did not report a version: {text[:80]!r}")
    major, minor, micro = (int(g) for g in match.groups())
    return major, minor, micro


async def check_tor_version(binary: str) -> tuple[int, int, int]:
    """Run ``tor --version``; ``TorTooOld`` below ``MIN_TOR_VERSION``."""
    try:
        result = await trio.run_process([binary, "--version"], capture_stdout=True, check=False)
    except OSError as exc:
        raise TorNotFound(f"cannot run {binary}: {exc.strerror}; {INSTALL_HINT}") from exc
    version = parse_tor_version(result.stdout.decode("utf-8", "replace"))
    if version < MIN_TOR_VERSION:
        need = ".".join(map(str, MIN_TOR_VERSION))
        have = ".".join(map(str, version))
        raise TorTooOld(f"tor {have} is too old; anonsip needs tor >= {need} ({INSTALL_HINT})")
    return version


def prepare_data_dir(data_dir: Path) -> Path:
    """Create ``data_dir`` with mode 0700 (tor refuses group/world access)."""
    data_dir = data_dir.resolve()
    data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    data_dir.chmod(0o700)
    return data_dir


@asynccontextmanager
async def launch_tor(
    data_dir: Path | str,
    *,
    extra_config: Sequence[tuple[str, str]] = (),
    testnet: TestnetInfo | None = None,
    tor_binary: str | None = None,
    start_timeout: float = DEFAULT_START_TIMEOUT,
) -> AsyncIterator[Tor]:
    """Run our own tor for the body of the ``async with`` and yield a ``Tor``.

    ``testnet`` joins a private network (``TestnetInfo.load(dir)``). The
    caller decides when to ``wait_bootstrapped()``. tor is stopped on exit,
    on Ctrl-C and on errors (SIGTERM, then SIGKILL).
    """
    binary = find_tor(tor_binary)
    await check_tor_version(binary)
    root = prepare_data_dir(Path(data_dir))
    network = testnet.client_config() if testnet is not None else []
    config = client_config(root, owner_pid=os.getpid(), extra=extra_config, network=network)
    torrc = root / "torrc"
    torrc.write_text(render_torrc(config))
    defaults = root / "torrc-defaults"
    defaults.write_text("")
    tor_log = TorLog()
    control_port: list[int] = []
    control_seen = trio.Event()
    exited = trio.Event()
    process = await trio.lowlevel.open_process(
        [binary, "--defaults-torrc", str(defaults), "-f", str(torrc)],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    stopping = False
    try:
        with unwrapped_errors():
            async with trio.open_nursery() as nursery:

                async def read_log() -> None:
                    assert process.stdout is not None
                    async for chunk in process.stdout:
                        for line in tor_log.feed(chunk):
                            log.debug("tor: %s", line)
                            match = _CONTROL_READY.search(line)
                            if match and not control_port:
                                control_port.append(int(match.group(1)))
                                control_seen.set()

                async def watch() -> None:
                    await process.wait()
                    exited.set()
                    control_seen.set()
                    if not stopping:
                        raise _exit_error(process.returncode, tor_log)

                nursery.start_soon(read_log)
                nursery.start_soon(watch)
                with trio.fail_after(start_timeout):
                    await control_seen.wait()
                if exited.is_set() or not control_port:
                    raise _exit_error(process.returncode, tor_log)
                async with ControlConnection("127.0.0.1", control_port[0]) as control:
                    # Ownership: tor exits when this connection closes, too.
                    await control.command("TAKEOWNERSHIP")
                    socks = await _socks_listener(control)
                    tor = Tor(
                        control=control,
                        socks_host=socks[0],
                        socks_port=socks[1],
                        log=tor_log,
                        pid=process.pid,
                    )
                    try:
                        yield tor
                    finally:
                        stopping = True
                stopping = True
                await _stop(process)
                nursery.cancel_scope.cancel()
    finally:
        stopping = True
        await _stop(process)


def _exit_error(returncode: int | None, tor_log: TorLog) -> TorExited:
    tail = tor_log.tail(15)
    text = "\n  ".join(tail)
    for line in tail:
        match = _BIND_FAILED.search(line)
        if match:
            return PortInUse(f"tor could not bind {match.group(1)}: port in use. Log:\n  {text}")
    return TorExited(f"tor exited (status {returncode}) before it was ready. Log:\n  {text}")


async def _stop(process: trio.Process) -> None:
    if process.returncode is not None:
        return
    with trio.CancelScope(shield=True):
        with suppress(ProcessLookupError):
            process.send_signal(signal.SIGTERM)
        with trio.move_on_after(STOP_TIMEOUT):
            await process.wait()
            return
        with suppress(ProcessLookupError):
            process.kill()
        await process.wait()


async def _socks_listener(control: ControlConnection) -> tuple[str, int]:
    info = await control.get_info("net/listeners/socks")
    listeners = info.get("net/listeners/socks", "").split()
    if not listeners:
        raise OnionLocalError("tor has no SocksPort; enable one (SocksPort auto) to open streams")
    host, _, port = listeners[0].strip('"').rpartition(":")
    return host.strip("[]"), int(port)


@asynccontextmanager
async def attach_tor(
    control_host: str, control_port: int, password: str | None = None
) -> AsyncIterator[Tor]:
    """Drive an existing tor through its ControlPort (cookie, password or no auth)."""
    async with ControlConnection(control_host, control_port, password=password) as control:
        socks = await _socks_listener(control)
        yield Tor(control=control, socks_host=socks[0], socks_port=socks[1])
