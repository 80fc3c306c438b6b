"""Run the real terminal UI against a real ControlServer fronting an in-memory node.

The node double keeps its state in dicts and implements the operations of
docs/control-api.md; the test drives it (publishing events) from trio. The
UI's asyncio loop runs in a worker thread, fed keys through a pipe input;
after every render it hands a snapshot (screen text, view state) back to
trio, where the test waits on it: no sleeps.
"""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import trio
from prompt_toolkit.data_structures import Size
from prompt_toolkit.input import PipeInput, create_pipe_input
from prompt_toolkit.layout.mouse_handlers import MouseHandlers
from prompt_toolkit.layout.screen import Screen as PtScreen
from prompt_toolkit.layout.screen import WritePosition
from prompt_toolkit.output import DummyOutput

from anonsip import LocalError
from anonsip.control import (
    OPERATIONS,
    AudioDevicesView,
    CallDirection,
    CallState,
    CallStatsView,
    CallView,
    ContactState,
    ContactView,
    ControlServer,
    DhtView,
    IdentityView,
    MessageDirection,
    MessageState,
    MessageView,
    NodePhase,
    PresenceStatus,
    PresenceView,
    RegistrationView,
    RequestView,
    SafetyNumberView,
    StatusView,
    TorView,
    View,
)
from tui._app import Screen, TerminalUI, run_terminal_ui
from tui._model import ViewState

ALICE = "asip1qalice7xk2m9v0c4d8e3w5r6t7y8u9i0p"
BOB = "asip1qbob5hz3n8s2f7g6j4k1l0m9n8b7v6c5x"
CAROL = "asip1qcarol2w3e4r5t6y7u8i9o0p1a2s3d4f5"
ME = "asip1qgrvjvz2ufa0ukx0805ygylxnays55d9vdvnjqjven8h9lpefj2lq6c7kcz"
SAFETY = "12345 67890 11111 22222 33333 44444 55555 66666 77777 88888 99999 00000"
RESTART = "anonsip --home /home/h/.anonsip tui --testnet /srv/tn"
T0 = 1_700_000_000.0
CALL_SECONDS = 151.0  # how long every answered call of the double lasts: "call, 2:31"

WAIT = 15  # seconds before a wait counts as failed; waits end on events, never on time


