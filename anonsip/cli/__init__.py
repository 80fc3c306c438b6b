"""The ``anonsip`` command line: argument parsing and dispatch only.

Each area adds its own sub-commands from its own module; this file wires
them together so ``anonsip --help`` lists everything.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from anonsip._errors import AnonsipError
from anonsip._logging import RedactingFilter
from anonsip.cli._bridges import add_bridge_commands
from anonsip.cli._call_commands import add_call_commands
from anonsip.cli._client import one_error
from anonsip.cli._commands import add_client_commands
from anonsip.cli._run_commands import add_run_commands
from anonsip.demo import cli as demo_cli
from anonsip.dht import BootstrapList, Contact
from onion import OnionError
from onion.testnet import ServiceContact
from onion.testnet import cli as testnet_cli


class _DhtContacts:
    """A network directory's DHT bootstrap list, as join codes carry it."""

    def read(self, directory: Path) -> Sequence[ServiceContact]:
        contacts = BootstrapList(directory).contacts()
        return [ServiceContact(public_key=c.public_key, port=c.port) for c in contacts]

    def write(self, directory: Path, contacts: Sequence[ServiceContact]) -> None:
        listed = BootstrapList(directory)
        for contact in contacts:
            listed.add_self(Contact.from_public_key(contact.public_key, contact.port))


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
    add_run_commands(commands)
    add_client_commands(commands)
    add_call_commands(commands)
    add_bridge_commands(commands)
    testnet_cli.add_parser(commands, _DhtContacts())
    demo_cli.add_parser(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.WARNING - 10 * min(args.verbose, 2),
        format="%(asctime)s %(name)s %(levelname)s %(message)s",
    )
    for handler in logging.getLogger().handlers:
        handler.addFilter(RedactingFilter())
    try:
        result: int = args.run(args)
    except KeyboardInterrupt:
        return 130
    except BaseException as exc:
        error = one_error(exc)
        if isinstance(error, KeyboardInterrupt):
            return 130
        if isinstance(error, AnonsipError | OnionError):
            print(f"anonsip: error: {error}", file=sys.stderr)
            return 1
        if isinstance(error, OSError) and error.strerror:
            where = f" ({error.filename})" if error.filename else ""
            print(f"anonsip: error: {error.strerror}{where}", file=sys.stderr)
            return 1
        raise
    return result


if __name__ == "__main__":
    sys.exit(main())
