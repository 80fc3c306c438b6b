"""Launch our own tor process, or attach to a running one (tor(1), control-spec).

``launch_tor`` writes a torrc into a private DataDirectory, starts tor with
ports chosen by the OS (``ControlPort auto``, ``SocksPort auto``), learns the
control port from tor's own log line, authenticates with the cookie and
takes ownership, so tor exits when we close the control connection or our
process dies (``__OwningControllerProcess``). A nursery owned by the
``async with`` reads tor's log into a bounded tail and watches the process.

tor runs in its own session (a Ctrl-C in our terminal reaches us, not tor,
so we can still say goodbye through it) with a clean environment
(``tor_environment()``: nothing of ours, such as ``ANONSIP_PASSPHRASE``).

If tor ends on its own after it was ready, the body of ``async with
launch_tor(...)`` is cancelled and ``TorDied`` comes out of the ``async
with`` instead of whatever the body saw of the death (``ControlClosed``,
refused streams). The caller may then launch again on the same data
directory::

    while True:
        try:
            async with launch_tor(data_dir) as tor:
                ...  # bootstrap, publish, serve
        except TorDied:
            continue  # tor and all it held are gone; start over

``bridges`` make our tor enter the network through bridges only, with the
pluggable-transport programs they need (found before tor starts:
``TransportNotFound`` names the package to install).

``attach_tor`` drives a tor someone else runs (a system tor, Tor
Browser's) through its control port or socket: we then control neither
its bridges, its DataDirectory, its network nor its lifetime. If that tor
closes the control connection while we use it (it stopped or restarted),
``TorDied`` comes out of the block as for our own. ``open_tor`` is one
of the two, as a node's settings say.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import signal
import subprocess
from collections.abc import AsyncIterator, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import trio

from onion._bridges import Bridge, bridge_client_config, parse_bridge_line, transport_programs
from onion._control import ControlConnection
from onion._endpoint import ControlEndpoint
from onion._errors import (
    ControlUnreachable,
    OnionLocalError,
    PortInUse,
    TorDied,
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
    "as_bridges",
    "attach_tor",
    "check_tor_version",
    "find_tor",
    "launch_tor",
    "open_tor",
    "parse_tor_version",
    "tor_environment",
]

log = logging.getLogger(__name__)

MIN_TOR_VERSION = (0, 4, 5)
DEFAULT_START_TIMEOUT = 30.0
STOP_TIMEOUT = 5.0
# After the control connection broke, how long to wait for tor's exit status
# before calling the break something other than tor dying.
DEATH_GRACE = 2.0
INSTALL_HINT = "install it with: apt-get install tor"
# An attached tor that went away (a restart) gets this long to answer again;
# one never reached in this process fails at once (a mistyped port).
REATTACH_PATIENCE = 60.0
REATTACH_FIRST_DELAY = 0.2
REATTACH_MAX_DELAY = 2.0
_reached: set[str] = set()  # control endpoints this process was attached to

CONTROL_READY = re.compile(
    r"Opened Control listener connection \(ready\) on (?:[\d.]+|\[[0-9a-fA-F:]+\]):(\d+)"
)
_BIND_FAILED = re.compile(r"Could not bind to (\S+): Address already in use")
_VERSION = re.compile(r"Tor version (\d+)\.(\d+)\.(\d+)")


def tor_environment() -> dict[str, str]:
    """The whole environment of every tor we start: a search path and nothing else.

    Ours may hold secrets (``ANONSIP_PASSPHRASE``) and identifying settings;
    tor needs none of it (every path it uses is absolute in its torrc).
    """
    return {"PATH": os.defpath}


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
        result = await trio.run_process(
            [binary, "--version"], capture_stdout=True, check=False, env=tor_environment()
        )
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


def as_bridges(bridges: Sequence[Bridge | str]) -> tuple[Bridge, ...]:
    """Bridges from objects or lines (``InvalidBridgeLine`` for a bad line)."""
    return tuple(b if isinstance(b, Bridge) else parse_bridge_line(b) for b in bridges)


@asynccontextmanager
async def launch_tor(
    data_dir: Path | str,
    *,
    extra_config: Sequence[tuple[str, str]] = (),
    testnet: TestnetInfo | None = None,
    bridges: Sequence[Bridge | str] = (),
    tor_binary: str | None = None,
    start_timeout: float = DEFAULT_START_TIMEOUT,
) -> AsyncIterator[Tor]:
    """Run our own tor for the body of the ``async with`` and yield a ``Tor``.

    ``testnet`` joins a private network (``TestnetInfo.load(dir)``);
    ``bridges`` (objects or lines) are its only way in. The caller decides
    when to ``wait_bootstrapped()``. tor is stopped on exit, on Ctrl-C and
    on errors (SIGTERM, then SIGKILL). ``TorExited`` if tor ends before it
    is ready; ``TorDied`` out of the block if it ends on its own afterwards
    (see the module docstring).
    """
    chosen = as_bridges(bridges)
    programs = transport_programs(chosen)
    binary = find_tor(tor_binary)
    await check_tor_version(binary)
    root = prepare_data_dir(Path(data_dir))
    network = testnet.client_config() if testnet is not None else []
    network += bridge_client_config(chosen, programs)
    config = client_config(root, owner_pid=os.getpid(), extra=extra_config, network=network)
    torrc = root / "torrc"
    torrc.write_text(render_torrc(config))
    defaults = root / "torrc-defaults"
    defaults.write_text("")
    process = await trio.lowlevel.open_process(
        [binary, "--defaults-torrc", str(defaults), "-f", str(torrc)],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env=tor_environment(),
        start_new_session=True,  # our Ctrl-C is ours to handle; ownership ends tor with us
    )
    run = _TorRun(process=process, log=TorLog(), bridges=chosen)
    try:
        async with _supervised(run, start_timeout) as tor:
            yield tor
    except Exception as exc:
        # Whatever the body saw because tor vanished is a consequence; the death is the news.
        # tor breaking the control connection is how the body sees it before we see the exit
        # status. (Once the body is done, our closing the connection ends tor: not a death.)
        if run.died is None and run.broken_in_use and await _exited_within(process, DEATH_GRACE):
            run.died = _death(run)
        if run.died is not None:
            raise run.died from exc
        raise
    finally:
        run.stopping = True
        await _stop(process)
    if run.died is not None:
        raise run.died


@dataclass
class _TorRun:
    """What ``launch_tor`` and its supervisor share about one tor process."""

    process: trio.Process
    log: TorLog
    bridges: tuple[Bridge, ...] = ()
    stopping: bool = False
    tor: Tor | None = None  # set once tor is ready (controlled, owned, SOCKS known)
    died: TorDied | None = None
    broken_in_use: bool = False  # tor broke the control connection before the body ended


@asynccontextmanager
async def _supervised(run: _TorRun, start_timeout: float) -> AsyncIterator[Tor]:
    """Read tor's log, watch its process, connect and take ownership; yield the ``Tor``.

    If tor ends on its own once ready, ``run.died`` is set and the body is
    cancelled (the block then ends quietly; ``launch_tor`` raises).
    """
    process = run.process
    control_port: list[int] = []
    control_seen = trio.Event()
    exited = trio.Event()

    async def read_log() -> None:
        assert process.stdout is not None
        async for chunk in process.stdout:
            for line in run.log.feed(chunk):
                log.debug("tor: %s", line)
                match = CONTROL_READY.search(line)
                if match and not control_port:
                    control_port.append(int(match.group(1)))
                    control_seen.set()

    with unwrapped_errors():
        async with trio.open_nursery() as nursery:

            async def watch() -> None:
                await process.wait()
                exited.set()
                control_seen.set()
                if run.stopping:
                    return
                if run.tor is None:
                    raise _exit_error(process.returncode, run.log)
                run.died = _death(run)
                nursery.cancel_scope.cancel()  # the body unwinds; TorDied replaces it

            nursery.start_soon(read_log)
            nursery.start_soon(watch)
            with trio.fail_after(start_timeout):
                await control_seen.wait()
            if exited.is_set() or not control_port:
                raise _exit_error(process.returncode, run.log)
            async with ControlConnection("127.0.0.1", control_port[0]) as control:
                # Ownership: tor exits when this connection closes, too.
                await control.command("TAKEOWNERSHIP")
                socks = await _socks_listener(control)
                run.tor = Tor(
                    control=control,
                    socks_host=socks[0],
                    socks_port=socks[1],
                    log=run.log,
                    pid=process.pid,
                    bridges=run.bridges,
                )
                try:
                    yield run.tor
                finally:
                    run.stopping = True
                    run.broken_in_use = control.broken
            await _stop(process)
            nursery.cancel_scope.cancel()


async def _exited_within(process: trio.Process, seconds: float) -> bool:
    """Whether ``process`` has ended or ends within ``seconds`` (its exit, not a poll)."""
    with trio.CancelScope(shield=True), trio.move_on_after(seconds):
        await process.wait()
    return process.returncode is not None


def _death(run: _TorRun) -> TorDied:
    process, tor_log = run.process, run.log
    code = process.returncode
    how = f"was killed by signal {-code}" if code is not None and code < 0 else f"exited ({code})"
    tail = tor_log.tail(15)
    text = "\n  ".join(tail) or "(nothing logged)"
    return TorDied(
        f"tor (pid {process.pid}) {how} while in use; launch it again to carry on."
        f" Last log lines:\n  {text}",
        returncode=code,
        log_tail=tail,
    )


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
    target: str | ControlEndpoint,
    port: int | None = None,
    *,
    password: str | None = None,
) -> AsyncIterator[Tor]:
    """Drive an existing tor through its control port (``attach_tor(host, port)``) or
    ``ControlEndpoint``, with cookie, password or no authentication.

    Our onion services' local ends are private Unix sockets only if that
    tor runs as our user (it could not reach them otherwise); else TCP on
    127.0.0.1. ``TorDied`` if it closes the connection while in use.
    """
    if isinstance(target, ControlEndpoint):
        endpoint = target
    elif port is not None:
        endpoint = ControlEndpoint(host=target, port=port)
    else:
        endpoint = ControlEndpoint.parse(target)
    died: list[TorDied] = []
    await _wait_answering(endpoint)
    async with ControlConnection(
        endpoint.host, endpoint.port, path=endpoint.path, password=password
    ) as control:
        _reached.add(str(endpoint))
        socks = await _socks_listener(control)
        info = await control.get_info("process/uid")
        same_user = info.get("process/uid", "") == str(os.getuid())
        if not same_user:
            log.warning(
                "the attached tor runs as another user: onion services listen on TCP 127.0.0.1"
            )
        tor = Tor(
            control=control,
            socks_host=socks[0],
            socks_port=socks[1],
            unix_services=same_user,
            attached=True,
        )
        with unwrapped_errors():
            async with trio.open_nursery() as nursery:

                async def watch() -> None:
                    await control.wait_ended()
                    if control.broken:  # the body unwinds; TorDied replaces it
                        died.append(_gone(endpoint))
                        nursery.cancel_scope.cancel()

                nursery.start_soon(watch)
                try:
                    yield tor
                except Exception as exc:
                    if control.broken:  # what the body saw of it going away is a consequence
                        raise _gone(endpoint) from exc
                    raise
                nursery.cancel_scope.cancel()
    if died:
        raise died[0]


def _reason(exc: BaseException) -> str:
    """The operating system's words for a failed connect (trio wraps them for TCP)."""
    seen: list[BaseException] = [exc]
    while seen:
        error = seen.pop(0)
        if isinstance(error, OSError) and error.errno:
            return os.strerror(error.errno)
        if isinstance(error, BaseExceptionGroup):
            seen += error.exceptions
        if error.__cause__ is not None:
            seen.append(error.__cause__)
    return str(exc)