class NodeDouble:
    """The operations of docs/control-api.md over plain dicts of the schema's views.

    Replies and events are the views' ``encode()``, as the node sends them;
    arguments are parsed with the schema's strict ``parse_args``, so the UI's
    requests are checked against the same schema the node checks them with.
    """

    def __init__(self) -> None:
        self.server: ControlServer | None = None
        self.status = StatusView(
            phase=NodePhase.RUNNING,
            tor=TorView(progress=100, phase="Done"),
            onion_address="meonion.onion",
            identity=IdentityView(nick="me", address=ME, sip_uri=f"sip:{ME}@anonsip.invalid"),
            dht=DhtView(routing_table=7, records=2),
            registration=RegistrationView(state="registered", period=1, seq=3),
            presence=PresenceView(status=PresenceStatus.AVAILABLE),
            restart=RESTART,
        )
        self.contacts: dict[str, ContactView] = {}
        self.presence: dict[str, PresenceView] = {}
        self.messages: dict[str, list[MessageView]] = {}
        self.requests: dict[str, RequestView] = {}
        self.calls: dict[str, CallView] = {}
        self.devices = AudioDevicesView(
            inputs=("Built-in Microphone", "USB Headset Mic"),
            outputs=("Built-in Speakers", "USB Headset"),
        )
        self.ops: list[tuple[str, dict[str, Any]]] = []
        self._ids = itertools.count(1)

    # -- driving it from the test --------------------------------------------------

    def publish(self, event: str, view: View) -> None:
        assert self.server is not None
        self.server.publish(event, view.encode())

    def set_status(self, **changes: Any) -> None:
        self.status = dataclasses.replace(self.status, **changes)
        self.publish("status", self.status)

    def contact_view(self, address: str) -> ContactView:
        contact = self.contacts[address]
        presence = self.presence.get(address, PresenceView(address=address))
        queued = sum(1 for m in self.messages.get(address, []) if m.state is MessageState.QUEUED)
        return dataclasses.replace(
            contact, presence=presence.status, note=presence.note, queued=queued
        )

    def add_contact(
        self, address: str, nick: str, presence: str = "available", **extra: Any
    ) -> None:
        self.contacts[address] = ContactView(address=address, nick=nick, **extra)
        self.presence[address] = PresenceView(address=address, status=PresenceStatus(presence))

    def publish_contact(self, address: str) -> None:
        self.publish("contact", self.contact_view(address))

    def set_presence(self, address: str, presence: str, note: str = "") -> None:
        self.presence[address] = PresenceView(
            address=address, status=PresenceStatus(presence), note=note
        )
        self.publish("presence", self.presence[address])

    def message(self, address: str, message_id: str) -> MessageView:
        return next(m for m in self.messages[address] if m.message_id == message_id)

    def advance(self, address: str, message_id: str, state: str) -> None:
        messages = self.messages[address]
        for index, message in enumerate(messages):
            if message.message_id == message_id:
                messages[index] = dataclasses.replace(message, state=MessageState(state))
                self.publish("message", messages[index])
                return
        raise AssertionError(f"no message {message_id}")

    def history_of(self, address: str, *texts: str, start: float = T0) -> None:
        """Messages already in the store (they come with ``history``), alternating in/out."""
        for index, text in enumerate(texts):
            self.messages.setdefault(address, []).append(
                MessageView(
                    peer=address,
                    message_id=f"h{next(self._ids)}",
                    direction=MessageDirection.OUT if index % 2 else MessageDirection.IN,
                    text=text,
                    time=start + index,
                    state=MessageState.DELIVERED if index % 2 else MessageState.RECEIVED,
                )
            )

    def receive_message(self, address: str, text: str) -> None:
        message = MessageView(
            peer=address,
            message_id=f"in{next(self._ids)}",
            direction=MessageDirection.IN,
            text=text,
            time=T0,
            state=MessageState.RECEIVED,
        )
        self.messages.setdefault(address, []).append(message)
        contact = self.contacts[address]
        self.contacts[address] = dataclasses.replace(contact, unread=contact.unread + 1)
        self.publish("message", message)

    def offer_call(self, address: str) -> str:
        call_id = f"call{next(self._ids)}"
        self.calls[call_id] = CallView(
            call_id=call_id, peer=address, direction=CallDirection.IN, state=CallState.RINGING
        )
        self.publish("call", self.calls[call_id])
        return call_id

    def update_call(self, call_id: str, **changes: Any) -> None:
        self.calls[call_id] = dataclasses.replace(self.calls[call_id], **changes)
        self.publish("call", self.calls[call_id])

    def end_call(self, call_id: str, reason: str) -> None:
        """The call ends; as the node does, with its final figures if it was answered."""
        call = self.calls.pop(call_id)
        stats = None
        if call.started is not None:
            stats = CallStatsView(call_id=call_id, peer=call.peer, duration_s=CALL_SECONDS)
        ended = dataclasses.replace(call, state=CallState.ENDED, reason=reason, stats=stats)
        self.publish("call", ended)

    def call_stats(self, call_id: str, **figures: Any) -> None:
        call = self.calls[call_id]
        self.publish("call.stats", CallStatsView(call_id=call_id, peer=call.peer, **figures))

    def request(self, address: str, text: str) -> None:
        self.requests[address] = RequestView(address=address, text=text, time=T0)
        self.publish("request", self.requests[address])

    def called(self, op: str) -> list[dict[str, Any]]:
        return [args for name, args in self.ops if name == op]

    # -- the operations ----------------------------------------------------------------

    def handlers(self) -> dict[str, Callable[[Mapping[str, Any]], Any]]:
        table: dict[str, Callable[[Any], Any]] = {
            "status": lambda args: self.status.encode(),
            "identity": lambda args: self.status.identity.encode(),
            "contacts.list": lambda args: [self.contact_view(a).encode() for a in self.contacts],
            "contacts.add": self._contacts_add,
            "contacts.verify": self._contacts_verify,
            "contacts.remove": self._contacts_remove,
            "safety_number": self._safety_number,
            "send": self._send,
            "history": self._history,
            "read": self._read,
            "requests": lambda args: [r.encode() for r in self.requests.values()],
            "accept": self._accept,
            "decline": self._decline,
            "block": self._block,
            "unblock": lambda args: None,
            "presence.set": self._presence_set,
            "call": self._call,
            "answer": self._answer,
            "call.decline": lambda args: self.end_call(self._the_call(args).call_id, "declined"),
            "hangup": lambda args: self.end_call(self._the_call(args).call_id, "hung-up"),
            "call.mute": self._mute,
            "call.hold": self._hold,
            "call.transfer_answer": self._transfer_answer,
            "calls": lambda args: [c.encode() for c in self.calls.values()],
            "audio.devices": lambda args: self.devices.encode(),
        }

        def recorded(name: str, fn: Callable[[Any], Any]) -> Any:
            async def handler(raw: Mapping[str, Any]) -> Any:
                self.ops.append((name, dict(raw)))
                return fn(OPERATIONS[name].parse_args(raw))

            return handler

        return {name: recorded(name, fn) for name, fn in table.items()}

    def _peer(self, peer: str) -> str:
        """As the node resolves a ``peer``: nick in any case, address or sip: URI."""
        for address, contact in self.contacts.items():
            if peer in (address, f"sip:{address}") or contact.nick.casefold() == peer.casefold():
                return address
        if peer.startswith("asip1"):
            return peer
        raise LocalError(
            f"'{peer}' is neither a contact's name nor an address ('{peer}' is not an anonsip"
            " address: it must start with 'asip1')"
        )

    def _contacts_add(self, args: Any) -> Any:
        address = self._peer(args.address)
        old = self.contacts.get(address)
        if old is None:
            self.contacts[address] = ContactView(
                address=address, nick=args.nick, state=ContactState.REQUESTED
            )
            self.presence[address] = PresenceView(address=address)
        else:
            self.contacts[address] = dataclasses.replace(old, nick=args.nick)
        self.publish_contact(address)
        return self.contact_view(address).encode()

    def _contacts_verify(self, args: Any) -> Any:
        address = self._peer(args.peer)
        self.contacts[address] = dataclasses.replace(self.contacts[address], verified=args.verified)
        self.publish_contact(address)
        return self.contact_view(address).encode()

    def _contacts_remove(self, args: Any) -> Any:
        address = self._peer(args.peer)
        if address not in self.contacts:
            raise LocalError("there is no such contact")
        del self.contacts[address]
        self.messages[address] = [
            dataclasses.replace(m, state=MessageState.FAILED)
            if m.state is MessageState.QUEUED
            else m
            for m in self.messages.get(address, [])
        ]
        self.publish("contact", ContactView(address=address, state=ContactState.REMOVED))

    def _safety_number(self, args: Any) -> Any:
        self._peer(args.peer)
        return SafetyNumberView(safety_number=SAFETY).encode()

    def _send(self, args: Any) -> Any:
        address = self._peer(args.peer)
        if address not in self.contacts:
            self.contacts[address] = ContactView(
                address=address, nick=address[:16], state=ContactState.REQUESTED
            )
            self.publish_contact(address)
        message = MessageView(
            peer=address,
            message_id=f"m{next(self._ids)}",
            direction=MessageDirection.OUT,
            text=args.text,
            time=T0 + 100,
            state=MessageState.QUEUED,
        )
        self.messages.setdefault(address, []).append(message)
        self.publish("message", message)
        return message.encode()

    def _history(self, args: Any) -> Any:
        address = self._peer(args.peer)
        return [m.encode() for m in self.messages.get(address, [])[-args.limit :]]

    def _read(self, args: Any) -> Any:
        address = self._peer(args.peer)
        if address in self.contacts:
            self.contacts[address] = dataclasses.replace(self.contacts[address], unread=0)

    def _accept(self, args: Any) -> Any:
        request = self.requests.pop(args.address)
        self.add_contact(request.address, args.nick or request.address[:16])
        self.publish_contact(request.address)
        return self.contact_view(request.address).encode()

    def _decline(self, args: Any) -> Any:
        if self.requests.pop(args.address, None) is None:
            raise LocalError("there is no contact request from that address")

    def _block(self, args: Any) -> Any:
        self.requests.pop(args.address, None)

    def _presence_set(self, args: Any) -> Any:
        own = PresenceView(status=PresenceStatus(args.status), note=args.note or "")
        self.set_status(presence=own)

    def _call(self, args: Any) -> Any:
        address = self._peer(args.peer)
        call_id = f"call{next(self._ids)}"
        self.calls[call_id] = CallView(call_id=call_id, peer=address, state=CallState.CALLING)
        self.publish("call", self.calls[call_id])
        return self.calls[call_id].encode()

    def _the_call(self, args: Any) -> CallView:
        if args.call_id not in self.calls:
            raise LocalError("there is no such call")
        return self.calls[args.call_id]

    def _answer(self, args: Any) -> Any:
        call = self._the_call(args)
        self.update_call(call.call_id, state=CallState.ACTIVE, started=T0)

    def _mute(self, args: Any) -> Any:
        self.update_call(self._the_call(args).call_id, muted=args.muted)

    def _hold(self, args: Any) -> Any:
        state = CallState.HELD if args.held else CallState.ACTIVE
        self.update_call(self._the_call(args).call_id, held=args.held, state=state)

    def _transfer_answer(self, args: Any) -> Any:
        self.update_call(self._the_call(args).call_id, transfer_to="")


