"""``anonsip testnet up|status|down``: placeholder until the testnet lands."""

from __future__ import annotations

import argparse
from typing import Any


def add_parser(commands: Any) -> None:
    parser: argparse.ArgumentParser = commands.add_parser("testnet", help="private Tor network")
    parser.set_defaults(run=lambda args: 2)
