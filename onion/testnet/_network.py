"""Start, inspect and stop a private Tor network (tor(1) "TESTING NETWORK OPTIONS").

``up`` keys the directory authorities with tor-gencert, writes one torrc per
node (ports picked by the OS just before), starts every tor in its own
session so it outlives the command, and returns only once a probe client
bootstrapped on the network, published an onion service, reached it and got
its bytes echoed. ``down`` stops exactly the processes this machine
recorded (``up``'s, or the relay ``join --relay`` started). ``status`` reads
the consensus from an authority's DirPort. Readiness comes from tor itself
(bootstrap events, HS_DESC, a real stream); nothing sleeps to wait.

The authorities force the Guard and HSDir flags (tor(1)
``TestingDirAuthVoteGuard``/``HSDir``) on every relay in one address range:
the private block (RFC 1918, RFC 6598, link-local) that holds the network's
address, so relays that join from other machines of the LAN get them too.
Without them a small network's clients stall (see the private-network notes).
"""

from __future__ import annotations

import contextlib
import errno
import ipaddress
import logging
import os
import shutil
import signal
import socket
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import trio

from onion._errors import DirectoryError, OnionError, PortInUse, TestnetError, unwrapped_errors
from onion._process import (
    check_tor_version,
    find_tor,
    launch_tor,
    prepare_data_dir,
    tor_environment,
)
from onion._torrc import (
    CONTROL_PORT_FILE,
    authority_config,
    private_network_config,
    relay_config,
    render_torrc,
)
from onion.testnet._consensus import Consensus, fetch_first_consensus
from onion.testnet._daemon import Daemon
from onion.testnet._linkshape import LinkProfile, parse_profile
from onion.testnet._shaper import CONFIG_FILE, READY, Route, ShaperConfig
from onion.testnet._state import EMPTY_FILE, STATE_FILE, NodeInfo, TestnetInfo

__all__ = [
    "DEFAULT_AUTHORITIES",
    "DEFAULT_RELAYS",
    "network_status",
    "start_network",
    "stop_network",
    "vote_range",
]

log = logging.getLogger(__name__)

DEFAULT_AUTHORITIES = 3
DEFAULT_RELAYS = 5
MIN_NODES = 4  # 3 never built 3-hop circuits ("Failed to find node for hop #3")
DEFAULT_VOTING_INTERVAL = 10
DEFAULT_UP_TIMEOUT = 180.0
PORT_ATTEMPTS = 3
STARTUP_LOG = "startup.log"
STOP_TIMEOUT = 5.0
STATUS_FETCH_TIMEOUT = 5.0
PROBE_PAYLOAD = b"anonsip testnet probe\n"


@dataclass(frozen=True, kw_only=True)
class PlannedNode:
    nickname: str
    role: str
    data_dir: Path
    fingerprint: str = ""
    v3ident: str = ""


_LAN_BLOCKS = tuple(
    ipaddress.IPv4Network(block)
    for block in (
        "10.0.0.0/8",
        "172.16.0.0/12",
        "192.168.0.0/16",
        "100.64.0.0/10",
        "169.254.0.0/16",
    )
)


def check_ipv4(address: str, what: str = "--address") -> ipaddress.IPv4Address:
    try:
        return ipaddress.IPv4Address(address)
    except ValueError:
        raise TestnetError(
            f"{what} must be an IPv4 address (tor's DirAuthority lines take IPv4), not {address!r}"
        ) from None


def vote_range(address: str) -> str:
    """The addresses whose relays get Guard and HSDir: the LAN block that holds ``address``.

    Loopback gives 127.0.0.0/8; an address of a private block gives the
    whole block (a relay joining from 192.168.1.7 of a network on
    192.168.1.5); any other address gives its /24.
    """
    ip = check_ipv4(address)
    if ip.is_loopback:
        return "127.0.0.0/8"
    for block in _LAN_BLOCKS:
        if ip in block:
            return str(block)
    return str(ipaddress.IPv4Network(f"{address}/24", strict=False))


def check_vote_range(text: str) -> str:
    """A comma-separated list of IPv4 networks, as tor(1) routersets take them."""
    try:
        networks = [ipaddress.IPv4Network(part.strip()) for part in text.split(",")]
    except ValueError as exc:
        raise TestnetError(f"--relay-range must be IPv4 networks like 10.0.0.0/8: {exc}") from None
    return ",".join(str(n) for n in networks)


