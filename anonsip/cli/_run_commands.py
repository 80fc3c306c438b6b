"""The commands that make and start a node: ``init``, ``address``, ``run``, ``tui``.

Every command prints one clear line and exits non-zero on error.
Passphrases come from ``--passphrase-file``, ``ANONSIP_PASSPHRASE`` or a
prompt, never from the command line (it would show in ``ps``).
"""

from __future__ import annotations

import argparse
import getpass
import json
import logging
import os
import secrets
import shlex
import sys
from pathlib import Path
from typing import Any

import trio

from anonsip._errors import LocalError
from anonsip._logging import RedactingFilter
from anonsip.admission import RESTING_EFFORT
from anonsip.cli._client import given_passphrase, home_of, unlock
from anonsip.identity import FAST_INSECURE_KDF, MODERATE_KDF, WrongPassphrase
from anonsip.node import Home, NodeConfig, build_node

log = logging.getLogger(__name__)


# -- init / address / run ---------------------------------------------------------


def cmd_init(args: argparse.Namespace) -> int:
    home = home_of(args)
    passphrase = None if args.no_passphrase else given_passphrase(args)
    if passphrase is None and not args.no_passphrase:
        if not sys.stdin.isatty():
            raise LocalError(
                "give a passphrase with ANONSIP_PASSPHRASE or --passphrase-file "
                "(or ask for an unencrypted keystore with --no-passphrase)"
            )
        passphrase = getpass.getpass("new passphrase: ")
        if getpass.getpass("again: ") != passphrase:
            raise LocalError("the two passphrases differ; nothing was created")
    if passphrase is not None and len(passphrase) < 8:
        raise LocalError("use a passphrase of at least 8 characters")
    identity = home.init(
        args.nick,
        passphrase,
        rng=secrets.token_bytes,
        allow_unencrypted=args.no_passphrase,
        kdf=FAST_INSECURE_KDF if args.fast_kdf else MODERATE_KDF,
    )
    print(f"created {identity.nickname!r} in {home.path}")
    print(identity.address.text)
    return 0


def cmd_address(args: argparse.Namespace) -> int:
    identity = unlock(args).identity
    if args.json:
        print(
            json.dumps(
                {
                    "nick": identity.nickname,
                    "address": identity.address.text,
                    "sip_uri": identity.address.sip_uri,
                }
            )
        )
    else:
        print(identity.address.text)
    return 0


def _shell_words(words: list[str]) -> str:
    return " ".join(shlex.quote(w) for w in words)


def node_config(args: argparse.Namespace) -> NodeConfig:
    home = home_of(args)
    restart = args.restart_command or _shell_words(
        ["anonsip", "--home", str(home.path), "run"]
        + (["--testnet", str(Path(args.testnet).absolute())] if args.testnet else [])
    )
    return NodeConfig(
        testnet=Path(args.testnet).absolute() if args.testnet else None,
        bootstrap_dirs=tuple(Path(d) for d in args.bootstrap or ()),
        pow_difficulty=args.pow_bits,
        auto_answer=args.auto_answer,
        play=Path(args.play) if args.play else None,
        record=Path(args.record) if args.record else None,
        echo_bot=args.echo_bot,
        restart_command=restart,
        bootstrap_timeout=args.bootstrap_timeout,
    )


def cmd_run(args: argparse.Namespace) -> int:
    home = home_of(args)
    keys = unlock(args)
    try:
        file_log = logging.FileHandler(home.log_path)
    except OSError as exc:
        raise LocalError(f"cannot write the node's log in {home.path}: {exc.strerror}") from exc
    file_log.setFormatter(logging.Formatter("%(asctime)s %(name)s %(levelname)s %(message)s"))
    file_log.addFilter(RedactingFilter())
    file_log.setLevel(logging.INFO)
    logging.getLogger().addHandler(file_log)
    logging.getLogger().setLevel(min(logging.getLogger().level, logging.INFO))
    node = build_node(home, keys, node_config(args))
    print(f"anonsip node starting in {home.path}", flush=True)
    trio.run(node.run)
    return 0


