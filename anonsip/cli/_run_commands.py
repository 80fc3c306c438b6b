"""The node's commands: ``init``, ``address``, ``run``, ``tui`` and the control-API
clients (``send``, ``history``, ``contacts``, ``requests``...).

Every command prints one clear line and exits non-zero on error; the
control-API commands talk to the node running in ``--home`` through its
socket. Passphrases come from ``--passphrase-file``, ``ANONSIP_PASSPHRASE``
or a prompt, never from the command line (it would show in ``ps``).
"""

from __future__ import annotations

import argparse
import getpass
import json
import logging
import os
import secrets
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import trio

from anonsip._errors import AnonsipError, LocalError
from anonsip.control import NodeNotRunning, TrioControlClient
from anonsip.identity import FAST_INSECURE_KDF, MODERATE_KDF, WrongPassphrase
from anonsip.node._call_cli import add_call_commands
from anonsip.node._home import Home, Unlocked
from anonsip.node._node import Node, NodeConfig

log = logging.getLogger(__name__)

DEFAULT_HOME = "~/.anonsip"


def home_of(args: argparse.Namespace) -> Home:
    return Home(args.home or os.environ.get("ANONSIP_HOME") or DEFAULT_HOME)


def _given_passphrase(args: argparse.Namespace) -> str | None:
    if getattr(args, "passphrase_file", None):
        try:
            text = Path(args.passphrase_file).read_text(encoding="utf-8")
        except OSError as exc:
            raise LocalError(f"cannot read the passphrase file: {exc.strerror}") from exc
        return text.splitlines()[0] if text else ""
    return os.environ.get("ANONSIP_PASSPHRASE")


def unlock(args: argparse.Namespace) -> Unlocked:
    home = home_of(args)
    given = _given_passphrase(args)
    if given is not None:
        return home.unlock(given, rng=secrets.token_bytes)
    try:
        return home.unlock(None, rng=secrets.token_bytes)
    except WrongPassphrase:
        if not sys.stdin.isatty():
            raise LocalError(
                "this keystore is encrypted: give the passphrase with ANONSIP_PASSPHRASE "
                "or --passphrase-file"
            ) from None
    return home.unlock(getpass.getpass("anonsip passphrase: "), rng=secrets.token_bytes)


# -- init / address / run ---------------------------------------------------------


def cmd_init(args: argparse.Namespace) -> int:
    home = home_of(args)
    passphrase = None if args.no_passphrase else _given_passphrase(args)
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


def node_config(args: argparse.Namespace) -> NodeConfig:
    return NodeConfig(
        testnet=Path(args.testnet).absolute() if args.testnet else None,
        bootstrap_dirs=tuple(Path(d) for d in args.bootstrap or ()),
        pow_difficulty=args.pow_bits,
        auto_answer=args.auto_answer,
        play=Path(args.play) if args.play else None,
        record=Path(args.record) if args.record else None,
        echo_bot=args.echo_bot,
    )


def cmd_run(args: argparse.Namespace) -> int:
    home = home_of(args)
    keys = unlock(args)
    file_log = logging.FileHandler(home.log_path)
    file_log.setFormatter(logging.Formatter("%(asctime)s %(name)s %(levelname)s %(message)s"))
    file_log.setLevel(logging.INFO)
    logging.getLogger().addHandler(file_log)
    logging.getLogger().setLevel(min(logging.getLogger().level, logging.INFO))
    node = Node(home, keys, node_config(args))
    from anonsip.node._services import install_services

    install_services(node)
    print(f"anonsip node {keys.identity.address.text} starting in {home.path}", flush=True)
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
        command = [sys.executable, "-m", "anonsip.cli", "--home", str(home.path), "run"]
        if args.testnet:
            command += ["--testnet", str(Path(args.testnet).absolute())]
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
    given = _given_passphrase(args)
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


# -- control-API clients ------------------------------------------------------------


def call_node(args: argparse.Namespace, op: str, **op_args: Any) -> Any:
    home = home_of(args)

    async def go() -> Any:
        async with TrioControlClient.connect(home.control_path) as client:
            return await client.call(op, **op_args)

    try:
        return trio.run(go)
    except NodeNotRunning:
        raise NodeNotRunning(str(home.path)) from None
    except BaseExceptionGroup as group:
        # The client's nursery wraps the one error a command can meet.
        leaves = list(_leaves(group))
        if len(leaves) == 1 and isinstance(leaves[0], AnonsipError):
            raise leaves[0] from None
        raise


def _leaves(group: BaseExceptionGroup[BaseException]) -> Any:
    for exc in group.exceptions:
        if isinstance(exc, BaseExceptionGroup):
            yield from _leaves(exc)
        else:
            yield exc


def _emit(args: argparse.Namespace, result: Any, human: Callable[[Any], str]) -> int:
    if getattr(args, "json", False):
        print(json.dumps(result, indent=None, default=str))
    else:
        text = human(result)
        if text:
            print(text)
    return 0


def _contacts_table(rows: Any) -> str:
    if not rows:
        return "no contacts yet; add one with: anonsip contacts add ADDRESS --nick NAME"
    lines = []
    for c in rows:
        mark = "✓" if c["verified"] else " "
        unread = f" ({c['unread']} unread)" if c.get("unread") else ""
        lines.append(
            f"{mark} {c['nick']:<16} {c['state']:<9} {c['presence']:<9} {c['address']}{unread}"
        )
    return "\n".join(lines)


