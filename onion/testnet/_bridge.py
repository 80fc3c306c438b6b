"""An obfs4 bridge of a private network: an entry for hosts that reach nothing else.

``start_bridge`` runs, on this machine, a tor that is a bridge of the
network in a directory (one ``up`` made, or one ``join`` made): it fetches
the network's consensus from its authorities like any relay, but publishes
its own descriptor nowhere (``onion._torrc.bridge_config``), so no
consensus lists it; and it is reachable only through obfs4 on the given
address. A host whose network lets it reach that one address and nothing
else enters the network through the bridge's line. It returns once the
transport is registered (tor's own log line) and the bridge has the
network's consensus (its bootstrap events), with the bridge line built
from obfs4proxy's ``obfs4_bridgeline.txt``. The process runs in its own
session and outlives the command; ``testnet down`` stops it.
"""

from __future__ import annotations

import logging
import re
import time
from dataclasses import replace
from pathlib import Path

import trio

from onion._bootstrap import parse_bootstrap
from onion._bridges import Bridge, obfs4_bridge_line, parse_bridge_line, transport_program
from onion._control import ControlConnection
from onion._errors import PortInUse, TestnetError, unwrapped_errors
from onion._process import check_tor_version, find_tor, prepare_data_dir
from onion._torrc import bridge_config, private_network_config, render_torrc
from onion.testnet._daemon import Daemon
from onion.testnet._join import launch_node, planned_node
from onion.testnet._linkshape import parse_profile
from onion.testnet._network import (
    DEFAULT_VOTING_INTERVAL,
    PORT_ATTEMPTS,
    alive_nodes,
    check_ipv4,
    free_ports,
    start_shaper,
    stop_pids,
    vote_range,
)
from onion.testnet._shaper import Route
from onion.testnet._state import EMPTY_FILE, NodeInfo, TestnetInfo

__all__ = [
    "BRIDGE_DIR",
    "DEFAULT_BRIDGE_TIMEOUT",
    "running_bridge",
    "start_bridge",
    "stop_bridge",
]

log = logging.getLogger(__name__)

BRIDGE_DIR = "bridge"
SHAPER_DIR = "bridge-wan"
LINE_FILE = "bridge-line"
DEFAULT_BRIDGE_TIMEOUT = 120.0
_REGISTERED = re.compile(r"Registered server transport 'obfs4' at")


def running_bridge(info: TestnetInfo) -> Bridge | None:
    """The bridge this machine runs for the network in ``info``, if it runs."""
    for node in alive_nodes(info):
        if node.role == "bridge":
            try:
                return parse_bridge_line((Path(node.data_dir) / LINE_FILE).read_text())
            except OSError:
                return None
    return None


