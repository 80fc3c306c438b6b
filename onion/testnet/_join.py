"""Share a private Tor network as a join code; join one from a code, as a client or a relay.

``share_code`` reads a network directory (one ``up`` made, or one ``join``
made: a joined machine can pass the network on). ``join_network`` writes
a directory that ``launch_tor(..., testnet=TestnetInfo.load(dir))`` uses,
and starts nothing. ``start_relay`` then starts a relay on this machine,
in its own session so it outlives the command, and returns once the
network's consensus lists it as Running: the relay's own tor tells us
each time it fetched a new consensus (control-spec 4.1.12 NEWCONSENSUS),
and we ask it for its own entry (``GETINFO ns/id/FP``). Nothing polls.

To learn the relay's control port without polling, its torrc first logs
to stdout as well, which we read up to the control listener line; then we
tell it (SETCONF) to log to its file only, and close the pipe.
"""

from __future__ import annotations

import contextlib
import logging
import re
import secrets
import time
from collections.abc import Iterator, Sequence
from dataclasses import replace
from pathlib import Path

import trio

from onion._control import ControlConnection
from onion._control_proto import quote
from onion._errors import ControlClosed, PortInUse, TestnetError, unwrapped_errors
from onion._process import (
    CONTROL_READY,
    check_tor_version,
    find_tor,
    prepare_data_dir,
    tor_environment,
)
from onion._tor import TorLog
from onion._torrc import private_network_config, relay_config, render_torrc
from onion.testnet._consensus import RelayStatus, parse_router_statuses
from onion.testnet._daemon import Daemon
from onion.testnet._joincode import JoinCode, ServiceContact
from onion.testnet._network import (
    DEFAULT_VOTING_INTERVAL,
    PORT_ATTEMPTS,
    PlannedNode,
    alive_nodes,
    check_ipv4,
    exit_error,
    free_ports,
    relay_fingerprint,
    stop_pids,
    vote_range,
)
from onion.testnet._state import EMPTY_FILE, STATE_FILE, NodeInfo, TestnetInfo

__all__ = [
    "DEFAULT_RELAY_TIMEOUT",
    "SHARE_CONTACTS",
    "join_network",
    "share_code",
    "start_relay",
]

log = logging.getLogger(__name__)

SHARE_CONTACTS = 4  # the newest few: one reachable contact is enough to join a DHT
DEFAULT_RELAY_TIMEOUT = 180.0
RELAY_START_TIMEOUT = 30.0
RELAY_DIR = "relay"


def share_code(directory: Path | str, contacts: Sequence[ServiceContact] = ()) -> JoinCode:
    """The join code of the network in ``directory``, with the newest of ``contacts``."""
    info = TestnetInfo.load(directory)
    if not info.joined and not alive_nodes(info):
        raise TestnetError(
            f"the private network in {directory} is not running here:"
            f" start it with `anonsip testnet up --dir {directory}`"
        )
    newest = tuple(contacts)[-SHARE_CONTACTS:]
    return JoinCode(authorities=tuple(info.dir_authorities()), contacts=newest[::-1])


def join_network(code: JoinCode, directory: Path | str) -> TestnetInfo:
    """Make ``directory`` lead to the network of ``code``; no process is started."""
    root = prepare_data_dir(Path(directory))
    if (root / STATE_FILE).exists():
        current = TestnetInfo.load(root)
        if not current.joined:
            raise TestnetError(
                f"{root} holds the private network this machine started; join into another"
                " directory"
            )
        if alive_nodes(current):
            raise TestnetError(
                f"this machine runs a relay in {root}: run `anonsip testnet down --dir {root}`"
                " before joining again"
            )
    (root / EMPTY_FILE).write_text("")
    info = TestnetInfo(
        directory=str(root),
        address=code.authorities[0].address,
        authorities=tuple(a.torrc_line() for a in code.authorities),
        ready=True,
        joined=True,
    )
    info.save()
    return info


async def start_relay(
    directory: Path | str, *, address: str, timeout: float = DEFAULT_RELAY_TIMEOUT
) -> tuple[TestnetInfo, RelayStatus]:
    """Start a relay bound to ``address`` on the joined network in ``directory``.

    Returns once the consensus lists it as Running, with its entry there.
    On any failure the relay is stopped again.
    """
    check_ipv4(address)
    info = TestnetInfo.load(directory)
    if not info.joined:
        raise TestnetError("start relays on a joined directory (`anonsip testnet join`)")
    if alive_nodes(info):
        raise TestnetError(f"this machine already runs a relay in {info.directory}")
    started = time.monotonic()
    tor = find_tor()
    await check_tor_version(tor)
    root = Path(info.directory)
    data_dir = prepare_data_dir(root / RELAY_DIR)
    node = await planned_node(data_dir, "relay", tor)
    for attempt in range(1, PORT_ATTEMPTS + 1):
        with free_ports(address, 2) as ports:
            _write_relay_config(node, info, address, ports[0], ports[1])
        try:
            process, control_port = await launch_node(node, tor)
        except PortInUse:
            if attempt == PORT_ATTEMPTS:
                raise
            log.warning("port collision starting the relay; retrying with new ports")
            continue
        break
    relay = NodeInfo(
        nickname=node.nickname,
        role="relay",
        data_dir=str(data_dir),
        pid=process.pid,
        or_port=ports[0],
        dir_port=ports[1],
        fingerprint=node.fingerprint,
        control_port=control_port,
    )
    info = replace(info, address=address, nodes=(relay,))
    info.save()  # first, so `down` can stop a relay whose wait failed
    try:
        status = await _wait_listed(relay, process, timeout)
    except BaseException:
        await stop_pids([relay])
        replace(info, nodes=()).save()
        raise
    log.info("relay in the consensus after %.1f s", time.monotonic() - started)
    return info, status


