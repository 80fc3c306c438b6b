"""``anonsip testnet up|status|down``: a private Tor network from the command line."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

import trio

from onion.testnet._network import (
    DEFAULT_AUTHORITIES,
    DEFAULT_RELAYS,
    DEFAULT_UP_TIMEOUT,
    DEFAULT_VOTING_INTERVAL,
    network_status,
    start_network,
    stop_network,
)


def add_parser(commands: Any) -> None:
    parser: argparse.ArgumentParser = commands.add_parser(
        "testnet", help="private Tor network (own authorities and relays) on this machine"
    )
    sub = parser.add_subparsers(dest="testnet_command", metavar="ACTION", required=True)

    up = sub.add_parser("up", help="start a network; returns once an onion service is reachable")
    up.add_argument("--dir", required=True, help="directory for keys, torrcs, logs and state")
    up.add_argument("--relays", type=int, default=DEFAULT_RELAYS, help="non-authority relays")
    up.add_argument("--authorities", type=int, default=DEFAULT_AUTHORITIES)
    up.add_argument("--address", default="127.0.0.1", help="IP to bind (a LAN address)")
    up.add_argument("--voting-interval", type=int, default=DEFAULT_VOTING_INTERVAL)
    up.add_argument("--timeout", type=float, default=DEFAULT_UP_TIMEOUT)
    up.set_defaults(run=_up)

    status = sub.add_parser("status", help="print JSON; exit 0 only while the network is usable")
    status.add_argument("--dir", required=True)
    status.set_defaults(run=_status)

    down = sub.add_parser("down", help="stop every process `up` started")
    down.add_argument("--dir", required=True)
    down.set_defaults(run=_down)


def _up(args: argparse.Namespace) -> int:
    info = trio.run(
        lambda: start_network(
            args.dir,
            relays=args.relays,
            authorities=args.authorities,
            address=args.address,
            voting_interval=args.voting_interval,
            timeout=args.timeout,
        )
    )
    print(f"testnet up in {info.up_seconds} s: {len(info.nodes)} tor processes in {info.directory}")
    print(f"join it with: launch_tor(data_dir, testnet=TestnetInfo.load({info.directory!r}))")
    return 0


def _status(args: argparse.Namespace) -> int:
    report = trio.run(network_status, args.dir)
    json.dump(report, sys.stdout, indent=2)
    print()
    return 0 if report["usable"] else 1


def _down(args: argparse.Namespace) -> int:
    stopped = trio.run(stop_network, args.dir)
    print(f"stopped {len(stopped)} tor processes")
    return 0
