"""``anonsip demo``: a private Tor network, a demo peer and the terminal UI in one command.

Everything runs on this machine with no Internet and no configuration::

    DIR/testnet/     the private Tor network (authorities and relays)
    DIR/peer/        the demo peer's home (nick "demo-peer"): echo bot, answers calls
    DIR/me/          the user's home (nick "you")
    DIR/peer.log     output of the two node processes
    DIR/me.log
    DIR/voice.wav    what the demo peer says when it answers a call

Both identities are unencrypted (demo keys only). The two nodes become
mutual contacts through the control API before the UI opens, so the user
can write at once. With ``bridge=True`` the demo also runs an obfs4 bridge
of its network (``DIR/testnet/bridge``) and the user's node enters through
it, as ``anonsip run --bridge LINE`` does where Tor is blocked. Quitting
the UI, Ctrl-C or SIGTERM stop the nodes and the network (unless it was
already running, or ``--keep``).
"""

from __future__ import annotations

import logging
import shutil
import signal
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import trio

from anonsip._errors import LocalError
from anonsip.control import MessageView
from anonsip.demo._clip import make_voice_clip
from anonsip.demo._network import private_network
from anonsip.node import Home
from anonsip.nodeproc import NodeProcess, init_home, run_node, sole_error
from onion.testnet import start_bridge

__all__ = [
    "DEFAULT_DIR",
    "GREETING",
    "ME_NICK",
    "PEER_NICK",
    "DemoError",
    "DemoLayout",
    "befriend",
    "run_demo",
]

log = logging.getLogger(__name__)

DEFAULT_DIR = "~/.anonsip-demo"
PEER_NICK = "demo-peer"
ME_NICK = "you"
GREETING = (
    "Hi! I am the demo peer, a second anonsip node on this machine's private Tor network. "
    "Write anything and I will echo it back."
)
# Proof of work deters strangers; the demo's private network has none, and a
# lower cost keeps the first message (the greeting) quick.
DEMO_POW_BITS = "16"
GREETING_TIMEOUT = 90.0

Say = Callable[[str], None]


class DemoError(LocalError):
    """The demo cannot run here; the message says what to install or do."""


@dataclass(frozen=True, kw_only=True)
class DemoLayout:
    """Where the demo keeps its files under one directory."""

    root: Path

    @property
    def testnet(self) -> Path:
        return self.root / "testnet"

    @property
    def peer_home(self) -> Path:
        return self.root / "peer"

    @property
    def me_home(self) -> Path:
        return self.root / "me"

    @property
    def peer_output(self) -> Path:
        return self.root / "peer.log"

    @property
    def me_output(self) -> Path:
        return self.root / "me.log"

    @property
    def voice(self) -> Path:
        return self.root / "voice.wav"


async def befriend(
    me: NodeProcess,
    peer: NodeProcess,
    *,
    me_nick: str = ME_NICK,
    peer_nick: str = PEER_NICK,
    greeting: str = GREETING,
    timeout: float = GREETING_TIMEOUT,
) -> bool:
    """Make two running nodes mutual contacts, accepted both ways; False if the
    greeting that settles it was not delivered within ``timeout`` (it stays queued).

    ``contacts.add`` on each side makes each a contact the other asked for
    ("requested"). A message between two such nodes accepts both: the
    receiver takes a message from a contact it asked for as the answer, and
    the sender does the same on the 200. So the peer greets us, and the
    delivery receipt means both sides say "accepted".
    """
    me_address = (await me.call("identity"))["address"]
    peer_address = (await peer.call("identity"))["address"]
    mine = await me.call("contacts.add", address=peer_address, nick=peer_nick)
    theirs = await peer.call("contacts.add", address=me_address, nick=me_nick)
    if mine["state"] == "accepted" and theirs["state"] == "accepted":
        return True
    with trio.move_on_after(timeout):
        async with peer.client() as client:
            await client.subscribe()
            sent = MessageView.decode(await client.call("send", peer=me_address, text=greeting))
            async for event in client.events():
                if event.event != "message":
                    continue
                view = MessageView.decode(event.data)
                if view.message_id == sent.message_id and view.state.value == "delivered":
                    return True
    return False


def _check_programs() -> None:
    for program, package in (("tor", "tor"), ("tor-gencert", "tor")):
        if shutil.which(program) is None:
            raise DemoError(
                f"the demo needs the {program} program, which is not installed; "
                f"install it with: sudo apt-get install {package} (or run ./go demo)"
            )


def _private_dir(path: Path) -> Path:
    path = path.expanduser().absolute()
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    return path