async def start_bridge(
    directory: Path | str, *, address: str, timeout: float = DEFAULT_BRIDGE_TIMEOUT
) -> tuple[TestnetInfo, Bridge]:
    """Start an obfs4 bridge on ``address`` for the network in ``directory``; its line.

    If this machine already runs one there, that one's line. On any failure
    the bridge is stopped again.
    """
    check_ipv4(address)
    info = TestnetInfo.load(directory)
    existing = running_bridge(info)
    if existing is not None:
        return info, existing
    if any(n.role == "relay" for n in alive_nodes(info)) and info.joined:
        raise TestnetError(f"this machine runs a relay in {info.directory}; use another --dir")
    program = transport_program("obfs4")
    started = time.monotonic()
    tor = find_tor()
    await check_tor_version(tor)
    root = Path(info.directory)
    data_dir = prepare_data_dir(root / BRIDGE_DIR)
    node = await planned_node(data_dir, "bridge", tor)
    common = private_network_config(
        data_dir,
        nickname=node.nickname,
        address=address,
        authorities=info.authorities,
        vote_range=vote_range(address),
        voting_interval=DEFAULT_VOTING_INTERVAL,
        empty_file=root / EMPTY_FILE,
    )
    profile = parse_profile(info.wan) if info.wan else None
    shaper: list[tuple[Daemon, NodeInfo]] = []
    for attempt in range(1, PORT_ATTEMPTS + 1):
        # On a WAN-shaped network the client's link to the bridge is shaped like any
        # first hop: obfs4 listens on a second port, behind a shaper on the public one.
        with free_ports(address, 2 if profile else 1) as ports:
            listen = ports[-1]
            config = bridge_config(common, address=address, transport_port=listen, program=program)
            # Also to stdout until tor is ready (see _join.launch_node).
            (data_dir / "torrc").write_text(render_torrc([*config, ("Log", "notice stdout")]))
        (data_dir / "notice.log").unlink(missing_ok=True)
        try:
            if profile is not None:
                route = Route(
                    name=node.nickname,
                    listen_host=address,
                    listen_port=ports[0],
                    target_host=address,
                    target_port=listen,
                )
                shaper.append(
                    await start_shaper(
                        root / SHAPER_DIR, f"{node.nickname}-shaper", [route], profile
                    )
                )
            process, control_port = await launch_node(node, tor, also=_REGISTERED)
        except PortInUse:
            await _stop_shaper(shaper)
            if attempt == PORT_ATTEMPTS:
                raise
            log.warning("port collision starting the bridge; retrying with a new port")
            continue
        except BaseException:
            await _stop_shaper(shaper)
            raise
        break
    bridge_node = NodeInfo(
        nickname=node.nickname,
        role="bridge",
        data_dir=str(data_dir),
        pid=process.pid,
        or_port=ports[0],  # the obfs4 port: the only one others reach
        dir_port=0,
        fingerprint=node.fingerprint,
        control_port=control_port,
    )
    others = tuple(n for n in info.nodes if not _of_bridge(n))
    info = replace(info, nodes=(*others, bridge_node, *(n for _, n in shaper)))
    info.save()  # first, so `down` can stop a bridge whose wait failed
    try:
        await _wait_bootstrapped(bridge_node, process, timeout)
        bridge = obfs4_bridge_line(
            (data_dir / "pt_state" / "obfs4_bridgeline.txt").read_text(),
            host=address,
            port=ports[0],
            fingerprint=node.fingerprint,
        )
    except BaseException:
        await stop_pids([bridge_node])
        await _stop_shaper(shaper)
        replace(info, nodes=others).save()
        raise
    (data_dir / LINE_FILE).write_text(bridge.line() + "\n")
    log.info("bridge ready after %.1f s", time.monotonic() - started)
    return info, bridge


def _of_bridge(node: NodeInfo) -> bool:
    """The bridge, or the shaper in front of it."""
    return node.role == "bridge" or (node.role == "shaper" and node.data_dir.endswith(SHAPER_DIR))


async def _stop_shaper(shaper: list[tuple[Daemon, NodeInfo]]) -> None:
    with trio.CancelScope(shield=True):
        for daemon, _ in shaper:
            daemon.kill()
            await daemon.wait()
    shaper.clear()


async def stop_bridge(directory: Path | str) -> list[int]:
    """Stop the bridge this machine runs for the network in ``directory`` (and only it)."""
    info = TestnetInfo.load(directory)
    ours = [n for n in info.nodes if _of_bridge(n)]
    await stop_pids([n for n in alive_nodes(info) if _of_bridge(n)])
    replace(info, nodes=tuple(n for n in info.nodes if not _of_bridge(n))).save()
    return [n.pid for n in ours]


async def _wait_bootstrapped(node: NodeInfo, process: Daemon, timeout: float) -> None:
    """Wait until the bridge has the network's consensus (its own bootstrap at 100 %)."""
    assert node.control_port is not None

    async def watch() -> None:
        code = await process.wait()
        raise TestnetError(
            f"the bridge exited (status {code}) before it was ready;"
            f" its log is {Path(node.data_dir) / 'notice.log'}"
        )

    try:
        with trio.fail_after(timeout), unwrapped_errors():
            async with (
                ControlConnection("127.0.0.1", node.control_port) as control,
                control.events("STATUS_CLIENT") as events,
                trio.open_nursery() as nursery,
            ):
                nursery.start_soon(watch)
                info = await control.get_info("status/bootstrap-phase")
                status = parse_bootstrap(info.get("status/bootstrap-phase", ""))
                while status is None or not status.done:
                    try:
                        event = await events.receive()
                    except trio.EndOfChannel:
                        await trio.sleep_forever()  # tor closed the connection: watch() reports
                    status = parse_bootstrap(event.args) or status
                nursery.cancel_scope.cancel()
    except trio.TooSlowError:
        raise TestnetError(
            f"the bridge did not get the network's consensus within {timeout:.0f} s: can it"
            " reach the authorities?"
        ) from None
