"""``anonsip demo [--dir DIR] [--keep] [--bridge]``: the one-command demo from the command line."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import trio

from anonsip.demo._demo import DEFAULT_DIR, run_demo


def add_parser(commands: Any) -> None:
    parser: argparse.ArgumentParser = commands.add_parser(
        "demo",
        help="a private Tor network, a demo peer and the terminal UI, in one command",
        description=(
            "Start a private Tor network on this machine, a demo peer that echoes "
            "messages and answers calls, and the terminal UI as you. Quitting the UI "
            "stops everything the demo started. No Internet or configuration needed."
        ),
    )
    parser.add_argument(
        "--dir", default=DEFAULT_DIR, help=f"where the demo keeps its files (default {DEFAULT_DIR})"
    )
    parser.add_argument(
        "--keep",
        action="store_true",
        help="leave the private Tor network running afterwards (the next demo starts faster)",
    )
    parser.add_argument(
        "--bridge",
        action="store_true",
        help="your node enters the private network through an obfs4 bridge the demo runs"
        " (what `anonsip run --bridge LINE` does where Tor is blocked)",
    )
    parser.set_defaults(run=_run)


def _say(line: str) -> None:
    print(f"demo: {line}", flush=True)


def _run(args: argparse.Namespace) -> int:
    return trio.run(lambda: run_demo(Path(args.dir), keep=args.keep, bridge=args.bridge, say=_say))