async def planned_node(data_dir: Path, role: str, tor: str) -> PlannedNode:
    """A relay or bridge of this machine: its nickname (kept across starts) and fingerprint."""
    nickname = f"{role}{secrets.token_hex(4)}"
    if (data_dir / "nickname").exists():
        nickname = (data_dir / "nickname").read_text().strip() or nickname
    (data_dir / "nickname").write_text(nickname)
    (data_dir / "torrc-defaults").write_text("")
    return await relay_fingerprint(
        PlannedNode(nickname=nickname, role=role, data_dir=data_dir), tor
    )


def _write_relay_config(
    node: PlannedNode, info: TestnetInfo, address: str, or_port: int, dir_port: int
) -> None:
    common = private_network_config(
        node.data_dir,
        nickname=node.nickname,
        address=address,
        authorities=info.authorities,
        vote_range=vote_range(address),
        voting_interval=DEFAULT_VOTING_INTERVAL,
        empty_file=Path(info.directory) / EMPTY_FILE,
    )
    # Also to stdout until we have the control port (see the module docstring).
    config = [*relay_config(common, or_port=or_port, dir_port=dir_port, address=address)]
    config.append(("Log", "notice stdout"))
    (node.data_dir / "torrc").write_text(render_torrc(config))
    (node.data_dir / "notice.log").unlink(missing_ok=True)


async def launch_node(
    node: PlannedNode, tor: str, *, also: re.Pattern[str] | None = None
) -> tuple[Daemon, int]:
    """Start the relay; return it and its control port once it logs to its file only.

    With ``also``, wait until tor has logged a line matching it too (a bridge:
    its pluggable transport registered).
    """
    process = Daemon.spawn(  # its own session: the relay outlives `anonsip testnet join`
        [
            tor,
            "--defaults-torrc",
            str(node.data_dir / "torrc-defaults"),
            "-f",
            str(node.data_dir / "torrc"),
        ],
        env=tor_environment(),
        capture_output=True,
    )
    assert process.output is not None
    tor_log = TorLog()
    port: int | None = None
    seen = also is None
    try:
        with _start_deadline(node, tor_log):
            async for chunk in process.output:
                for line in tor_log.feed(chunk):
                    match = CONTROL_READY.search(line)
                    if match:
                        port = int(match.group(1))
                    if also is not None and also.search(line):
                        seen = True
                if port is not None and seen:
                    break
            if port is not None and seen:
                try:
                    async with ControlConnection("127.0.0.1", port) as control:
                        log_file = f"notice file {node.data_dir / 'notice.log'}"
                        await control.command("SETCONF", f"Log={quote(log_file)}")
                except (OSError, ControlClosed):
                    # tor opens its listeners one by one and exits if a later one cannot
                    # bind: then what it printed after the control line says why. The
                    # kernel may accept our connection on the control listener before
                    # tor exits (then tor closes it: ControlClosed) or refuse it after.
                    if not await _drained(process.output, tor_log):
                        raise
                    port = None
    except BaseException:
        with trio.CancelScope(shield=True):
            process.kill()
            await process.wait()
        raise
    finally:
        with trio.CancelScope(shield=True):
            await process.close_output()
    if port is None or not seen:  # its stdout ended: tor exited before it was ready
        raise exit_error(node, await process.wait(), tor_log.tail(12))
    return process, port


async def _drained(output: trio.lowlevel.FdStream, tor_log: TorLog) -> bool:
    """Read what tor still prints until it ends (True: tor exited) or for at most 5 s."""
    with trio.move_on_after(5):
        async for chunk in output:
            tor_log.feed(chunk)
        return True
    return False


@contextlib.contextmanager
def _start_deadline(node: PlannedNode, tor_log: TorLog) -> Iterator[None]:
    try:
        with trio.fail_after(RELAY_START_TIMEOUT):
            yield
    except trio.TooSlowError:
        tail = "\n  ".join(tor_log.tail(12))
        raise TestnetError(
            f"{node.nickname} was not ready within {RELAY_START_TIMEOUT:.0f} s. Its log:\n  {tail}"
        ) from None


async def _wait_listed(relay: NodeInfo, process: Daemon, timeout: float) -> RelayStatus:
    """Wait until a consensus the relay fetched lists it as Running."""
    assert relay.control_port is not None
    key = f"ns/id/{relay.fingerprint}"

    async def watch() -> None:
        code = await process.wait()
        raise TestnetError(
            f"the relay exited (status {code}) before it entered the consensus;"
            f" its log is {Path(relay.data_dir) / 'notice.log'}"
        )

    try:
        with trio.fail_after(timeout), unwrapped_errors():
            async with (
                ControlConnection("127.0.0.1", relay.control_port) as control,
                control.events("NEWCONSENSUS") as consensuses,
                trio.open_nursery() as nursery,
            ):
                nursery.start_soon(watch)
                while True:
                    # 552 until a consensus lists it (control-spec 3.9 "ns/id/<OR identity>").
                    reply = await control.command("GETINFO", key, check=False)
                    text = reply.values().get(key, "") if reply.ok else ""
                    entries = parse_router_statuses(text) if text.strip() else []
                    if entries and {"Running", "Valid"} <= entries[0].flags:
                        nursery.cancel_scope.cancel()
                        return entries[0]
                    try:
                        await consensuses.receive()
                    except trio.EndOfChannel:
                        await trio.sleep_forever()  # tor closed the connection: watch() reports
    except trio.TooSlowError:
        raise TestnetError(
            f"the relay was not in the network's consensus after {timeout:.0f} s: can the"
            f" authorities reach {relay.nickname} on its address, and it them?"
        ) from None
    raise AssertionError("unreachable")
