"""``anonsip bridges list|add|remove``: the bridges a node's tor enters the network through.

They are kept in the home (``Home.bridges_path``), read when the node
starts: a change applies at the next start (``anonsip shutdown``, then
``anonsip run``). Nothing here needs the passphrase or a running node.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from anonsip.cli._client import home_of
from onion import Bridge

__all__ = ["add_bridge_commands"]


def _row(number: int, bridge: Bridge) -> str:
    return f"{number:>2}  {bridge.line()}"


def cmd_list(args: argparse.Namespace) -> int:
    home = home_of(args)
    bridges = home.bridges()
    if args.json:
        print(json.dumps([{"kind": b.kind, "line": b.line()} for b in bridges]))
        return 0
    if not bridges:
        print("no bridges: the node enters the Tor network directly")
        return 0
    for number, bridge in enumerate(bridges, 1):
        print(_row(number, bridge))
    return 0


def cmd_add(args: argparse.Namespace) -> int:
    home = home_of(args)
    kept = home.add_bridges(args.lines)
    print(f"kept {len(args.lines)} bridge(s); {len(kept)} in all, used from the node's next start")
    return 0


def cmd_remove(args: argparse.Namespace) -> int:
    home = home_of(args)
    which = "all" if args.all else args.which
    if which is None:
        print("anonsip: error: say which bridge: its number, address or fingerprint, or --all")
        return 2
    gone = home.remove_bridges(which)
    left = len(home.bridges())
    print(f"removed {len(gone)} bridge(s); {left} left, from the node's next start")
    return 0


def add_bridge_commands(commands: Any) -> None:
    parser: argparse.ArgumentParser = commands.add_parser(
        "bridges",
        help="the bridges the node enters the Tor network through (where Tor is blocked)",
        description=(
            "Bridges are unlisted entry relays; with a pluggable transport (obfs4,"
            " snowflake, meek_lite) the traffic to them does not look like Tor. They are"
            " kept in the home and used from the node's next start."
        ),
    )
    sub = parser.add_subparsers(dest="bridges_command", metavar="ACTION", required=True)
    p = sub.add_parser("list", help="the kept bridges, numbered")
    p.add_argument("--json", action="store_true")
    p.set_defaults(run=cmd_list)
    p = sub.add_parser("add", help="keep bridge lines (each checked; one argument per line)")
    p.add_argument("lines", metavar="LINE", nargs="+", help="'obfs4 IP:PORT FINGERPRINT cert=…'")
    p.set_defaults(run=cmd_add)
    p = sub.add_parser("remove", help="forget a bridge (its number, address or fingerprint)")
    p.add_argument("which", metavar="WHICH", nargs="?")
    p.add_argument("--all", action="store_true", help="forget every bridge")
    p.set_defaults(run=cmd_remove)