class SizedOutput(DummyOutput):
    """A DummyOutput with a terminal size the test chooses (and may change)."""

    def __init__(self, columns: int, rows: int) -> None:
        self.size = Size(rows=rows, columns=columns)

    def get_size(self) -> Size:
        return self.size


@dataclasses.dataclass(frozen=True)
class Snapshot:
    text: str  # what the terminal shows, one line per row
    state: ViewState
    screen: Screen
    input_text: str
    size: Size

    def has(self, *parts: str) -> bool:
        return all(part in self.text for part in parts)


def screen_text(ui: TerminalUI, size: Size) -> str:
    """Draw the UI's layout into a fresh prompt_toolkit Screen and read it back as text."""
    screen = PtScreen()
    ui.app.layout.container.write_to_screen(
        screen,
        MouseHandlers(),
        WritePosition(xpos=0, ypos=0, width=size.columns, height=size.rows),
        parent_style="",
        erase_bg=False,
        z_index=None,
    )
    screen.draw_all_floats()
    rows = []
    for y in range(size.rows):
        row = screen.data_buffer[y]
        rows.append("".join(row[x].char for x in range(size.columns)).rstrip())
    return "\n".join(rows)


class Watch:
    """The latest snapshot of the UI, and a way to wait until one satisfies a test."""

    def __init__(self) -> None:
        self.latest: Snapshot | None = None
        self._changed = trio.Event()

    def update(self, snapshot: Snapshot) -> None:
        self.latest = snapshot
        self._changed.set()
        self._changed = trio.Event()

    async def until(self, predicate: Callable[[Snapshot], bool], what: str) -> Snapshot:
        try:
            with trio.fail_after(WAIT):
                while self.latest is None or not predicate(self.latest):
                    await self._changed.wait()
        except trio.TooSlowError:
            shown = self.latest.text if self.latest else "(nothing rendered)"
            raise AssertionError(f"the UI never showed {what}; last screen:\n{shown}") from None
        return self.latest

    async def shows(self, *parts: str) -> Snapshot:
        return await self.until(lambda s: s.has(*parts), " and ".join(map(repr, parts)))


