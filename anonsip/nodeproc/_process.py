"""A node running as a child process (``anonsip --home H run …``), seen through its control socket.

The demo, the integration tests and the benchmarks run real nodes this
way: each in its own session (a Ctrl-C meant for the terminal UI never
reaches it), its output in a file, its readiness taken from the node's own
``status`` events, and its end asked for politely (the ``shutdown`` op,
which unregisters), then by SIGTERM, then by SIGKILL, each with a
deadline. Starting and signalling are plain calls (usable from sync test
fixtures); waiting and talking to the node are async under trio. A node
that dies or does not come up raises ``NodeFailed`` whose message ends
with the node's last output, so a failing test says why.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import trio

from anonsip._errors import AnonsipError, LocalError
from anonsip.control import NodeNotRunning, StatusView, TrioControlClient

__all__ = [
    "READY_TIMEOUT",
    "NodeFailed",
    "NodeProcess",
    "anonsip_command",
    "children",
    "init_home",
    "log_tail",
    "run_node",
    "sole_error",
]

READY_TIMEOUT = 180.0  # tor bootstrap on a private network, DHT join, publication
SOCKET_TIMEOUT = 30.0  # the node opens its control socket before it starts tor
CALL_TIMEOUT = 30.0
STOP_TIMEOUT = 30.0  # the node gives its goodbyes a few seconds each
TERM_TIMEOUT = 5.0
TAIL_LINES = 20
_CONNECT_RETRY = 0.05  # between attempts to reach a socket that does not exist yet


class NodeFailed(LocalError):
    """A node child exited or did not come up in time; the message ends with its output."""


def anonsip_command(home: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "anonsip.cli", "--home", str(home), *args]


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


def sole_error(exc: BaseException) -> BaseException:
    """The error a nursery wrapped (a control client's reader task), if there is one."""
    if not isinstance(exc, BaseExceptionGroup):
        return exc
    leaves: list[BaseException] = []
    stack: list[BaseException] = [exc]
    while stack:
        item = stack.pop()
        if isinstance(item, BaseExceptionGroup):
            stack.extend(item.exceptions)
        elif not isinstance(item, trio.Cancelled):
            leaves.append(item)
    if len(leaves) == 1 or (leaves and all(isinstance(e, AnonsipError) for e in leaves)):
        return leaves[0]
    return exc


@contextlib.contextmanager
def unwrapped() -> Any:
    """Re-raise the one error a nursery wrapped (see ``sole_error``); groups of more stay."""
    try:
        yield
    except BaseExceptionGroup as group:
        error = sole_error(group)
        if error is group:
            raise
        raise error from None


def init_home(home: Path, nick: str, *, fast_kdf: bool = True) -> str:
    """An unencrypted identity in ``home`` (made unless one is there); returns its address."""
    home.mkdir(mode=0o700, parents=True, exist_ok=True)
    if (home / "keystore").exists():
        args = ["address"]
    else:
        args = ["init", "--nick", nick, "--no-passphrase", *(["--fast-kdf"] if fast_kdf else [])]
    done = subprocess.run(
        anonsip_command(home, *args), capture_output=True, text=True, timeout=60, check=False
    )
    if done.returncode != 0:
        raise LocalError(f"anonsip {args[0]} in {home} failed: {done.stderr.strip()}")
    return done.stdout.strip().splitlines()[-1]


def children(pid: int) -> list[int]:
    """Direct children of ``pid`` (a node's tor), from /proc."""
    found = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        with contextlib.suppress(OSError):
            found += [int(p) for p in (task / "children").read_text().split()]
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
    except OSError:
        return False
    return state != "Z"


def _kill_and_wait(pid: int, timeout: float = 10.0) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + timeout
    while _alive(pid) and time.monotonic() < deadline:
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)
        time.sleep(0.02)  # waiting for the kernel to tear a killed process down


def _ready(status: StatusView, registered: bool, joined: bool) -> bool:
    if status.phase.value != "running":
        return False
    if joined and status.dht.routing_table < 1:
        return False
    return not registered or status.registration.state == "registered"


