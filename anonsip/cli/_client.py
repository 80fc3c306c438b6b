"""What every command shares: the home, the passphrase, the node's control socket, output.

Control-API commands reach the node running in ``--home`` through its
socket and read its answers through the control schema's views. Errors a
user can act on come back as one line (``main`` prints them), never as a
traceback: ``one_error`` digs the single meaningful error out of the
exception groups trio's nurseries wrap it in.
"""

from __future__ import annotations

import argparse
import getpass
import json
import os
import secrets
import sys
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import trio

from anonsip._errors import LocalError
from anonsip.control import NodeNotRunning, TrioControlClient, View
from anonsip.identity import WrongPassphrase
from anonsip.node import Home, Unlocked

T = TypeVar("T")

__all__ = [
    "DEFAULT_HOME",
    "call_node",
    "emit",
    "given_passphrase",
    "home_of",
    "leaves",
    "one_error",
    "run_trio",
    "unlock",
]

DEFAULT_HOME = "~/.anonsip"


def home_of(args: argparse.Namespace) -> Home:
    return Home(args.home or os.environ.get("ANONSIP_HOME") or DEFAULT_HOME)


def given_passphrase(args: argparse.Namespace) -> str | None:
    """From ``--passphrase-file`` or ``ANONSIP_PASSPHRASE``; the variable is removed at once,
    so nothing this process starts (tor above all) inherits it."""
    from_env = os.environ.pop("ANONSIP_PASSPHRASE", None)
    if getattr(args, "passphrase_file", None):
        try:
            text = Path(args.passphrase_file).read_text(encoding="utf-8")
        except OSError as exc:
            raise LocalError(f"cannot read the passphrase file: {exc.strerror}") from exc
        return text.splitlines()[0] if text else ""
    return from_env


def unlock(args: argparse.Namespace) -> Unlocked:
    home = home_of(args)
    given = given_passphrase(args)
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


def leaves(group: BaseExceptionGroup[BaseException]) -> Iterator[BaseException]:
    for exc in group.exceptions:
        if isinstance(exc, BaseExceptionGroup):
            yield from leaves(exc)
        else:
            yield exc


def one_error(exc: BaseException) -> BaseException:
    """The error a user should see: the first leaf that is not a cancellation."""
    if not isinstance(exc, BaseExceptionGroup):
        return exc
    found = [e for e in leaves(exc) if not isinstance(e, trio.Cancelled)]
    return found[0] if found else exc


def run_trio(async_fn: Callable[..., Awaitable[T]], *args: Any) -> T:
    """``trio.run``, raising the one error a user should see instead of the group our
    nurseries wrap it in: Ctrl-C in a task inside a nursery comes out as
    ``KeyboardInterrupt`` again, so ``except KeyboardInterrupt`` around it works."""
    try:
        return trio.run(async_fn, *args)
    except BaseExceptionGroup as group:
        raise one_error(group) from None


def call_node(args: argparse.Namespace, op: str, **op_args: Any) -> Any:
    """Run ``op`` on the node in ``--home``; arguments left at None are not sent."""
    home = home_of(args)
    clean = {key: value for key, value in op_args.items() if value is not None}

    async def go() -> Any:
        async with TrioControlClient.connect(home.control_path) as client:
            return await client.call(op, **clean)

    try:
        return run_trio(go)
    except NodeNotRunning:
        raise NodeNotRunning(str(home.path)) from None


def emit(args: argparse.Namespace, result: Any, human: Callable[[Any], str]) -> int:
    """``--json`` prints the node's answer as JSON; otherwise ``human(result)``."""
    if getattr(args, "json", False):
        plain = result.encode() if isinstance(result, View) else result
        if isinstance(plain, list | tuple):
            plain = [item.encode() if isinstance(item, View) else item for item in plain]
        print(json.dumps(plain, default=str))
    else:
        text = human(result)
        if text:
            print(text)
    return 0
