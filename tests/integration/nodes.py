"""Real anonsip node processes for the integration tests and benches.

``NodeProcess`` inits a home (``anonsip init``), starts
``python -m anonsip.cli --home H run --testnet T`` as a subprocess, waits for
its control socket to report ``phase == "running"`` (bounded by a deadline,
failing early with the node's log if the process dies), stops it (the
``shutdown`` op, SIGTERM or SIGKILL) and reaps it. ``NodeFleet`` owns several
and reaps every one on exit, whatever happened, including the tor a killed
node leaves behind.

Sync methods start and stop processes (usable from module-scoped sync
fixtures); the async ones talk to the control socket under trio.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import trio

from anonsip.control import NodeNotRunning, TrioControlClient

READY_TIMEOUT = 120.0
STOP_TIMEOUT = 30.0
_CONNECT_RETRY = 0.05  # between attempts to reach a socket that does not exist yet


def _cli(home: Path, *args: str, timeout: float = 60.0) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "anonsip.cli", "--home", str(home), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"anonsip {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}")
    return done.stdout


def children(pid: int) -> list[int]:
    """Direct children of ``pid`` (the node's tor), from /proc."""
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


class NodeExited(RuntimeError):
    """The node process ended while we waited for it."""


class NodeProcess:
    """One node in its own home, run as a real subprocess."""

    def __init__(self, name: str, home: Path, testnet: Path, *, pow_bits: int = 8) -> None:
        self.name = name
        self.home = home
        self.testnet = testnet
        self.pow_bits = pow_bits
        self.process: subprocess.Popen[bytes] | None = None
        self._tor_pids: list[int] = []
        if not (home / "keystore").exists():
            out = _cli(home, "init", "--nick", name, "--no-passphrase", "--fast-kdf")
            self.address = out.strip().splitlines()[-1]
        else:
            self.address = _cli(home, "address").strip()

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

    def log_tail(self, lines: int = 40) -> str:
        out = self.home / "stdout.log"
        text = ""
        for path in (out, self.log_path):
            with contextlib.suppress(OSError):
                text += f"--- {path.name}\n" + "\n".join(
                    path.read_text(errors="replace").splitlines()[-lines:]
                )
        return text

    # -- processes (sync) ----------------------------------------------------

    def start(self) -> None:
        assert not self.running, f"{self.name} is already running"
        self.reap()
        with open(self.home / "stdout.log", "ab") as out:
            self.process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "anonsip.cli",
                    "--home",
                    str(self.home),
                    "run",
                    "--testnet",
                    str(self.testnet),
                    "--pow-bits",
                    str(self.pow_bits),
                ],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
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
        """Wait for the process to end; SIGKILL it at the deadline. Returns its exit code."""
        assert self.process is not None
        try:
            code = self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise NodeExited(
                f"{self.name} did not stop in {timeout} s\n{self.log_tail()}"
            ) from None
        # A clean stop takes its tor down; wait for that too so the data dir is free.
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
            with contextlib.suppress(NodeExited):
                self.terminate(timeout=10)
        if self.process.poll() is None:
            self.kill()
        for pid in self._tor_pids:
            if _alive(pid):
                _kill_and_wait(pid)
        self._tor_pids = []

    # -- control socket (async) ----------------------------------------------

    @contextlib.asynccontextmanager
    async def client(self, timeout: float = 10.0) -> AsyncIterator[TrioControlClient]:
        """A control connection, retrying until the socket answers or ``timeout``."""
        with trio.fail_after(timeout):
            while True:
                self._check_alive()
                try:
                    stream = await trio.open_unix_socket(str(self.control_path))
                except (FileNotFoundError, ConnectionRefusedError):
                    await trio.sleep(_CONNECT_RETRY)  # the node has not bound its socket yet
                    continue
                await stream.aclose()
                break
        try:
            async with TrioControlClient.connect(self.control_path) as client:
                yield client
        except BaseExceptionGroup as group:
            raise _sole(group) from None

    async def call(self, op: str, /, **args: Any) -> Any:
        async with self.client() as client:
            return await client.call(op, **args)

    def _check_alive(self) -> None:
        if self.process is not None and self.process.poll() is not None:
            raise NodeExited(
                f"{self.name} exited with {self.process.returncode}\n{self.log_tail()}"
            )

    async def wait_ready(
        self, timeout: float = READY_TIMEOUT, *, registered: bool = False
    ) -> dict[str, Any]:
        """Wait until the node reports ``running`` (and, if asked, its registration
        stored in the DHT); returns its status."""
        try:
            with trio.fail_after(timeout):
                async with self.client(timeout) as client:
                    await client.subscribe()
                    status = await client.call("status")
                    while not _ready(status, registered):
                        async for event in client.events():
                            if event.event == "status":
                                status = dict(event.data)
                                break
                        else:
                            self._check_alive()
                            raise NodeExited(f"{self.name} closed its control socket")
                    if self.process is not None:
                        self._tor_pids = children(self.process.pid)
                    return status
        except trio.TooSlowError:
            raise TimeoutError(
                f"{self.name} was not ready after {timeout} s\n{self.log_tail()}"
            ) from None

    async def shutdown(self, timeout: float = STOP_TIMEOUT) -> int:
        """The ``shutdown`` op, then wait for the process to end."""
        if self.process is not None:
            self._tor_pids = children(self.process.pid) or self._tor_pids
        with contextlib.suppress(NodeNotRunning):
            await self.call("shutdown")
        return await trio.to_thread.run_sync(self.wait_exit, timeout)


