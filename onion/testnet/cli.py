"""``anonsip testnet up|share|join|status|down``: a private Tor network from the command line.

``join --bridge --address IP`` runs an obfs4 bridge of the network here
and prints its bridge line last, for hosts that can reach this one only.

The network's directory may also hold the DHT contacts of nodes running on
it; this package does not know their format, so the caller that builds the
parser hands in a ``ContactStore`` that reads and writes them.
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

import segno
import trio

from onion._errors import DirectoryError
from onion.testnet._bridge import start_bridge
from onion.testnet._join import DEFAULT_RELAY_TIMEOUT, join_network, share_code, start_relay
from onion.testnet._joincode import JoinCode, ServiceContact
from onion.testnet._network import (
    DEFAULT_AUTHORITIES,
    DEFAULT_RELAYS,
    DEFAULT_UP_TIMEOUT,
    DEFAULT_VOTING_INTERVAL,
    network_status,
    read_consensus,
    start_network,
    stop_network,
)


class ContactStore(Protocol):
    """Where a network directory keeps the contacts a join code carries."""

    def read(self, directory: Path) -> Sequence[ServiceContact]:
        """The contacts in ``directory``, oldest first."""
        ...

    def write(self, directory: Path, contacts: Sequence[ServiceContact]) -> None:
        """Add ``contacts`` (oldest first) to those in ``directory``."""
        ...


class _NoContacts:
    def read(self, directory: Path) -> Sequence[ServiceContact]:
        return ()

    def write(self, directory: Path, contacts: Sequence[ServiceContact]) -> None:
        return None


def add_parser(commands: Any, contacts: ContactStore | None = None) -> None:
    store: ContactStore = contacts or _NoContacts()
    parser: argparse.ArgumentParser = commands.add_parser(
        "testnet", help="private Tor network (own authorities and relays) on this machine or a LAN"
    )
    sub = parser.add_subparsers(dest="testnet_command", metavar="ACTION", required=True)

    up = sub.add_parser("up", help="start a network; returns once an onion service is reachable")
    up.add_argument("--dir", required=True, help="directory for keys, torrcs, logs and state")
    up.add_argument("--relays", type=int, default=DEFAULT_RELAYS, help="non-authority relays")
    up.add_argument("--authorities", type=int, default=DEFAULT_AUTHORITIES)
    up.add_argument("--address", default="127.0.0.1", help="IPv4 address to bind (a LAN address)")
    up.add_argument(
        "--relay-range",
        metavar="CIDR[,CIDR]",
        help="relays from these networks get Guard and HSDir (default: the LAN block of --address)",
    )
    up.add_argument(
        "--wan",
        metavar="PROFILE",
        help="give every link between relays (and from a client to its first relay) the delay,"
        " jitter and loss of the Internet: tor (calibrated to onion circuits), tor-lossy, lan,"
        " or delay=MS,walk=MS,jitter=MS,loss=SHARE,retransmit=MS",
    )
    up.add_argument("--voting-interval", type=int, default=DEFAULT_VOTING_INTERVAL)
    up.add_argument("--timeout", type=float, default=DEFAULT_UP_TIMEOUT)
    up.set_defaults(run=_up)

    share = sub.add_parser(
        "share", help="print the join code another machine needs (last line of the output)"
    )
    share.add_argument("--dir", required=True)
    share.add_argument("--qr", action="store_true", help="also draw the code as a QR code")
    share.set_defaults(run=lambda args: _share(args, store))

    join = sub.add_parser(
        "join", help="make --dir lead to the network of a join code (starts nothing)"
    )
    join.add_argument("code", metavar="CODE", help="the code `testnet share` printed")
    join.add_argument("--dir", required=True)
    role = join.add_mutually_exclusive_group()
    role.add_argument("--relay", action="store_true", help="also run a relay of the network here")
    role.add_argument(
        "--bridge",
        action="store_true",
        help="also run an obfs4 bridge of the network here, listed nowhere: hosts that can reach"
        " only this one enter through it (its bridge line is the last line printed)",
    )
    join.add_argument(
        "--address", help="with --relay or --bridge: this machine's IPv4 address on the LAN"
    )
    join.add_argument("--timeout", type=float, default=DEFAULT_RELAY_TIMEOUT)
    join.set_defaults(run=lambda args: _join(args, store))

    status = sub.add_parser("status", help="print JSON; exit 0 only while the network is usable")
    status.add_argument("--dir", required=True)
    status.set_defaults(run=_status)

    down = sub.add_parser("down", help="stop every process this machine started for the network")
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
            relay_range=args.relay_range,
            wan=args.wan,
        )
    )
    tors = [n for n in info.nodes if n.role != "shaper"]
    print(f"testnet up in {info.up_seconds} s: {len(tors)} tor processes in {info.directory}")
    if info.wan:
        print(f"every link is shaped in user space: {info.wan} (milliseconds; loss a share)")
    print(f"let other machines join it with: anonsip testnet share --dir {info.directory}")
    return 0


def _share(args: argparse.Namespace, store: ContactStore) -> int:
    directory = Path(args.dir).absolute()
    code = share_code(directory, store.read(directory))
    text = code.encode()
    where = ", ".join(sorted({f"{a.address}" for a in code.authorities}))
    if all(ipaddress.IPv4Address(a.address).is_loopback for a in code.authorities):
        print(
            f"anonsip: warning: the network listens on {where} only, which other machines"
            " cannot reach; start it with `testnet up --address <this machine's LAN address>`",
            file=sys.stderr,
        )
    print(
        f"join code for the private network in {directory}: {len(code.authorities)} authorities"
        f" at {where}, {len(code.contacts)} DHT contacts. On the other machine:"
    )
    print("  anonsip testnet join CODE --dir DIR   (add --relay --address IP to relay for it)")
    if args.qr:
        segno.make(text, error="l", micro=False).terminal(out=sys.stdout, compact=True)
    print(text)
    return 0


def _join(args: argparse.Namespace, store: ContactStore) -> int:
    if (args.relay or args.bridge) and not args.address:
        flag = "--relay" if args.relay else "--bridge"
        print(
            f"anonsip: error: {flag} needs --address (this machine's LAN address)",
            file=sys.stderr,
        )
        return 2
    code = JoinCode.decode(args.code)
    started = time.monotonic()
    info = join_network(code, args.dir)
    directory = Path(info.directory)
    store.write(directory, code.contacts[::-1])  # the code lists the newest first
    print(
        f"joined the private network of {len(code.authorities)} authorities at {info.address}"
        f" in {directory} ({len(code.contacts)} DHT contacts)"
    )
    if args.relay:
        info, relay = trio.run(
            lambda: start_relay(directory, address=args.address, timeout=args.timeout)
        )
        print(
            f"relay {relay.nickname} is in the network's consensus after"
            f" {time.monotonic() - started:.1f} s, flags: {' '.join(sorted(relay.flags))}"
        )
        print(f"stop it with: anonsip testnet down --dir {directory}")
    elif args.bridge:
        info, bridge = trio.run(
            lambda: start_bridge(directory, address=args.address, timeout=args.timeout)
        )
        print(
            f"obfs4 bridge running after {time.monotonic() - started:.1f} s on"
            f" {bridge.address}; it is in no consensus. Stop it with:"
            f" anonsip testnet down --dir {directory}"
        )
        print("a host that can reach only this one joins the network's code, then runs:")
        print(f"  anonsip run --testnet DIR --bridge '{bridge.line()}'")
        print(bridge.line())
        return 0
    else:
        try:
            consensus = trio.run(read_consensus, info)
        except DirectoryError as exc:
            print(f"anonsip: warning: the network does not answer now: {exc}", file=sys.stderr)
        else:
            print(f"the network answers: {len(consensus.relays)} relays in its consensus")
    print(
        f"use it with: anonsip run --testnet {directory}  (or: anonsip tui --testnet {directory})"
    )
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
