"""The demo's private Tor network: reuse one that is up in the directory, or start one.

Whoever started the network stops it; a network the demo found running
(``anonsip testnet up``, or an earlier ``demo --keep``) is left alone.
"""

from __future__ import annotations

import contextlib
import logging
import shutil
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import trio

from onion import OnionError
from onion.testnet import TestnetInfo, network_status, start_network, stop_network

__all__ = ["private_network"]

log = logging.getLogger(__name__)

STOP_TIMEOUT = 30.0
UP_TIMEOUT = 180.0


async def _usable(directory: Path) -> bool:
    if not (directory / "testnet.json").exists():
        return False
    try:
        report = await network_status(directory)
    except OnionError as exc:
        log.info("the network in %s is not usable: %s", directory, exc)
        return False
    return bool(report["usable"])


async def _stop(directory: Path) -> list[int]:
    with trio.CancelScope(shield=True), trio.move_on_after(STOP_TIMEOUT):
        return await stop_network(directory)
    return []


@contextlib.asynccontextmanager
async def private_network(
    directory: Path, *, keep: bool, say: Callable[[str], None]
) -> AsyncIterator[TestnetInfo]:
    """A usable private Tor network in ``directory`` for the duration of the block."""
    if await _usable(directory):
        say(f"using the private Tor network already running in {directory}")
        yield TestnetInfo.load(directory)
        return
    if (directory / "testnet.json").exists():
        # Left over from a run that was killed: stop whatever of it still runs.
        await _stop(directory)
    if directory.exists():
        # Tors restarted on an old network's cached state (consensus, relay ports)
        # stall; fresh keys take two seconds, so start from nothing.
        shutil.rmtree(directory)
    say("starting a private Tor network (about 20 s)…")
    try:
        info = await start_network(
            directory, timeout=UP_TIMEOUT
        )  # it stops what it started if it fails
    except trio.TooSlowError:
        raise OnionError(
            f"the private Tor network did not come up in {UP_TIMEOUT:.0f} s; "
            f"see the tor logs in {directory}/*/notice.log"
        ) from None
    say(f"private Tor network up in {info.up_seconds} s ({len(info.nodes)} tor processes)")
    try:
        yield info
    finally:
        if keep:
            say(
                "leaving the private Tor network running; stop it with: "
                f"anonsip testnet down --dir {directory}"
            )
        else:
            stopped = await _stop(directory)
            say(f"stopped the private Tor network ({len(stopped)} tor processes)")