@dataclasses.dataclass
class Running:
    node: NodeDouble
    watch: Watch
    keys: PipeInput
    output: SizedOutput
    stop_node: Callable[[], None]

    def type(self, text: str) -> None:
        self.keys.send_text(text)


KEY = {
    "enter": "\r",
    "tab": "\t",
    "up": "\x1b[A",
    "down": "\x1b[B",
    "ctrl-a": "\x01",
    "ctrl-d": "\x04",
    "ctrl-n": "\x0e",
    "ctrl-q": "\x11",
    "f1": "\x1bOP",
    "f2": "\x1bOQ",
    "f3": "\x1bOR",
    "f4": "\x1bOS",
    "f5": "\x1b[15~",
    "f6": "\x1b[17~",
    "f7": "\x1b[18~",
    "f8": "\x1b[19~",
    "f9": "\x1b[20~",
    "escape": "\x1b",
    "shift-tab": "\x1b[Z",
    "pageup": "\x1b[5~",
    "pagedown": "\x1b[6~",
}


def click(column: int, row: int) -> str:
    """An SGR mouse press and release at 0-based (column, row)."""
    return f"\x1b[<0;{column + 1};{row + 1}M\x1b[<0;{column + 1};{row + 1}m"


def wheel(column: int, row: int, *, up: bool) -> str:
    """One turn of the mouse wheel (SGR) at 0-based (column, row)."""
    return f"\x1b[<{64 if up else 65};{column + 1};{row + 1}M"