async def _bridge_options(layout: DemoLayout, bridge: bool, say: Say) -> list[str]:
    """The user's node's bridge: the demo's own obfs4 bridge, or none (kept ones forgotten)."""
    home = Home(layout.me_home)
    if home.bridges():
        home.remove_bridges("all")  # a bridge of an earlier demo's network is gone
    if not bridge:
        return []
    _, line = await start_bridge(layout.testnet, address="127.0.0.1")
    say(
        f"an obfs4 bridge of the private network listens on {line.address}; your node enters"
        " through it (the demo peer connects directly)"
    )
    return ["--bridge", line.line()]


async def _start_nodes(
    layout: DemoLayout,
    voice: Path | None,
    say: Say,
    ui: Callable[[NodeProcess], Awaitable[None]],
    bridge: bool = False,
) -> None:
    peer_options = ["--echo-bot", "--auto-answer", "--pow-bits", DEMO_POW_BITS]
    if voice is not None:
        peer_options += ["--play", str(voice)]
    my_options = ["--pow-bits", DEMO_POW_BITS, *await _bridge_options(layout, bridge, say)]
    async with (
        run_node(
            "demo peer",
            layout.peer_home,
            testnet=layout.testnet,
            output=layout.peer_output,
            options=peer_options,
        ) as peer,
        run_node(
            "your",
            layout.me_home,
            testnet=layout.testnet,
            output=layout.me_output,
            options=my_options,
        ) as me,
    ):
        try:
            say("starting the demo peer and your node (each bootstraps its own tor)…")
            async with trio.open_nursery() as nursery:
                nursery.start_soon(peer.wait_ready)
                nursery.start_soon(me.wait_ready)
            say("both nodes are running; making you and demo-peer contacts…")
            if await befriend(me, peer):
                say("you and demo-peer are contacts, accepted both ways")
            else:
                say("demo-peer's hello is still on its way; it will show up in the UI")
            await ui(me)
        finally:
            say("stopping the nodes…")


async def run_demo(
    directory: str | Path = DEFAULT_DIR,
    *,
    keep: bool = False,
    bridge: bool = False,
    say: Say,
    ui_command: Callable[[Path], list[str]] | None = None,
) -> int:
    """Run the whole demo; return the exit status (the UI's, or 130 if interrupted)."""
    _check_programs()
    layout = DemoLayout(root=_private_dir(Path(directory)))
    command = ui_command or (lambda socket: [sys.executable, "-m", "tui", str(socket)])
    begun = trio.current_time()
    status = 130

    async def open_ui(me: NodeProcess) -> None:
        nonlocal status
        say(
            f"ready after {trio.current_time() - begun:.0f} s; opening the terminal UI "
            "(ctrl-n opens the conversation, Enter sends, F1 help, ctrl-q quits)"
        )
        # Attached to this terminal; the nodes live in their own sessions.
        result = await trio.run_process(command(me.control_path), stdin=None, check=False)
        status = result.returncode

    say(f"anonsip demo in {layout.root}")
    say(
        "note: the demo's keys are stored UNENCRYPTED (no passphrase) in "
        f"{layout.me_home} and {layout.peer_home}; use them for this demo only"
    )
    try:
        await _run(layout, keep, say, open_ui, bridge)
    except BaseExceptionGroup as group:
        error = sole_error(group)
        if error is group:
            raise
        raise error from None
    say("demo stopped")
    return status


async def _run(
    layout: DemoLayout,
    keep: bool,
    say: Say,
    open_ui: Callable[[NodeProcess], Awaitable[None]],
    bridge: bool = False,
) -> None:
    async with trio.open_nursery() as nursery:
        nursery.start_soon(_stop_on_signal, nursery.cancel_scope, say)
        voice = await make_voice_clip(layout.voice)
        async with trio.open_nursery() as homes:
            for home, nick in ((layout.peer_home, PEER_NICK), (layout.me_home, ME_NICK)):
                homes.start_soon(partial(trio.to_thread.run_sync, init_home, home, nick))
        async with private_network(layout.testnet, keep=keep, say=say):
            await _start_nodes(layout, voice, say, open_ui, bridge)
        nursery.cancel_scope.cancel()


async def _stop_on_signal(scope: trio.CancelScope, say: Say) -> None:
    # Ctrl-C before the UI runs (the UI reads ctrl-c as a key), SIGTERM, SIGHUP.
    # Catching them here means a second Ctrl-C cannot cut the clean-up short.
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM, signal.SIGHUP) as signals:
        async for signum in signals:
            if not scope.cancel_called:
                say(f"{signal.Signals(signum).name}: stopping everything the demo started…")
                scope.cancel()