def _ready(status: dict[str, Any], registered: bool) -> bool:
    if status.get("phase") != "running":
        return False
    return not registered or status.get("registration", {}).get("state") == "registered"


def _sole(group: BaseExceptionGroup[BaseException]) -> BaseException:
    """The one error a nursery wrapped (the client's reader task), else the group."""
    leaves = list(_leaves(group))
    return leaves[0] if len(leaves) == 1 else group


def _leaves(group: BaseExceptionGroup[BaseException]) -> Iterator[BaseException]:
    for exc in group.exceptions:
        if isinstance(exc, BaseExceptionGroup):
            yield from _leaves(exc)
        else:
            yield exc


class NodeFleet:
    """Several nodes on one testnet; every one is reaped when the fleet closes."""

    def __init__(self, root: Path, testnet: Path, *, pow_bits: int = 8) -> None:
        self.root = root
        self.testnet = testnet
        self.pow_bits = pow_bits
        self.nodes: dict[str, NodeProcess] = {}

    def add(self, name: str) -> NodeProcess:
        home = self.root / name
        home.mkdir(mode=0o700, parents=True, exist_ok=True)
        node = NodeProcess(name, home, self.testnet, pow_bits=self.pow_bits)
        self.nodes[name] = node
        return node

    def __getitem__(self, name: str) -> NodeProcess:
        return self.nodes[name]

    def __iter__(self) -> Iterator[NodeProcess]:
        return iter(self.nodes.values())

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.reap()

    def reap(self) -> None:
        # SIGTERM all first so they unregister and stop side by side.
        for node in self.nodes.values():
            node.signal(signal.SIGTERM)
        for node in self.nodes.values():
            node.reap()

    async def start_all(
        self, *names: str, timeout: float = READY_TIMEOUT, registered: bool = False
    ) -> None:
        """Start the named nodes side by side and wait until all are running."""
        for name in names:
            self.nodes[name].start()
        try:
            async with trio.open_nursery() as nursery:
                for name in names:
                    nursery.start_soon(self._wait, name, timeout, registered)
        except BaseExceptionGroup as group:
            raise _sole(group) from None

    async def _wait(self, name: str, timeout: float, registered: bool) -> None:
        await self.nodes[name].wait_ready(timeout, registered=registered)
