"""The ``anonsip`` command line: argument parsing and dispatch only.

Each area adds its own sub-commands from its own module; this file wires
them together so ``anonsip --help`` lists everything.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from anonsip._errors import AnonsipError
from anonsip.demo import cli as demo_cli
from anonsip.node._cli import add_node_commands
from onion import OnionError
from onion.testnet import cli as testnet_cli


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="anonsip",
        description="Pseudonymous peer-to-peer SIP over Tor onion services.",
    )
    parser.add_argument("-v", "--verbose", action="count", default=0, help="log more")
    parser.add_argument(
        "--home", metavar="DIR", help="the node's home (default: $ANONSIP_HOME or ~/.anonsip)"
    )
    parser.add_argument(
        "--passphrase-file", metavar="FILE", help="read the keystore passphrase from FILE"
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    add_node_commands(commands)
    testnet_cli.add_parser(commands)
    demo_cli.add_parser(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.WARNING - 10 * min(args.verbose, 2),
        format="%(asctime)s %(name)s %(levelname)s %(message)s",
    )
    try:
        result: int = args.run(args)
    except (AnonsipError, OnionError) as exc:
        print(f"anonsip: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    return result


if __name__ == "__main__":
    sys.exit(main())