def _gone(endpoint: ControlEndpoint) -> TorDied:
    return TorDied(
        f"the tor at {endpoint} closed its control connection (it stopped or restarted);"
        " connect to it again to carry on",
        returncode=None,
        log_tail=[],
    )


async def _wait_answering(endpoint: ControlEndpoint) -> None:
    """Return once something accepts connections at ``endpoint``; ``ControlUnreachable`` if not.

    A tor we were attached to before (it is restarting) gets ``REATTACH_PATIENCE``
    seconds: connecting is retried with a growing back-off, as tor offers no
    event to wait on from outside. One never reached fails at once.
    """
    patient = str(endpoint) in _reached
    deadline = trio.current_time() + (REATTACH_PATIENCE if patient else 0.0)
    delay = REATTACH_FIRST_DELAY
    while True:
        try:
            if endpoint.path is not None:
                stream = await trio.open_unix_socket(endpoint.path)
            else:
                stream = await trio.open_tcp_stream(endpoint.host, endpoint.port)
        except OSError as exc:
            if trio.current_time() + delay > deadline:
                kind = "socket" if endpoint.path else "port"
                raise ControlUnreachable(
                    f"cannot reach tor's control {kind} at {endpoint} ({_reason(exc)}):"
                    " is that tor running, and is this its ControlPort or ControlSocket?"
                ) from None
            await trio.sleep(delay)  # a back-off between attempts, not a readiness wait
            delay = min(delay * 2, REATTACH_MAX_DELAY)
            continue
        await stream.aclose()
        return


def open_tor(
    data_dir: Path | str,
    *,
    control: str | None = None,
    control_password: str | None = None,
    testnet: TestnetInfo | None = None,
    bridges: Sequence[Bridge | str] = (),
) -> AbstractAsyncContextManager[Tor]:
    """Our own tor in ``data_dir`` (on ``testnet``, through ``bridges``), or, given
    ``control`` (``9051``, ``HOST:PORT``, a socket path), the tor that listens there.

    An attached tor keeps its own network and bridges: ``testnet`` and
    ``bridges`` are then not applied (the caller says so to the user).
    """
    if control is not None:
        return attach_tor(ControlEndpoint.parse(control), password=control_password)
    return launch_tor(data_dir, testnet=testnet, bridges=bridges)
