"""A node running as a child process (``anonsip --home H run ...``), seen through
its control socket (docs/control-api.md).

The demo and the end-to-end tests run real nodes this way: each in its own
session (so a Ctrl-C meant for the terminal UI never reaches it), its output
in a log file, its readiness taken from the node's own ``status`` events,
and its end asked for politely (the ``shutdown`` op, which unregisters),
then by SIGTERM, then by SIGKILL, each with a deadline.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import trio

from anonsip._errors import AnonsipError, LocalError
from anonsip.control import NodeNotRunning, TrioControlClient

__all__ = [
    "RUNNING_TIMEOUT",
    "NodeFailed",
    "NodeProcess",
    "init_home",
    "log_tail",
    "run_node",
]

log = logging.getLogger(__name__)

RUNNING_TIMEOUT = 180.0  # tor bootstrap on a private network, DHT join, publication
SOCKET_TIMEOUT = 30.0  # the node opens its control socket before it starts tor
SOCKET_RETRY = 0.1
CALL_TIMEOUT = 30.0
SHUTDOWN_TIMEOUT = 20.0  # the node gives unregistering up to 15 s
TERM_TIMEOUT = 5.0
TAIL_LINES = 12


class NodeFailed(LocalError):
    """A node child exited or did not come up in time; the message ends with its log."""


def log_tail(path: Path, lines: int = TAIL_LINES) -> str:
    """The last ``lines`` lines of a log file, indented, or a note that there is none."""
    try:
        with path.open("rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - 16384))
            text = f.read().decode("utf-8", errors="replace")
    except OSError:
        return f"  ({path} is missing)"
    tail = text.splitlines()[-lines:]
    return "\n".join(f"  {line}" for line in tail) or f"  ({path} is empty)"


@contextlib.contextmanager
def single_error() -> Iterator[None]:
    """Unwrap the group a control client's nursery puts around one error."""
    try:
        yield
    except BaseExceptionGroup as group:
        leaves = _leaves(group)
        if len(leaves) == 1 and isinstance(leaves[0], Exception):
            raise leaves[0] from None
        if leaves and all(isinstance(leaf, AnonsipError) for leaf in leaves):
            raise leaves[0] from None  # e.g. both nodes failed: the first says why
        raise


def _leaves(group: BaseExceptionGroup[BaseException]) -> list[BaseException]:
    found: list[BaseException] = []
    for exc in group.exceptions:
        found += _leaves(exc) if isinstance(exc, BaseExceptionGroup) else [exc]
    return found


def anonsip_command(home: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "anonsip.cli", "--home", str(home), *args]


async def init_home(home: Path, nick: str) -> bool:
    """Create an unencrypted identity in ``home`` unless one is there; True if created."""
    if (home / "keystore").exists():
        return False
    result = await trio.run_process(
        anonsip_command(home, "init", "--nick", nick, "--no-passphrase"),
        capture_stdout=True,
        capture_stderr=True,
        check=False,
    )
    if result.returncode != 0:
        raise LocalError(
            f"could not create the identity in {home}: "
            f"{result.stderr.decode(errors='replace').strip()}"
        )
    return True


def _registered(status: Mapping[str, Any]) -> bool:
    registration = status.get("registration") or {}
    return bool(registration.get("state") == "registered")


@dataclass(eq=False)
class NodeProcess:
    """One node child: its home, its process and where its output goes."""

    name: str
    home: Path
    process: trio.Process
    output: Path

    @property
    def control_path(self) -> Path:
        return self.home / "control.sock"

    def failure(self, what: str) -> NodeFailed:
        return NodeFailed(
            f"the {self.name} node {what}. Its last output ({self.output}):\n"
            f"{log_tail(self.output)}\nand its log ({self.home / 'node.log'}):\n"
            f"{log_tail(self.home / 'node.log')}"
        )

    def _exited(self) -> bool:
        return self.process.poll() is not None

    async def wait_listening(self) -> None:
        """Return once the node accepts control connections (it must still be running)."""
        with trio.fail_after(SOCKET_TIMEOUT):
            while True:
                if self._exited():
                    raise self.failure(f"exited with status {self.process.returncode}")
                try:
                    async with TrioControlClient.connect(self.control_path):
                        return
                except NodeNotRunning:
                    # No readiness pipe from the child: its socket appears within a
                    # second of start, so a short bounded retry is the honest wait.
                    await trio.sleep(SOCKET_RETRY)

    async def call(self, op: str, /, **args: Any) -> Any:
        """Run one control op on the node and return its result."""
        with single_error(), trio.fail_after(CALL_TIMEOUT):
            async with TrioControlClient.connect(self.control_path) as client:
                return await client.call(op, **args)

    async def wait_running(
        self, timeout: float = RUNNING_TIMEOUT, *, registered: bool = True
    ) -> Mapping[str, Any]:
        """Wait until the node reports ``phase == "running"`` and (if ``registered``)
        its registration is stored, so peers can find it; return that status."""

        def ready(status: Mapping[str, Any]) -> bool:
            return status.get("phase") == "running" and (not registered or _registered(status))

        try:
            with single_error(), trio.fail_after(timeout):
                await self.wait_listening()
                async with TrioControlClient.connect(self.control_path) as client:
                    await client.subscribe()
                    status = await client.call("status")
                    if ready(status):
                        return dict(status)
                    async for event in client.events():
                        if event.event == "status" and ready(event.data):
                            return dict(event.data)
        except trio.TooSlowError:
            raise self.failure(f"was not running after {timeout:.0f} s") from None
        except NodeFailed:
            raise
        except AnonsipError as exc:
            raise self.failure(f"went away while starting ({exc})") from None
        raise self.failure("closed its control socket while starting")

    async def stop(self) -> None:
        """Shutdown op, then SIGTERM, then SIGKILL; returns once the process is gone."""
        with trio.CancelScope(shield=True):
            if not self._exited():
                with (
                    trio.move_on_after(TERM_TIMEOUT),
                    contextlib.suppress(AnonsipError, OSError),
                    single_error(),
                ):
                    async with TrioControlClient.connect(self.control_path) as client:
                        await client.call("shutdown")
                with trio.move_on_after(SHUTDOWN_TIMEOUT):
                    await self.process.wait()
            for sig, deadline in ((signal.SIGTERM, TERM_TIMEOUT), (signal.SIGKILL, None)):
                if self._exited():
                    break
                log.info("the %s node did not stop; sending %s", self.name, sig.name)
                with contextlib.suppress(ProcessLookupError):
                    self.process.send_signal(sig)
                if deadline is None:
                    await self.process.wait()
                else:
                    with trio.move_on_after(deadline):
                        await self.process.wait()


@contextlib.asynccontextmanager
async def run_node(
    name: str,
    home: Path,
    *,
    testnet: Path | None,
    output: Path,
    options: Sequence[str] = (),
    env: Mapping[str, str] | None = None,
) -> AsyncIterator[NodeProcess]:
    """``anonsip --home HOME run`` as a child for the duration of the block."""
    args = ["run", *(["--testnet", str(testnet)] if testnet else []), *options]
    output.parent.mkdir(parents=True, exist_ok=True)
    with output.open("ab") as out:
        process = await trio.lowlevel.open_process(
            anonsip_command(home, *args),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env={**os.environ, **(env or {})},
        )
    node = NodeProcess(name=name, home=home, process=process, output=output)
    try:
        yield node
    finally:
        await node.stop()