def cmd_tui(args: argparse.Namespace) -> int:
    """The UI on the node in --home; with no node running there, start one first.

    The started node runs in the background (its own session, output in
    ``node.out``) and outlives the UI, so messages keep arriving; it is
    stopped with ``anonsip shutdown``.
    """
    import socket
    import subprocess
    import time

    home = home_of(args)

    def node_answers() -> bool:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
            probe.settimeout(2.0)
            try:
                probe.connect(str(home.control_path))
            except OSError:
                return False
        return True

    if not node_answers():
        passphrase = _tui_passphrase(args, home)
        output = home.path / "node.out"
        testnet = ["--testnet", str(Path(args.testnet).absolute())] if args.testnet else []
        restart = _shell_words(["anonsip", "--home", str(home.path), "tui", *testnet])
        command = [sys.executable, "-m", "anonsip.cli", "--home", str(home.path), "run"]
        command += [*testnet, "--restart-command", restart]
        env = dict(os.environ)
        if passphrase is not None:
            env["ANONSIP_PASSPHRASE"] = passphrase  # the environment is not shown by ps
        with output.open("ab") as out:
            node = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                env=env,
            )
        deadline = time.monotonic() + 30.0
        # The node opens its socket before it starts tor; the UI shows the rest.
        while not node_answers():
            if node.poll() is not None or time.monotonic() > deadline:
                if node.poll() is None:
                    node.terminate()
                tail = output.read_text(errors="replace").strip().splitlines()[-3:]
                raise LocalError("the node did not start: " + " / ".join(tail))
            time.sleep(0.1)
        print(
            f"started a node in the background in {home.path}; it keeps running after "
            f"the UI (stop it with: anonsip --home {home.path} shutdown)",
            flush=True,
        )
    # The UI is its own program, so this package never imports it.
    os.execv(sys.executable, [sys.executable, "-m", "tui", str(home.control_path)])  # noqa: S606 - no shell, fixed argv


def _tui_passphrase(args: argparse.Namespace, home: Home) -> str | None:
    """The passphrase a background node will need (checked here, where a prompt works)."""
    given = given_passphrase(args)
    if given is None:
        try:
            home.unlock(None, rng=secrets.token_bytes)
        except WrongPassphrase:
            if not sys.stdin.isatty():
                raise LocalError(
                    "this keystore is encrypted: give the passphrase with ANONSIP_PASSPHRASE "
                    "or --passphrase-file"
                ) from None
            given = getpass.getpass("anonsip passphrase: ")
        else:
            return None
    home.unlock(given, rng=secrets.token_bytes)
    return given


def add_run_commands(commands: Any) -> None:
    def sub(name: str, help_text: str, run: Any) -> argparse.ArgumentParser:
        parser: argparse.ArgumentParser = commands.add_parser(
            name, help=help_text, description=help_text
        )
        parser.set_defaults(run=run)
        return parser

    p = sub("init", "create a keystore with a new pseudonym in --home", cmd_init)
    p.add_argument("--nick", required=True, help="a local name for this pseudonym")
    p.add_argument("--no-passphrase", action="store_true", help="store keys unencrypted")
    p.add_argument("--fast-kdf", action="store_true", help=argparse.SUPPRESS)

    p = sub("address", "print this pseudonym's address", cmd_address)
    p.add_argument("--json", action="store_true")

    p = sub("run", "run the node in the foreground as an onion service", cmd_run)
    p.add_argument("--testnet", metavar="DIR", help="use the private Tor network in DIR")
    p.add_argument(
        "--bootstrap",
        metavar="FILE_OR_DIR",
        action="append",
        help="also join the DHT through these contacts (a bootstrap list, or one per line)",
    )
    p.add_argument("--pow-bits", type=int, default=RESTING_EFFORT, help=argparse.SUPPRESS)
    p.add_argument("--auto-answer", action="store_true", help="answer calls unattended")
    p.add_argument("--play", metavar="WAV", help="audio to send in auto-answered calls")
    p.add_argument("--record", metavar="WAV", help="record auto-answered calls here")
    p.add_argument("--echo-bot", action="store_true", help="answer every message (demo peer)")
    p.add_argument("--restart-command", default="", help=argparse.SUPPRESS)
    p.add_argument(
        "--bootstrap-timeout",
        type=float,
        default=300.0,
        metavar="SECONDS",
        help="give up if tor has not connected within this (default 300)",
    )

    p = sub("tui", "the terminal UI (starts the node in the background if needed)", cmd_tui)
    p.add_argument("--testnet", metavar="DIR", help="a node started here uses this private network")