class NodeProcess:
    """One node in its own home, run as a real child process."""

    def __init__(
        self,
        name: str,
        home: Path,
        *,
        testnet: Path | None = None,
        output: Path | None = None,
        pow_bits: int | None = None,
        options: Sequence[str] = (),
        env: Mapping[str, str] | None = None,
        nick: str | None = None,
    ) -> None:
        self.name = name
        self.home = home
        self.testnet = testnet
        self.output = output or home / "stdout.log"
        self.pow_bits = pow_bits
        self.options = list(options)
        self.env = dict(env or {})
        self.process: subprocess.Popen[bytes] | None = None
        self._tor_pids: list[int] = []
        self.address = init_home(home, nick or name)

    @property
    def control_path(self) -> Path:
        return self.home / "control.sock"

    @property
    def log_path(self) -> Path:
        return self.home / "node.log"

    @property
    def pid(self) -> int:
        assert self.process is not None, f"{self.name} is not running"
        return self.process.pid

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def failure(self, what: str) -> NodeFailed:
        return NodeFailed(
            f"the {self.name} node {what}. Its last output ({self.output}):\n"
            f"{log_tail(self.output)}\nand its log ({self.log_path}):\n{log_tail(self.log_path)}"
        )

    # -- the process (plain calls) -------------------------------------------------

    def start(self) -> None:
        assert not self.running, f"{self.name} is already running"
        self.reap()
        args = ["run", *(["--testnet", str(self.testnet)] if self.testnet else [])]
        if self.pow_bits is not None:
            args += ["--pow-bits", str(self.pow_bits)]
        self.output.parent.mkdir(parents=True, exist_ok=True)
        with self.output.open("ab") as out:
            self.process = subprocess.Popen(
                anonsip_command(self.home, *args, *self.options),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                env={**os.environ, **self.env},
            )

    def signal(self, signum: int) -> None:
        if self.running:
            assert self.process is not None
            self._tor_pids = children(self.process.pid) or self._tor_pids
            self.process.send_signal(signum)

    def kill(self) -> None:
        """SIGKILL the node and the tor it launched (a power cut), and reap both."""
        if self.process is None:
            return
        tors = children(self.process.pid) + self._tor_pids
        _kill_and_wait(self.process.pid)
        self.process.wait()
        for pid in tors:
            _kill_and_wait(pid)
        self._tor_pids = []

    def wait_exit(self, timeout: float = STOP_TIMEOUT) -> int:
        """Wait for the process to end (SIGKILL at the deadline); its exit code."""
        assert self.process is not None
        try:
            code = self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise self.failure(f"did not stop in {timeout:.0f} s") from None
        # A clean stop takes its tor down; wait for that too, so the data dir is free.
        deadline = time.monotonic() + 10
        while any(_alive(p) for p in self._tor_pids) and time.monotonic() < deadline:
            time.sleep(0.05)  # the tor the node closed is exiting
        for pid in self._tor_pids:
            if _alive(pid):
                _kill_and_wait(pid)
        self._tor_pids = []
        return code

    def terminate(self, timeout: float = STOP_TIMEOUT) -> int:
        self.signal(signal.SIGTERM)
        return self.wait_exit(timeout)

    def reap(self) -> None:
        """Make sure nothing of this node is left running (safe to call any time)."""
        if self.process is None:
            return
        if self.process.poll() is None:
            with contextlib.suppress(NodeFailed):
                self.terminate(timeout=10)
        if self.process.poll() is None:
            self.kill()
        for pid in self._tor_pids:
            if _alive(pid):
                _kill_and_wait(pid)
        self._tor_pids = []

    # -- the control socket (async) -----------------------------------------------------

    def _check_alive(self) -> None:
        if self.process is not None and self.process.poll() is not None:
            raise self.failure(f"exited with status {self.process.returncode}")

    @contextlib.asynccontextmanager
    async def client(self, timeout: float = SOCKET_TIMEOUT) -> AsyncIterator[TrioControlClient]:
        """A control connection, waiting (bounded) until the node's socket answers."""
        with trio.fail_after(timeout):
            while True:
                self._check_alive()
                try:
                    stream = await trio.open_unix_socket(str(self.control_path))
                except (FileNotFoundError, ConnectionRefusedError):
                    # No readiness pipe from the child: its socket appears within a
                    # second of start, so a short bounded retry is the honest wait.
                    await trio.sleep(_CONNECT_RETRY)
                    continue
                await stream.aclose()
                break
        with unwrapped():
            async with TrioControlClient.connect(self.control_path) as client:
                yield client

    async def call(self, op: str, /, **args: Any) -> Any:
        """Run one control operation on the node and return its result."""
        with trio.fail_after(CALL_TIMEOUT):
            async with self.client() as client:
                return await client.call(op, **args)

    async def wait_ready(
        self, timeout: float = READY_TIMEOUT, *, registered: bool = False, joined: bool = False
    ) -> dict[str, Any]:
        """Wait until the node is running (and, if asked, its registration is stored,
        and its DHT node knows another node: a node whose join failed holds its own
        record alone, where the others' lookups do not go until it joins); its status."""
        try:
            with unwrapped(), trio.fail_after(timeout):
                async with self.client(timeout) as client:
                    await client.subscribe()
                    status = await client.call("status")
                    while not _ready(StatusView.decode(status), registered, joined):
                        async for event in client.events():
                            if event.event == "status":
                                status = dict(event.data)
                                break
                        else:
                            self._check_alive()
                            raise self.failure("closed its control socket while starting")
                    if self.process is not None:
                        self._tor_pids = children(self.process.pid)
                    return dict(status)
        except trio.TooSlowError:
            raise self.failure(f"was not ready after {timeout:.0f} s") from None
        except NodeFailed:
            raise
        except AnonsipError as exc:
            raise self.failure(f"went away while starting ({exc})") from None

    async def shutdown(self, timeout: float = STOP_TIMEOUT) -> int:
        """The ``shutdown`` op, then wait for the process to end; its exit code."""
        if self.process is not None:
            self._tor_pids = children(self.process.pid) or self._tor_pids
        with contextlib.suppress(NodeNotRunning):
            await self.call("shutdown")
        return await trio.to_thread.run_sync(self.wait_exit, timeout)

    async def stop(self) -> None:
        """Politely (shutdown op), then SIGTERM, then SIGKILL; returns once it is gone."""
        with trio.CancelScope(shield=True):
            if self.running:
                with trio.move_on_after(TERM_TIMEOUT), contextlib.suppress(AnonsipError, OSError):
                    await self.call("shutdown")
            await trio.to_thread.run_sync(self.reap)


@contextlib.asynccontextmanager
async def run_node(
    name: str,
    home: Path,
    *,
    testnet: Path | None,
    output: Path,
    options: Sequence[str] = (),
    env: Mapping[str, str] | None = None,
    pow_bits: int | None = None,
) -> AsyncIterator[NodeProcess]:
    """``anonsip --home HOME run`` as a child for the duration of the block."""
    node = await trio.to_thread.run_sync(
        lambda: NodeProcess(
            name, home, testnet=testnet, output=output, options=options, env=env, pow_bits=pow_bits
        )
    )
    node.start()
    try:
        yield node
    finally:
        await node.stop()