def paste(text: str) -> str:
    """``text`` as a terminal sends a paste in bracketed-paste mode."""
    return f"\x1b[200~{text}\x1b[201~"


@asynccontextmanager
async def running_ui(
    tmp_path: Path,
    node: NodeDouble,
    *,
    columns: int = 80,
    rows: int = 24,
    notice_seconds: float = 60.0,
) -> AsyncIterator[Running]:
    socket_path = str(tmp_path / "control.sock")
    token = trio.lowlevel.current_trio_token()
    watch = Watch()
    output = SizedOutput(columns, rows)

    def on_render(ui: TerminalUI) -> None:  # runs on the UI's thread
        size = output.get_size()
        snapshot = Snapshot(
            text=screen_text(ui, size),
            state=ui.state,
            screen=ui.screen,
            input_text=ui.input_buffer.text,
            size=size,
        )
        trio.from_thread.run_sync(watch.update, snapshot, trio_token=token)

    def ui_thread(keys: PipeInput) -> None:
        asyncio.run(
            run_terminal_ui(
                socket_path,
                input=keys,
                output=output,
                on_render=on_render,
                notice_seconds=notice_seconds,
                error_seconds=notice_seconds * 2,
            )
        )

    node_stop = trio.Event()

    async def serve(task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        async with ControlServer(socket_path, node.handlers()) as server:
            node.server = server
            task_status.started()
            await node_stop.wait()

    async def ui_task(keys: PipeInput) -> None:
        try:
            await trio.to_thread.run_sync(ui_thread, keys)
        finally:
            node_stop.set()  # the node outlives the UI unless a test stops it first

    with create_pipe_input() as keys:
        async with trio.open_nursery() as nursery:
            await nursery.start(serve)
            nursery.start_soon(ui_task, keys)
            try:
                yield Running(
                    node=node, watch=watch, keys=keys, output=output, stop_node=node_stop.set
                )
            finally:
                keys.send_text(KEY["ctrl-q"])
