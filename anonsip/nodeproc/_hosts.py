"""Several hosts on one machine: network namespaces on a bridge, sharing no files.

Each ``Host`` is a Linux network namespace with one veth on a bridge in
the root namespace (which has no address there, so hosts reach only each
other) and one address of a private range. Every process a host runs is
started as ``ip netns exec NS unshare -m --propagation private sh -c ...``:
in its own mount namespace an empty tmpfs covers the directory that holds
every host's files, and only the host's own directory is put back, so a
host cannot read what another wrote, whenever either was added. The
operator (the integration test or the benchmark that made the hosts) sees
every host's directory.

Clean-up runs on every exit path (``with Hosts(...) as hosts``): every
process in each namespace (``ip netns pids``, which also finds the
daemons a host left running) gets SIGTERM, then SIGKILL; then the
namespaces and the bridge are deleted. Names carry the operator's pid,
so two runs never collide. Making namespaces needs root and iproute2: if
that fails ``HostsError`` says why (a test fails with it, never skips).

``HostNode`` is an anonsip node in a host; ``SocketAudit``,
``tcp_listeners`` and ``unix_connections`` read what a node process's
sockets reach from /proc, inside its own network namespace.

Usage::

    with Hosts(tmp_path / "hosts") as hosts:
        net = hosts.add("net")                     # 10.77.0.1, files in hosts.root/net
        alice = hosts.add("alice")                 # 10.77.0.2
        net.anonsip("testnet", "up", "--dir", str(net.path / "tn"), "--address", net.address)
        node = alice.spawn(python, "-m", "anonsip.cli", ...)   # a Popen, reaped at the end
        alice.ip("route", "show")                  # network configuration inside the host
        text = alice.read_text("home/node.log")    # the operator reads a host's file
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import os
import select
import shutil
import signal
import socket
import struct
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import IO, Any, Self

import trio

from anonsip._errors import LocalError
from anonsip.control import TrioControlClient
from anonsip.nodeproc._process import children, unwrapped

DEFAULT_SUBNET = "10.77.0.0/24"
TERM_GRACE = 5.0
KILL_WAIT = 5.0
COMMAND_TIMEOUT = 120.0

# Runs inside the host's own mount namespace: hide every host's files (ROOT), put back
# its own (the current directory still names the real one), then become the command.
_HIDE_OTHERS = (
    'root=$1; own=$2; shift 2; cd "$own" && '
    'mount -t tmpfs -o mode=0755,size=1m anonsip-hosts "$root" && '
    'mkdir "$own" && mount --no-canonicalize --bind . "$own" && cd "$own" && exec "$@"'
)


class HostsError(LocalError):
    """The hosts could not be made (not root, no iproute2, ...) or a command in one failed."""


def _tool(name: str, package: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise HostsError(f"`{name}` is missing: install {package} (./go installs it)")
    return path


def _run(argv: Sequence[str], what: str) -> None:
    done = subprocess.run(list(argv), capture_output=True, text=True, timeout=30, check=False)
    if done.returncode != 0:
        raise HostsError(f"cannot {what}: `{' '.join(argv)}` said: {done.stderr.strip()}")


@dataclass(eq=False)
class Host:
    """One machine: a network namespace, an address and a directory only it sees."""

    hosts: Hosts
    name: str
    namespace: str
    address: str
    prefixlen: int
    path: Path
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def command(self, *argv: str) -> list[str]:
        """The argv that runs ``argv`` inside this host."""
        tools = self.hosts.tools
        root = str(self.hosts.root)
        return [
            tools["ip"], "netns", "exec", self.namespace,
            tools["unshare"], "-m", "--propagation", "private", "--",
            tools["sh"], "-c", _HIDE_OTHERS, "sh", root, str(self.path), *argv,
        ]  # fmt: skip

    def environment(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        """What a host's process inherits: a search path and a home of its own."""
        env = {
            "PATH": os.environ.get("PATH", os.defpath),
            "HOME": str(self.path),
            "LANG": "C.UTF-8",
            "PYTHONDONTWRITEBYTECODE": "1",
        }
        env.update(extra or {})
        return env

    def run(
        self,
        *argv: str,
        timeout: float = COMMAND_TIMEOUT,
        check: bool = True,
        env: dict[str, str] | None = None,
    ) -> subprocess.CompletedProcess[str]:
        """Run ``argv`` in this host and wait; ``HostsError`` with its output if it fails."""
        try:
            done = subprocess.run(
                self.command(*argv),
                capture_output=True,
                text=True,
                timeout=timeout,
                check=False,
                env=self.environment(env),
                stdin=subprocess.DEVNULL,
            )
        except subprocess.TimeoutExpired as exc:
            raise HostsError(
                f"{self.name}: `{' '.join(argv)}` did not finish in {timeout} s\n"
                f"{_text(exc.stdout)}\n{_text(exc.stderr)}"
            ) from None
        if check and done.returncode != 0:
            raise HostsError(
                f"{self.name}: `{' '.join(argv)}` exited {done.returncode}\n"
                f"{done.stdout}\n{done.stderr}"
            )
        return done

    def anonsip(
        self, *args: str, timeout: float = COMMAND_TIMEOUT
    ) -> subprocess.CompletedProcess[str]:
        """``python -m anonsip.cli ARGS`` in this host."""
        return self.run(sys.executable, "-m", "anonsip.cli", *args, timeout=timeout)

    def spawn(
        self, *argv: str, output: IO[bytes] | int | None = None, env: dict[str, str] | None = None
    ) -> subprocess.Popen[bytes]:
        """Start ``argv`` in this host; it is stopped at clean-up if still running.

        The process is ``argv`` itself (every wrapper execs), so its pid is
        the pid of the program, e.g. of a node whose sockets a test audits.
        ``output=subprocess.PIPE`` lets the operator read what it says.
        """
        process = subprocess.Popen(
            self.command(*argv),
            stdin=subprocess.DEVNULL,
            stdout=output if output is not None else subprocess.DEVNULL,
            stderr=subprocess.STDOUT,
            env=self.environment(env),
        )
        self.processes.append(process)
        return process

    def ip(self, *args: str) -> str:
        """``ip ARGS`` in this host's network namespace (routes, addresses)."""
        done = subprocess.run(
            [self.hosts.tools["ip"], "-n", self.namespace, *args],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        if done.returncode != 0:
            raise HostsError(f"{self.name}: ip {' '.join(args)}: {done.stderr.strip()}")
        return done.stdout

    def read_text(self, relative: str) -> str:
        """A file of this host, read by the operator, not by another host."""
        return (self.path / relative).read_text(errors="replace")

    def pids(self) -> list[int]:
        """Every live process in this host's network namespace."""
        done = subprocess.run(
            [self.hosts.tools["ip"], "netns", "pids", self.namespace],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        return [int(p) for p in done.stdout.split()] if done.returncode == 0 else []


class Hosts:
    """A bridge and the hosts on it; ``with`` makes the bridge and removes everything."""

    def __init__(self, root: Path, *, subnet: str = DEFAULT_SUBNET) -> None:
        self.root = root.resolve()
        self.subnet = ipaddress.IPv4Network(subnet)
        self.tag = str(os.getpid())
        self.bridge = f"asbr{self.tag}"
        self.hosts: list[Host] = []
        self.tools: dict[str, str] = {}
        self._free = iter(self.subnet.hosts())

    def __enter__(self) -> Self:
        self.tools = {
            "ip": _tool("ip", "iproute2"),
            "unshare": _tool("unshare", "util-linux"),
            "sh": _tool("sh", "dash"),
            "mount": _tool("mount", "mount"),
        }
        self.root.mkdir(parents=True, exist_ok=True)
        try:
            _run([self.tools["ip"], "link", "add", self.bridge, "type", "bridge"], "make a bridge")
            _run([self.tools["ip"], "link", "set", self.bridge, "up"], "start the bridge")
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __iter__(self) -> Iterator[Host]:
        return iter(self.hosts)

    def add_censored(self, name: str, *, reaches: Host) -> Host:
        """A host whose network lets it reach ``reaches`` and nothing else: a /32 address and
        one host route (a censor that blocks all but one address, as a routing table)."""
        host = self.add(name, prefixlen=32)
        host.ip("route", "add", f"{reaches.address}/32", "dev", "eth0")
        return host

    def add(self, name: str, *, address: str | None = None, prefixlen: int | None = None) -> Host:
        """A new host on the bridge, with the next free address unless one is given.

        ``prefixlen`` defaults to the subnet's; a /32 with a host route
        (``host.ip("route", "add", ...)``) makes a host that reaches only
        what that route names.
        """
        if not name.isalnum():
            raise HostsError(f"a host name is letters and digits: {name!r}")
        index = len(self.hosts)
        ip = ipaddress.IPv4Address(address) if address else next(self._free)
        if address is None:
            while any(h.address == str(ip) for h in self.hosts):
                ip = next(self._free)
        plen = prefixlen if prefixlen is not None else self.subnet.prefixlen
        host = Host(
            hosts=self,
            name=name,
            namespace=f"anonsip{self.tag}{name}",
            address=str(ip),
            prefixlen=plen,
            path=self.root / name,
        )
        host.path.mkdir(mode=0o755, parents=True, exist_ok=False)
        self.hosts.append(host)
        ip_tool = self.tools["ip"]
        outside, inside = f"asv{self.tag}h{index}", f"asp{self.tag}h{index}"
        _run([ip_tool, "netns", "add", host.namespace], f"make network namespace {host.namespace}")
        _run(
            [ip_tool, "link", "add", outside, "type", "veth", "peer", "name", inside,
             "netns", host.namespace],
            f"make a veth pair for {name}",
        )  # fmt: skip
        _run([ip_tool, "link", "set", outside, "master", self.bridge, "up"], "plug the veth in")
        host.ip("link", "set", inside, "name", "eth0")
        host.ip("address", "add", f"{host.address}/{plen}", "dev", "eth0")
        host.ip("link", "set", "eth0", "up")
        host.ip("link", "set", "lo", "up")
        return host

    def close(self) -> None:
        """Stop everything the hosts run, then delete the namespaces and the bridge."""
        errors: list[str] = []
        for sig in (signal.SIGTERM, signal.SIGKILL):
            pids = [pid for host in self.hosts for pid in host.pids()]
            for pid in pids:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, sig)
            _wait_gone(pids, TERM_GRACE if sig == signal.SIGTERM else KILL_WAIT)
        for host in self.hosts:
            for process in host.processes:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    process.wait(timeout=KILL_WAIT)
            left = host.pids()
            if left:
                errors.append(f"{host.name}: processes {left} survived SIGKILL")
            done = subprocess.run(
                [self.tools.get("ip", "ip"), "netns", "del", host.namespace],
                capture_output=True,
                text=True,
                check=False,
            )
            if done.returncode != 0 and "No such file" not in done.stderr:
                errors.append(f"cannot delete {host.namespace}: {done.stderr.strip()}")
        self.hosts = []
        subprocess.run(
            [self.tools.get("ip", "ip"), "link", "del", self.bridge],
            capture_output=True,
            check=False,
        )
        if errors:
            raise HostsError("clean-up failed: " + "; ".join(errors))


def _wait_gone(pids: list[int], timeout: float) -> None:
    """Wait until every one of ``pids`` has exited (pidfds: woken by the exits, not polled)."""
    fds = []
    for pid in pids:
        with contextlib.suppress(OSError):  # already gone
            fds.append(os.pidfd_open(pid))
    deadline = time.monotonic() + timeout
    try:
        while fds:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return
            ready, _, _ = select.select(fds, [], [], remaining)
            for fd in ready:
                fds.remove(fd)
                os.close(fd)
    finally:
        for fd in fds:
            os.close(fd)


def wait_for_line(process: subprocess.Popen[bytes], text: bytes, timeout: float) -> None:
    """Read ``process``'s piped output until a line holds ``text`` (it said it is ready)."""
    assert process.stdout is not None
    fd = process.stdout.fileno()
    seen = b""
    deadline = time.monotonic() + timeout
    while text not in seen:
        remaining = deadline - time.monotonic()
        ready, _, _ = select.select([fd], [], [], max(0.0, remaining))
        if not ready:
            raise HostsError(f"no {text!r} within {timeout} s; it said: {seen[-500:]!r}")
        chunk = os.read(fd, 4096)
        if not chunk:
            raise HostsError(f"it exited before saying {text!r}; it said: {seen[-500:]!r}")
        seen += chunk


def _text(data: bytes | str | None) -> str:
    if data is None:
        return ""
    return data if isinstance(data, str) else data.decode(errors="replace")


# --- anonsip nodes in hosts ------------------------------------------------------------------


class HostNode:
    """An anonsip node in a host: ``anonsip --home H run --testnet D`` as a host process."""

    def __init__(self, host: Host, nick: str, testnet: Path, *, home: str = "home") -> None:
        self.host = host
        self.nick = nick
        self.home = host.path / home
        self.testnet = testnet
        self.process: subprocess.Popen[bytes] | None = None
        if not (self.home / "keystore").exists():
            out = host.anonsip(
                "--home", str(self.home), "init", "--nick", nick, "--no-passphrase", "--fast-kdf"
            ).stdout
            self.address = out.strip().splitlines()[-1]
        else:
            self.address = host.anonsip("--home", str(self.home), "address").stdout.strip()

    @property
    def pid(self) -> int:
        assert self.process is not None, f"{self.nick} was not started"
        return self.process.pid

    def start(self, *options: str) -> None:
        """Start the node (``options`` go after ``run --testnet D``), output in ``node.out``."""
        with (self.home / "node.out").open("ab") as out:
            self.process = self.host.spawn(
                sys.executable, "-m", "anonsip.cli", "--home", str(self.home),
                "run", "--testnet", str(self.testnet), "--pow-bits", "8", *options,
                output=out,
            )  # fmt: skip

    def status(self) -> dict[str, Any]:
        """``anonsip --home H status --json``, run in the host (the control API)."""
        done = self.host.anonsip("--home", str(self.home), "status", "--json", timeout=30)
        result: dict[str, Any] = json.loads(done.stdout)
        return result

    def log_tail(self, lines: int = 30) -> str:
        text = ""
        for name in ("node.out", "node.log"):
            with contextlib.suppress(OSError):
                tail = (self.home / name).read_text(errors="replace").splitlines()[-lines:]
                text += f"--- {self.nick} {name}\n" + "\n".join(tail) + "\n"
        return text

    async def wait_status(
        self, ready: Callable[[dict[str, Any]], bool], timeout: float
    ) -> dict[str, Any]:
        """Wait for a status event that satisfies ``ready`` (through the control socket)."""
        path = self.home / "control.sock"
        try:
            # The control client's reader runs in a nursery: unwrapped, a HostsError
            # raised inside it reaches the caller as itself, not as a group.
            with unwrapped(), trio.fail_after(timeout):
                while True:
                    self._check_running()
                    try:
                        stream = await trio.open_unix_socket(str(path))
                    except (FileNotFoundError, ConnectionRefusedError):
                        await trio.sleep(0.05)  # the node has not bound its socket yet
                        continue
                    await stream.aclose()
                    break
                async with TrioControlClient.connect(path) as client:
                    await client.subscribe()
                    status: dict[str, Any] = await client.call("status")
                    while not ready(status):
                        async for event in client.events():
                            if event.event == "status":
                                status = dict(event.data)
                                break
                        else:
                            self._check_running()
                            raise HostsError(f"{self.nick} closed its control socket")
                    return status
        except trio.TooSlowError:
            raise HostsError(
                f"{self.nick} on {self.host.name} was not ready in {timeout} s\n{self.log_tail()}"
            ) from None

    async def wait_registered(self, timeout: float = 120.0) -> dict[str, Any]:
        """Wait until the node runs and its registration is stored in the DHT."""
        return await self.wait_status(registered, timeout)

    def _check_running(self) -> None:
        if self.process is not None and self.process.poll() is not None:
            raise HostsError(
                f"{self.nick} exited with {self.process.returncode}\n{self.log_tail()}"
            )


def registered(status: dict[str, Any]) -> bool:
    return (
        status.get("phase") == "running"
        and status.get("registration", {}).get("state") == "registered"
    )


# --- what a process's sockets reach, read from /proc (its own network namespace) ------------

_LISTEN = 0x0A


def _proc_address(text: str) -> tuple[str, int]:
    host, port = text.split(":")
    raw = bytes.fromhex(host)
    # The kernel prints each 32-bit word in host order.
    words = b"".join(struct.pack("<I", w) for w in struct.unpack(f">{len(raw) // 4}I", raw))
    family = socket.AF_INET if len(raw) == 4 else socket.AF_INET6
    return socket.inet_ntop(family, words), int(port, 16)


@dataclass(frozen=True)
class _Tcp:
    local: tuple[str, int]
    remote: tuple[str, int]
    state: int
    inode: int


def _tcp_table(pid: int) -> list[_Tcp]:
    """The TCP sockets of ``pid``'s network namespace (/proc/PID/net is per namespace)."""
    found = []
    for name in ("tcp", "tcp6"):
        for line in Path(f"/proc/{pid}/net/{name}").read_text().splitlines()[1:]:
            f = line.split()
            found.append(_Tcp(_proc_address(f[1]), _proc_address(f[2]), int(f[3], 16), int(f[9])))
    return found


def _socket_inodes(pid: int) -> set[int]:
    inodes = set()
    with contextlib.suppress(FileNotFoundError):  # the process ended while we looked
        for fd in Path(f"/proc/{pid}/fd").iterdir():
            with contextlib.suppress(OSError):
                target = os.readlink(fd)
                if target.startswith("socket:["):
                    inodes.add(int(target[8:-1]))
    return inodes


def tcp_listeners(pid: int) -> list[tuple[str, int]]:
    """The TCP addresses ``pid`` itself listens on (its own sockets, not its children's)."""
    mine = _socket_inodes(pid)
    return [s.local for s in _tcp_table(pid) if s.state == _LISTEN and s.inode in mine]


def unix_connections(pid: int, prefix: str) -> int:
    """How many connected Unix sockets of ``pid`` are bound under ``prefix`` (accepted ones)."""
    mine = _socket_inodes(pid)
    count = 0
    for line in Path(f"/proc/{pid}/net/unix").read_text().splitlines()[1:]:
        f = line.split()
        # Num RefCount Protocol Flags Type St Inode [Path]; St 03 is "connected".
        if len(f) >= 8 and int(f[6]) in mine and f[5] == "03" and f[7].startswith(prefix):
            count += 1
    return count


@dataclass
class SocketAudit:
    """Samples a node process's sockets: it may talk to its own tor only.

    Allowed: connections to a port its own tor (a child process) listens
    on. A TCP listener of its own, even on loopback, is a problem (its
    onion services' local ends are private Unix sockets), as is anything
    else and any UDP or raw socket.
    """

    name: str
    pid: int
    samples: int = 0
    to_tor: int = 0
    problems: list[str] = field(default_factory=list)

    def sample(self) -> None:
        try:
            tors = children(self.pid)
            table = _tcp_table(self.pid)
            mine = _socket_inodes(self.pid)
            theirs = set().union(*(_socket_inodes(p) for p in tors))
            udp_raw = set()
            for kind in ("udp", "udp6", "raw", "raw6"):
                for line in Path(f"/proc/{self.pid}/net/{kind}").read_text().splitlines()[1:]:
                    udp_raw.add(int(line.split()[9]))
        except FileNotFoundError:
            return  # the process ended; what it did before was sampled
        tor_ports = {s.local for s in table if s.inode in theirs and s.state == _LISTEN}
        for s in table:
            if s.inode == 0 or s.inode not in mine:
                continue
            if s.state == _LISTEN:
                self.problems.append(f"listens on TCP {s.local}")
            elif s.remote in tor_ports:
                self.to_tor += 1
            else:
                self.problems.append(f"connection {s.local} -> {s.remote} (state {s.state:#x})")
        if udp_raw & mine:
            self.problems.append("a UDP or raw socket")
        self.samples += 1
