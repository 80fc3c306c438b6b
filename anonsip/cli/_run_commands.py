"""The commands that make and start a node: ``init``, ``address``, ``run``, ``tui``.

Every command prints one clear line and exits non-zero on error.
Passphrases come from ``--passphrase-file``, ``ANONSIP_PASSPHRASE`` or a
prompt, never from the command line (it would show in ``ps``); so does a
tor control password (``--tor-control-password-file``,
``ANONSIP_TOR_CONTROL_PASSWORD``).

``run --bridge LINE`` keeps the bridge in the home (``anonsip bridges``
lists and removes them), so the next start uses it too. ``run
--tor-control PORT_OR_SOCKET`` drives a tor someone else runs instead of
launching one; the node then says what it does not control.
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
from anonsip.cli._client import given_passphrase, home_of, one_error, unlock
from anonsip.identity import FAST_INSECURE_KDF, MODERATE_KDF, WrongPassphrase
from anonsip.node import Home, NodeConfig, build_node
from onion import BootstrapStuck, ControlEndpoint, describe_bridges, transport_programs

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


def _tor_options(args: argparse.Namespace) -> list[str]:
    """The options that say which tor a started node uses (bridges are kept in the home)."""
    words = ["--testnet", str(Path(args.testnet).absolute())] if args.testnet else []
    if args.tor_control:
        words += ["--tor-control", args.tor_control]
    if args.tor_control_password_file:
        words += ["--tor-control-password-file", str(Path(args.tor_control_password_file))]
    return words


def _tor_control_password(args: argparse.Namespace) -> str | None:
    """From ``--tor-control-password-file`` or ``ANONSIP_TOR_CONTROL_PASSWORD`` (removed at
    once, so tor and whatever else we start never inherit it)."""
    from_env = os.environ.pop("ANONSIP_TOR_CONTROL_PASSWORD", None)
    if args.tor_control_password_file:
        try:
            text = Path(args.tor_control_password_file).read_text(encoding="utf-8")
        except OSError as exc:
            raise LocalError(f"cannot read the tor control password file: {exc.strerror}") from exc
        return text.splitlines()[0] if text else ""
    return from_env


def node_config(args: argparse.Namespace) -> NodeConfig:
    home = home_of(args)
    restart = args.restart_command or _shell_words(
        ["anonsip", "--home", str(home.path), "run", *_tor_options(args)]
    )
    if args.tor_control:
        ControlEndpoint.parse(args.tor_control)  # a typo is an error now, not at tor time
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
        bridges=tuple(b.line() for b in home.bridges()),
        tor_control=args.tor_control,
        tor_control_password=_tor_control_password(args),
    )


def _say_which_tor(home: Home, config: NodeConfig) -> None:
    """One clear paragraph on how the node reaches Tor, and what it does not control."""
    bridges = home.bridges()
    if config.tor_control is not None:
        print(
            f"attaching to the tor at {ControlEndpoint.parse(config.tor_control)}: anonsip"
            " does not control that tor's bridges, its network, its DataDirectory (what it"
            " keeps on disk) or its lifetime; it only publishes ephemeral onion services"
            " through it, which end with this node",
            flush=True,
        )
        if bridges:
            print(
                f"note: the {len(bridges)} bridges kept in {home.bridges_path} are not used:"
                " bridges are that tor's business (UseBridges and Bridge in its torrc)",
                flush=True,
            )
        if config.testnet is not None:
            print(
                "note: --testnet gives only the DHT contacts here; that tor must itself be"
                " on the private network",
                flush=True,
            )
    elif bridges:
        # Before tor starts: a missing transport program is one clear line, now.
        transport_programs(bridges)
        print(
            f"entering the Tor network through {describe_bridges(bridges)}"
            f" (kept in {home.bridges_path})",
            flush=True,
        )


def _with_bridge_advice(error: BaseException, home: Home, config: NodeConfig) -> BaseException:
    """A bootstrap that never reached a relay, without bridges: say how to use one."""
    if (
        isinstance(error, BootstrapStuck)
        and error.unreachable
        and not config.bridges
        and config.tor_control is None
    ):
        return LocalError(
            f"{error}\nTo enter through a bridge: anonsip --home {home.path} run --bridge"
            " 'obfs4 IP:PORT FINGERPRINT cert=… iat-mode=0' (get bridge lines from"
            " bridges.torproject.org or someone you trust; README: Where Tor is blocked)"
        )
    return error


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
    if args.bridge:
        kept = home.add_bridges(args.bridge)
        print(f"kept {len(args.bridge)} bridge(s) in {home.bridges_path} ({len(kept)} in all)")
    config = node_config(args)
    _say_which_tor(home, config)
    node = build_node(home, keys, config)
    print(f"anonsip node starting in {home.path}", flush=True)
    try:
        trio.run(node.run)
    except BaseException as exc:
        advised = _with_bridge_advice(one_error(exc), home, config)
        if advised is not one_error(exc):
            raise advised from None
        raise
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
        if args.bridge:
            home.add_bridges(args.bridge)  # validated here, where the error can be read
        options = _tor_options(args)
        restart = _shell_words(["anonsip", "--home", str(home.path), "tui", *options])
        command = [sys.executable, "-m", "anonsip.cli", "--home", str(home.path), "run"]
        command += [*options, "--restart-command", restart]
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

    _add_tor_options(p)

    p = sub("tui", "the terminal UI (starts the node in the background if needed)", cmd_tui)
    p.add_argument("--testnet", metavar="DIR", help="a node started here uses this private network")
    _add_tor_options(p)


def _add_tor_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--bridge",
        metavar="LINE",
        action="append",
        help="enter the Tor network through this bridge (repeatable; kept for the next starts:"
        " see `anonsip bridges`), e.g. 'obfs4 IP:PORT FINGERPRINT cert=… iat-mode=0'",
    )
    p.add_argument(
        "--tor-control",
        metavar="PORT_OR_SOCKET",
        help="use the tor already running there (9051, 127.0.0.1:9151 for Tor Browser's,"
        " /run/tor/control) instead of starting one; cookie or password authentication",
    )
    p.add_argument(
        "--tor-control-password-file",
        metavar="FILE",
        help="that tor's control password (HashedControlPassword); or ANONSIP_TOR_CONTROL_PASSWORD",
    )