def _history_text(rows: Any) -> str:
    import time as _time

    lines = []
    for m in rows:
        when = _time.strftime("%H:%M:%S", _time.localtime(m["time"]))
        arrow = "<-" if m["direction"] == "in" else "->"
        state = "" if m["direction"] == "in" else f"  [{m['state']}]"
        lines.append(f"{when} {arrow} {m['text']}{state}")
    return "\n".join(lines) or "no messages"


def add_node_commands(commands: Any) -> None:
    def sub(name: str, help_text: str, run: Callable[[argparse.Namespace], int]) -> Any:
        parser = commands.add_parser(name, help=help_text, description=help_text)
        parser.set_defaults(run=run)
        return parser

    add_call_commands(commands)  # call, answer, hangup, calls
    p = sub("init", "create a keystore with a new pseudonym in --home", cmd_init)
    p.add_argument("--nick", required=True, help="a local name for this pseudonym")
    p.add_argument("--no-passphrase", action="store_true", help="store keys unencrypted")
    p.add_argument("--fast-kdf", action="store_true", help=argparse.SUPPRESS)

    p = sub("address", "print this pseudonym's address", cmd_address)
    p.add_argument("--json", action="store_true")

    p = sub("run", "run the node in the foreground as an onion service", cmd_run)
    p.add_argument("--testnet", metavar="DIR", help="use the private Tor network in DIR")
    p.add_argument("--bootstrap", metavar="DIR", action="append", help="a DHT bootstrap list dir")
    p.add_argument("--pow-bits", type=int, default=20, help=argparse.SUPPRESS)
    p.add_argument("--auto-answer", action="store_true", help="answer calls unattended")
    p.add_argument("--play", metavar="WAV", help="audio to send in auto-answered calls")
    p.add_argument("--record", metavar="WAV", help="record auto-answered calls here")
    p.add_argument("--echo-bot", action="store_true", help="answer every message (demo peer)")

    p = sub("tui", "the terminal UI (starts the node in the background if needed)", cmd_tui)
    p.add_argument("--testnet", metavar="DIR", help="a node started here uses this private network")

    p = sub(
        "status",
        "the running node's state",
        lambda a: _emit(a, call_node(a, "status"), lambda r: json.dumps(r, indent=2)),
    )
    p.add_argument("--json", action="store_true")

    contacts = commands.add_parser("contacts", help="your contacts")
    csub = contacts.add_subparsers(dest="contacts_command", metavar="ACTION", required=True)
    p = csub.add_parser("add", help="add a contact by address")
    p.add_argument("address")
    p.add_argument("--nick", required=True)
    p.set_defaults(
        run=lambda a: _emit(
            a,
            call_node(a, "contacts.add", address=a.address, nick=a.nick),
            lambda r: f"added {r['nick']}",
        )
    )
    p = csub.add_parser("list", help="list contacts")
    p.add_argument("--json", action="store_true")
    p.set_defaults(run=lambda a: _emit(a, call_node(a, "contacts.list"), _contacts_table))
    p = csub.add_parser("remove", help="forget a contact")
    p.add_argument("peer")
    p.set_defaults(
        run=lambda a: _emit(a, call_node(a, "contacts.remove", peer=a.peer), lambda r: "removed")
    )
    p = csub.add_parser("verify", help="compare safety numbers and mark a contact verified")
    p.add_argument("peer")
    p.add_argument("--yes", action="store_true", help="mark verified (else just show the number)")
    p.set_defaults(run=cmd_verify)

    p = sub(
        "send",
        "send a message",
        lambda a: _emit(
            a, call_node(a, "send", peer=a.peer, text=a.text), lambda r: f"queued {r['message_id']}"
        ),
    )
    p.add_argument("peer", metavar="NICK_OR_ADDRESS")
    p.add_argument("text")

    p = sub(
        "history",
        "a conversation",
        lambda a: _emit(a, call_node(a, "history", peer=a.peer, limit=a.limit), _history_text),
    )
    p.add_argument("peer", metavar="NICK_OR_ADDRESS")
    p.add_argument("--limit", type=int, default=100)
    p.add_argument("--json", action="store_true")

    p = sub(
        "requests",
        "contact requests waiting for you",
        lambda a: _emit(
            a,
            call_node(a, "requests"),
            lambda rows: "\n".join(f"{r['address']}  {r['text']!r}" for r in rows) or "no requests",
        ),
    )
    p.add_argument("--json", action="store_true")

    for op in ("accept", "decline", "block", "unblock"):
        p = sub(op, f"{op} a contact request or address", _decision(op))
        p.add_argument("address")
        if op == "accept":
            p.add_argument("--nick")

    p = sub(
        "lookup",
        "find a pseudonym's registration in the DHT",
        lambda a: _emit(
            a, call_node(a, "lookup", address=a.address), lambda r: json.dumps(r, indent=2)
        ),
    )
    p.add_argument("address")
    p.add_argument("--json", action="store_true")

    sub(
        "shutdown",
        "stop the running node cleanly",
        lambda a: _emit(a, call_node(a, "shutdown"), lambda r: "stopping"),
    )


def _decision(op: str) -> Callable[[argparse.Namespace], int]:
    def run(args: argparse.Namespace) -> int:
        extra = {"nick": args.nick} if getattr(args, "nick", None) else {}
        call_node(args, op, address=args.address, **extra)
        print("done")
        return 0

    return run


def cmd_verify(args: argparse.Namespace) -> int:
    result = call_node(args, "safety_number", peer=args.peer)
    print(f"safety number: {result['safety_number']}")
    if args.yes:
        call_node(args, "contacts.verify", peer=args.peer, verified=True)
        print("marked verified")
    else:
        print("compare it with your contact in person, then run again with --yes")
    return 0