@contextlib.contextmanager
def free_ports(address: str, count: int) -> Iterator[list[int]]:
    """``count`` distinct ports the OS says are free on ``address``.

    The sockets stay bound while the torrcs are written, so two nodes never
    get the same port; tor may still lose a race with another program, which
    ``start_network`` handles by retrying with new ports.
    """
    socks: list[socket.socket] = []
    try:
        for _ in range(count):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            socks.append(s)
            try:
                s.bind((address, 0))
            except OSError as exc:
                raise TestnetError(
                    f"cannot listen on {address} ({exc.strerror}): give --address one of this"
                    " machine's own addresses (see `ip address`)"
                ) from None
        yield [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


async def _authority_keys(node: PlannedNode, gencert: str) -> PlannedNode:
    keys = node.data_dir / "keys"
    keys.mkdir(mode=0o700, parents=True, exist_ok=True)
    cert = keys / "authority_certificate"
    if not cert.exists():
        await trio.run_process(
            [
                gencert,
                "--create-identity-key",
                "-m",
                "12",
                "-i",
                str(keys / "authority_identity_key"),
                "-s",
                str(keys / "authority_signing_key"),
                "-c",
                str(cert),
                "--passphrase-fd",
                "0",
            ],
            stdin=b"\n",
            capture_stdout=True,
            capture_stderr=True,
            env=tor_environment(),
        )
    for line in cert.read_text().splitlines():
        if line.startswith("fingerprint "):
            return replace(node, v3ident=line.split()[1])
    raise TestnetError(f"tor-gencert wrote no fingerprint into {cert}")


async def relay_fingerprint(node: PlannedNode, tor: str) -> PlannedNode:
    empty = node.data_dir / "torrc-defaults"
    empty.write_text("")
    await trio.run_process(
        [
            tor,
            "--defaults-torrc",
            str(empty),
            "-f",
            str(empty),
            "--list-fingerprint",
            "--DataDirectory",
            str(node.data_dir),
            "--ORPort",
            "1",
            "--Nickname",
            node.nickname,
            "--Log",
            "err stderr",
        ],
        capture_stdout=True,
        capture_stderr=True,
        env=tor_environment(),
    )
    fingerprint = (node.data_dir / "fingerprint").read_text().split()[1]
    return replace(node, fingerprint=fingerprint)


def _plan(directory: Path, authorities: int, relays: int) -> list[PlannedNode]:
    nodes = [
        PlannedNode(nickname=f"auth{i}", role="authority", data_dir=directory / f"auth{i}")
        for i in range(authorities)
    ]
    nodes += [
        PlannedNode(nickname=f"relay{i}", role="relay", data_dir=directory / f"relay{i}")
        for i in range(relays)
    ]
    for node in nodes:
        prepare_data_dir(node.data_dir)
    return nodes


async def _keyed(nodes: list[PlannedNode], tor: str) -> list[PlannedNode]:
    gencert = find_tor("tor-gencert")
    done: dict[int, PlannedNode] = {}

    async def key(i: int, node: PlannedNode) -> None:
        if node.role == "authority":
            node = await _authority_keys(node, gencert)
        done[i] = await relay_fingerprint(node, tor)

    with unwrapped_errors():
        async with trio.open_nursery() as nursery:
            for i, node in enumerate(nodes):
                nursery.start_soon(key, i, node)
    return [done[i] for i in range(len(nodes))]


@dataclass(frozen=True)
class _Ports:
    """One node's ports: the ORPort it advertises, the one it listens on, its DirPort."""

    advertised: int
    listened: int | None  # None: the advertised one (no shaper in front)
    directory: int


def _node_ports(ports: list[int], count: int, shaped: bool) -> list[_Ports]:
    per = 3 if shaped else 2
    return [
        _Ports(
            advertised=ports[per * i],
            listened=ports[per * i + 2] if shaped else None,
            directory=ports[per * i + 1],
        )
        for i in range(count)
    ]


def _write_configs(
    nodes: list[PlannedNode],
    address: str,
    plan: list[_Ports],
    voting_interval: int,
    relay_range: str,
) -> list[str]:
    """Write every node's torrc; return the DirAuthority lines."""
    dir_authorities = [
        f"{n.nickname} orport={p.advertised} no-v2 v3ident={n.v3ident} {address}:{p.directory}"
        f" {n.fingerprint}"
        for n, p in zip(nodes, plan, strict=True)
        if n.role == "authority"
    ]
    for node, ports in zip(nodes, plan, strict=True):
        common = private_network_config(
            node.data_dir,
            nickname=node.nickname,
            address=address,
            authorities=dir_authorities,
            vote_range=relay_range,
            voting_interval=voting_interval,
            empty_file=node.data_dir / "torrc-defaults",
        )
        make = authority_config if node.role == "authority" else relay_config
        config = make(
            common,
            or_port=ports.advertised,
            dir_port=ports.directory,
            address=address,
            listen_or_port=ports.listened,
        )
        (node.data_dir / "torrc").write_text(render_torrc(config))
        (node.data_dir / "notice.log").unlink(missing_ok=True)
    return dir_authorities


def _start(node: PlannedNode, tor: str) -> Daemon:
    # Own session: the network outlives `anonsip testnet up` and its Ctrl-C.
    return Daemon.spawn(
        [
            tor,
            "--defaults-torrc",
            str(node.data_dir / "torrc-defaults"),
            "-f",
            str(node.data_dir / "torrc"),
        ],
        env=tor_environment(),
        # What tor says before it opens its log file (a port it cannot bind among it).
        output_file=str(node.data_dir / STARTUP_LOG),
    )


def _log_tail(data_dir: Path, n: int = 12) -> list[str]:
    """The last ``n`` lines tor wrote: its notice log, or, when it exited before
    opening that, what it printed on its standard output."""
    for name in ("notice.log", STARTUP_LOG):
        try:
            with (data_dir / name).open("rb") as f:
                f.seek(0, os.SEEK_END)
                f.seek(max(0, f.tell() - 8192))
                lines = f.read().decode("utf-8", "replace").splitlines()[-n:]
        except OSError:
            continue
        if lines:
            return lines
    return []


def exit_error(
    node: PlannedNode, returncode: int | None, printed: Sequence[str] = ()
) -> OnionError:
    """Why ``node``'s tor exited: ``PortInUse`` (retried with other ports) or the rest.

    ``printed``: what it wrote on a standard output we read ourselves; tor
    binds its ports before it opens its log file, so that failure is only there.
    """
    tail = _log_tail(node.data_dir) or list(printed)[-12:]
    text = "\n  ".join(tail)
    if any("Address already in use" in line for line in tail):
        return PortInUse(f"{node.nickname} could not bind its port:\n  {text}")
    return TestnetError(f"{node.nickname} exited (status {returncode}):\n  {text}")


async def _watch(node: PlannedNode, process: Daemon) -> None:
    raise exit_error(node, await process.wait())


async def _probe(info: TestnetInfo, timeout: float) -> None:
    """Bootstrap a client on the network, publish an onion, reach it and echo."""
    probe_dir = Path(info.directory) / "probe"
    # A probe cached from an earlier network in this directory would try its dead ports.
    shutil.rmtree(probe_dir, ignore_errors=True)

    async def echo(stream: trio.SocketStream) -> None:
        async for chunk in stream:
            await stream.send_all(chunk)

    with trio.fail_after(timeout):
        async with launch_tor(probe_dir, testnet=info) as tor:
            await tor.wait_bootstrapped(timeout, on_progress=lambda s: log.info("probe: %s", s))
            async with tor.publish_service(echo) as service:
                await service.wait_published(timeout)
                log.info("probe: onion service published")
                # A network this young may time its first circuits out: try again.
                stream = await tor.open_stream(
                    service.address,
                    service.virtual_port,
                    timeout=timeout,
                    not_found_retry=timeout,
                    timeout_retry=timeout,
                )
                async with stream:
                    await stream.send_all(PROBE_PAYLOAD)
                    got = b""
                    while len(got) < len(PROBE_PAYLOAD):
                        chunk = await stream.receive_some(len(PROBE_PAYLOAD) - len(got))
                        if not chunk:
                            break
                        got += chunk
                if got != PROBE_PAYLOAD:
                    raise TestnetError("the probe onion service echoed the wrong bytes")


async def _wait_listed(info: TestnetInfo, timeout: float) -> None:
    """Until the consensus lists every authority and relay: an onion echo works with
    fewer, but ``status`` calls the network usable only then, and so does ``up``."""
    wanted = {n.fingerprint for n in info.nodes if n.role in ("authority", "relay")}
    missing = wanted
    with trio.move_on_after(timeout):
        while True:
            with contextlib.suppress(DirectoryError):
                consensus = await read_consensus(info)
                missing = wanted - {r.fingerprint for r in consensus.relays}
                if not missing:
                    return
            await trio.sleep(1.0)
    raise TestnetError(
        f"{len(missing)} of {len(wanted)} relays were not in the consensus after {timeout:.0f} s"
    )


async def start_network(
    directory: Path | str,
    *,
    relays: int = DEFAULT_RELAYS,
    authorities: int = DEFAULT_AUTHORITIES,
    address: str = "127.0.0.1",
    voting_interval: int = DEFAULT_VOTING_INTERVAL,
    timeout: float = DEFAULT_UP_TIMEOUT,
    relay_range: str | None = None,
    wan: str | None = None,
) -> TestnetInfo:
    """Start the network in ``directory`` and return once an onion echo works.

    ``relay_range`` (IPv4 networks, comma-separated) overrides which relays
    the authorities give Guard and HSDir; the default is ``vote_range(address)``.
    ``wan`` (a profile of ``_linkshape``, e.g. ``tor``) puts a delaying link
    in front of every relay's ORPort (``_shaper``), so each hop of a circuit
    costs what it would on the Internet.
    """
    profile = parse_profile(wan) if wan else None
    if authorities < 1 or authorities + relays < MIN_NODES:
        raise TestnetError(
            f"a private Tor network needs >= 1 authority and >= {MIN_NODES} nodes in total"
        )
    relay_range = check_vote_range(relay_range) if relay_range else vote_range(address)
    root = prepare_data_dir(Path(directory))
    (root / EMPTY_FILE).write_text("")
    if (root / STATE_FILE).exists() and alive_nodes(TestnetInfo.load(root)):
        raise TestnetError(f"a private Tor network is already running in {root}; run down first")
    started = time.monotonic()
    tor = find_tor()
    await check_tor_version(tor)
    nodes = await _keyed(_plan(root, authorities, relays), tor)
    log.info("keys ready after %.1f s", time.monotonic() - started)
    for attempt in range(1, PORT_ATTEMPTS + 1):
        per_node = 3 if profile else 2
        with free_ports(address, per_node * len(nodes)) as ports:
            plan = _node_ports(ports, len(nodes), shaped=profile is not None)
            dir_authorities = _write_configs(nodes, address, plan, voting_interval, relay_range)
        processes: list[Daemon] = []
        shaper: list[NodeInfo] = []
        try:
            if profile is not None:
                # First, so the tors find their links in place.
                daemon, node_info = await _start_shaper(root, address, nodes, plan, profile)
                processes.append(daemon)
                shaper.append(node_info)
            tors = [_start(node, tor) for node in nodes]
            processes += tors
            info = TestnetInfo(
                directory=str(root),
                address=address,
                authorities=tuple(dir_authorities),
                nodes=tuple(
                    NodeInfo(
                        nickname=n.nickname,
                        role=n.role,
                        data_dir=str(n.data_dir),
                        pid=process.pid,
                        or_port=ports_.advertised,
                        dir_port=ports_.directory,
                        fingerprint=n.fingerprint,
                    )
                    for n, process, ports_ in zip(nodes, tors, plan, strict=True)
                )
                + tuple(shaper),
                wan=profile.spec() if profile else None,
            )
            info.save()  # pids on disk first, so `down` can clean up a failed `up`
            log.info(
                "%d tor processes started after %.1f s", len(nodes), time.monotonic() - started
            )
            with unwrapped_errors():
                async with trio.open_nursery() as nursery:
                    for node, process in zip(nodes, tors, strict=True):
                        nursery.start_soon(_watch, node, process)
                    await _probe(info, timeout)
                    await _wait_listed(info, timeout)
                    nursery.cancel_scope.cancel()
        except PortInUse:
            await _stop_processes(processes)
            if attempt == PORT_ATTEMPTS:
                raise
            log.warning("port collision starting the testnet; retrying with new ports")
            continue
        except BaseException:
            await _stop_processes(processes)
            (root / STATE_FILE).unlink(missing_ok=True)
            raise
        info = replace(
            info,
            nodes=tuple(
                replace(n, control_port=_control_port(Path(n.data_dir)))
                if n.role != "shaper"
                else n
                for n in info.nodes
            ),
            ready=True,
            up_seconds=round(time.monotonic() - started, 1),
        )
        info.save()
        return info
    raise AssertionError("unreachable")


SHAPER_DIR = "wan"
SHAPER_START_TIMEOUT = 30.0


async def start_shaper(
    data_dir: Path, nickname: str, routes: Sequence[Route], profile: LinkProfile
) -> tuple[Daemon, NodeInfo]:
    """A link shaper (``_shaper``) for ``routes`` in ``data_dir``, returned once it listens."""
    data_dir = prepare_data_dir(data_dir)
    config_path = data_dir / CONFIG_FILE
    ShaperConfig(
        profile=profile.spec(),
        seed=int.from_bytes(os.urandom(4), "big"),
        routes=tuple(routes),
        log_file=str(data_dir / "shaper.log"),
    ).save(config_path)
    env = tor_environment()
    if "PYTHONPATH" in os.environ:
        env["PYTHONPATH"] = os.environ["PYTHONPATH"]
    daemon = Daemon.spawn(
        [sys.executable, "-m", "onion.testnet._shaper", str(config_path)],
        env=env,
        capture_output=True,
    )
    assert daemon.output is not None
    said = b""
    try:
        with trio.move_on_after(SHAPER_START_TIMEOUT):
            async for chunk in daemon.output:
                said += chunk
                if READY.encode() in said:
                    break
    finally:
        await daemon.close_output()
    if READY.encode() not in said:
        daemon.kill()
        await daemon.wait()
        text = said.decode(errors="replace").strip()
        if "Address already in use" in text:
            raise PortInUse(f"the link shaper could not bind its port: {text[-300:]}")
        raise TestnetError(f"the link shaper did not start: {text[-500:] or 'no output'}")
    log.info("link shaper up: %s", profile.spec())
    return daemon, NodeInfo(
        nickname=nickname,
        role="shaper",
        data_dir=str(data_dir),
        pid=daemon.pid,
        or_port=0,
        dir_port=0,
        fingerprint="",
    )


async def _start_shaper(
    root: Path, address: str, nodes: list[PlannedNode], plan: list[_Ports], profile: LinkProfile
) -> tuple[Daemon, NodeInfo]:
    """The delaying links in front of every ORPort of the network."""
    routes = [
        Route(
            name=node.nickname,
            listen_host=address,
            listen_port=ports.advertised,
            target_host=address,
            target_port=ports.listened or ports.advertised,
        )
        for node, ports in zip(nodes, plan, strict=True)
    ]
    return await start_shaper(root / SHAPER_DIR, "shaper", routes, profile)


async def _stop_processes(processes: list[Daemon]) -> None:
    with trio.CancelScope(shield=True):
        for process in processes:
            process.send_signal(signal.SIGTERM)
        with trio.move_on_after(STOP_TIMEOUT):
            for process in processes:
                await process.wait()
        for process in processes:
            if process.returncode is None:
                process.kill()
                await process.wait()


def _control_port(data_dir: Path) -> int | None:
    try:
        text = (data_dir / CONTROL_PORT_FILE).read_text()
    except OSError:
        return None
    return int(text.strip().rpartition(":")[2]) if "PORT=" in text else None


# --- status and down ----------------------------------------------------------------


def _is_our_tor(pid: int, data_dir: str, marker: str = "torrc") -> bool:
    """True if ``pid`` is a live (not zombie) process started with ``data_dir``'s
    ``marker`` file (a tor's torrc, the link shaper's configuration)."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        state = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
    except OSError:
        return False
    return state != "Z" and str(Path(data_dir) / marker).encode() in cmdline


def _is_ours(node: NodeInfo) -> bool:
    marker = CONFIG_FILE if node.role == "shaper" else "torrc"
    return _is_our_tor(node.pid, node.data_dir, marker)


def alive_nodes(info: TestnetInfo) -> list[NodeInfo]:
    return [n for n in info.nodes if _is_ours(n)]


async def read_consensus(info: TestnetInfo) -> Consensus:
    """The network's current consensus, from the first authority that serves one."""
    directories = [(a.address, a.dir_port) for a in info.dir_authorities()]
    return await fetch_first_consensus(directories, timeout=STATUS_FETCH_TIMEOUT)


async def network_status(directory: Path | str) -> dict[str, Any]:
    """Processes, ports and the consensus; ``usable`` is true only if all of it holds.

    On a joined directory ``nodes`` are the relays this machine started;
    the network itself is judged by its consensus.
    """
    info = TestnetInfo.load(directory)
    alive = {n.pid for n in alive_nodes(info)}
    consensus: Consensus | None = None
    problem = None
    try:
        consensus = await read_consensus(info)
    except DirectoryError as exc:
        problem = str(exc)
    listed = {r.fingerprint: r for r in consensus.relays} if consensus else {}
    # A bridge is never in the consensus (that is what makes it a bridge); the link
    # shaper is no relay.
    usable = (
        info.ready
        and len(alive) == len(info.nodes)
        and consensus is not None
        and all(n.fingerprint in listed for n in info.nodes if n.role in ("authority", "relay"))
    )
    return {
        "directory": info.directory,
        "address": info.address,
        "joined": info.joined,
        "wan": info.wan,
        "ready": info.ready,
        "usable": usable,
        "up_seconds": info.up_seconds,
        "consensus_relays": len(consensus.relays) if consensus else None,
        "consensus": None
        if consensus is None
        else {
            "valid_after": consensus.valid_after.isoformat(),
            "valid_until": consensus.valid_until.isoformat(),
            "relays": [
                {
                    "nickname": r.nickname,
                    "fingerprint": r.fingerprint,
                    "address": r.address,
                    "or_port": r.or_port,
                    "flags": sorted(r.flags),
                }
                for r in consensus.relays
            ],
        },
        "problem": problem,
        "nodes": [
            {
                "nickname": n.nickname,
                "role": n.role,
                "pid": n.pid,
                "alive": n.pid in alive,
                "or_port": n.or_port,
                "dir_port": n.dir_port,
                "control_port": n.control_port,
                "fingerprint": n.fingerprint,
                "in_consensus": n.fingerprint in listed,
            }
            for n in info.nodes
        ],
        "dir_authorities": list(info.authorities),
    }


async def _wait_gone(pid: int) -> None:
    """Wait for a process that is not our child to exit (pidfd: no polling)."""
    try:
        fd = os.pidfd_open(pid)
    except OSError as exc:
        if exc.errno == errno.ESRCH:
            return
        raise
    try:
        await trio.lowlevel.wait_readable(fd)
    finally:
        os.close(fd)


async def stop_network(directory: Path | str) -> list[int]:
    """Stop every process this machine started there (SIGTERM, then SIGKILL); return their pids.

    ``up``'s state goes with its network. A joined directory keeps the
    network's authorities (it still leads to the network, whose
    authorities run elsewhere) and forgets its own relays.
    """
    root = Path(directory)
    info = TestnetInfo.load(root)
    targets = alive_nodes(info)
    await stop_pids(targets)
    if info.joined:
        replace(info, nodes=()).save()
    else:
        (root / STATE_FILE).unlink(missing_ok=True)
    return [n.pid for n in targets]


async def stop_pids(targets: list[NodeInfo]) -> None:
    """SIGTERM the tors of ``targets``, SIGKILL those still there after a grace period."""
    for node in targets:
        with contextlib.suppress(ProcessLookupError):
            os.kill(node.pid, signal.SIGTERM)
    with trio.move_on_after(STOP_TIMEOUT):
        async with trio.open_nursery() as nursery:
            for node in targets:
                nursery.start_soon(_wait_gone, node.pid)
    for node in targets:
        if _is_ours(node):
            with contextlib.suppress(ProcessLookupError):
                os.kill(node.pid, signal.SIGKILL)
            with trio.fail_after(STOP_TIMEOUT):
                await _wait_gone(node.pid)
    for node in targets:
        # Started by this very process (the demo, a bench): reap it, leave no zombie.
        with contextlib.suppress(ChildProcessError):
            os.waitpid(node.pid, os.WNOHANG)
