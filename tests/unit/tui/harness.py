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
from anonsip.control import ControlServer
from tui._app import Screen, TerminalUI, run_terminal_ui
from tui._model import ViewState

ALICE = "asip1qalice7xk2m9v0c4d8e3w5r6t7y8u9i0p"
BOB = "asip1qbob5hz3n8s2f7g6j4k1l0m9n8b7v6c5x"
CAROL = "asip1qcarol2w3e4r5t6y7u8i9o0p1a2s3d4f5"
ME = "asip1qme0000000000000000000000000000000"
SAFETY = "12345 67890 11111 22222 33333 44444 55555 66666 77777 88888 99999 00000"

WAIT = 15  # seconds before a wait counts as failed; waits end on events, never on time


class NodeDouble:
    """The operations of docs/control-api.md over plain dicts."""

    def __init__(self) -> None:
        self.server: ControlServer | None = None
        self.tor: dict[str, Any] | None = {"progress": 100, "phase": "Done"}
        self.registration = "registered"
        self.contacts: dict[str, dict[str, Any]] = {}
        self.messages: dict[str, list[dict[str, Any]]] = {}
        self.requests: dict[str, dict[str, Any]] = {}
        self.calls: dict[str, dict[str, Any]] = {}
        self.ops: list[tuple[str, dict[str, Any]]] = []
        self._ids = itertools.count(1)

    # -- driving it from the test --------------------------------------------------

    def publish(self, event: str, data: Mapping[str, Any]) -> None:
        assert self.server is not None
        self.server.publish(event, data)

    def add_contact(self, address: str, nick: str, **extra: Any) -> None:
        self.contacts[address] = {
            "address": address,
            "nick": nick,
            "state": "accepted",
            "verified": False,
            "presence": "available",
            "note": "",
            "unread": 0,
            **extra,
        }

    def set_presence(self, address: str, presence: str, note: str = "") -> None:
        self.contacts[address].update(presence=presence, note=note)
        self.publish("contact", self.contacts[address])

    def advance(self, address: str, message_id: str, state: str) -> None:
        for message in self.messages[address]:
            if message["message_id"] == message_id:
                message["state"] = state
                self.publish("message", {"peer": address, **message})
                return
        raise AssertionError(f"no message {message_id}")

    def receive_message(self, address: str, text: str) -> None:
        message = {
            "message_id": f"in{next(self._ids)}",
            "direction": "in",
            "text": text,
            "time": 1_700_000_000.0,
            "state": "received",
        }
        self.messages.setdefault(address, []).append(message)
        self.contacts[address]["unread"] += 1
        self.publish("message", {"peer": address, **message})

    def offer_call(self, address: str) -> str:
        call_id = f"call{next(self._ids)}"
        self.calls[call_id] = {
            "call_id": call_id,
            "peer": address,
            "direction": "in",
            "state": "ringing",
            "started": None,
            "stats": {},
        }
        self.publish("call", self.calls[call_id])
        return call_id

    def request(self, address: str, text: str) -> None:
        self.requests[address] = {"address": address, "text": text, "time": 1_700_000_000.0}
        self.publish("request", self.requests[address])

    def called(self, op: str) -> list[dict[str, Any]]:
        return [args for name, args in self.ops if name == op]

    # -- the operations ----------------------------------------------------------------

    def handlers(self) -> dict[str, Callable[[Mapping[str, Any]], Any]]:
        table = {
            "status": self._status,
            "identity": self._identity,
            "contacts.list": self._contacts_list,
            "contacts.add": self._contacts_add,
            "contacts.verify": self._contacts_verify,
            "contacts.remove": self._contacts_remove,
            "safety_number": self._safety_number,
            "send": self._send,
            "history": self._history,
            "read": self._read,
            "requests": self._requests,
            "accept": self._accept,
            "decline": self._decline,
            "block": self._block,
            "presence.set": self._presence_set,
            "call": self._call,
            "answer": self._answer,
            "call.decline": self._call_decline,
            "hangup": self._hangup,
            "call.mute": self._mute,
            "calls": self._calls,
        }

        def recorded(name: str, fn: Callable[[dict[str, Any]], Any]) -> Any:
            async def handler(args: Mapping[str, Any]) -> Any:
                self.ops.append((name, dict(args)))
                return fn(dict(args))

            return handler

        return {name: recorded(name, fn) for name, fn in table.items()}

    def _peer(self, peer: str) -> str:
        for address, contact in self.contacts.items():
            if peer in (address, contact["nick"], f"sip:{address}"):
                return address
        raise LocalError(f"no contact called {peer!r}; add them with /add ADDRESS NICK")

    def status_result(self) -> dict[str, Any]:
        result: dict[str, Any] = {
            "onion_address": "meonion.onion",
            "identity": {},
            "dht": {"routing_table": 7, "records": 2},
            "registration": {"state": self.registration, "period": 1, "seq": 3, "expires": 0.0},
            "outbox": 0,
            "presence": {"status": "available"},
        }
        if self.tor is not None:
            result["tor"] = self.tor
        return result

    def _status(self, args: dict[str, Any]) -> Any:
        return self.status_result()

    def _identity(self, args: dict[str, Any]) -> Any:
        return {"nick": "me", "address": ME, "sip_uri": f"sip:{ME}", "fingerprint": "AB12 CD34"}

    def _contacts_list(self, args: dict[str, Any]) -> Any:
        return list(self.contacts.values())

    def _contacts_add(self, args: dict[str, Any]) -> Any:
        address = args["address"]
        if not address.startswith("asip1"):
            raise LocalError(f"{address!r} is not an anonsip address (they start with asip1)")
        self.add_contact(address, args.get("nick", ""), state="requested", presence="offline")
        return self.contacts[address]

    def _contacts_verify(self, args: dict[str, Any]) -> Any:
        contact = self.contacts[self._peer(args["peer"])]
        contact["verified"] = bool(args["verified"])
        return contact

    def _contacts_remove(self, args: dict[str, Any]) -> Any:
        del self.contacts[self._peer(args["peer"])]

    def _safety_number(self, args: dict[str, Any]) -> Any:
        self._peer(args["peer"])
        return {"safety_number": SAFETY}

    def _send(self, args: dict[str, Any]) -> Any:
        address = self._peer(args["peer"])
        message = {
            "message_id": f"m{next(self._ids)}",
            "direction": "out",
            "text": args["text"],
            "time": 1_700_000_000.0,
            "state": "queued",
        }
        self.messages.setdefault(address, []).append(message)
        return {"message_id": message["message_id"], "state": "queued"}

    def _history(self, args: dict[str, Any]) -> Any:
        address = self._peer(args["peer"])
        return self.messages.get(address, [])[-int(args.get("limit", 100)) :]

    def _read(self, args: dict[str, Any]) -> Any:
        self.contacts[self._peer(args["peer"])]["unread"] = 0

    def _requests(self, args: dict[str, Any]) -> Any:
        return list(self.requests.values())

    def _accept(self, args: dict[str, Any]) -> Any:
        request = self.requests.pop(args["address"])
        self.add_contact(request["address"], args.get("nick", ""))
        self.publish("contact", self.contacts[request["address"]])

    def _decline(self, args: dict[str, Any]) -> Any:
        self.requests.pop(args["address"])

    def _block(self, args: dict[str, Any]) -> Any:
        self.requests.pop(args["address"], None)

    def _presence_set(self, args: dict[str, Any]) -> Any:
        return None

    def _call(self, args: dict[str, Any]) -> Any:
        address = self._peer(args["peer"])
        call_id = f"call{next(self._ids)}"
        self.calls[call_id] = {
            "call_id": call_id,
            "peer": address,
            "direction": "out",
            "state": "calling",
            "started": None,
            "stats": {},
        }
        return {"call_id": call_id}

    def _the_call(self, args: dict[str, Any]) -> dict[str, Any]:
        call_id = args.get("call_id")
        if call_id not in self.calls:
            raise LocalError("there is no such call")
        return self.calls[call_id]

    def _answer(self, args: dict[str, Any]) -> Any:
        call = self._the_call(args)
        call.update(state="active", started=1_700_000_000.0)
        self.publish("call", {k: call[k] for k in ("call_id", "peer", "direction", "state")})

    def _end(self, args: dict[str, Any], reason: str) -> None:
        call = self.calls.pop(self._the_call(args)["call_id"])
        self.publish(
            "call",
            {"call_id": call["call_id"], "peer": call["peer"], "state": "ended", "reason": reason},
        )

    def _call_decline(self, args: dict[str, Any]) -> Any:
        self._end(args, "declined")

    def _hangup(self, args: dict[str, Any]) -> Any:
        self._end(args, "hung up")

    def _mute(self, args: dict[str, Any]) -> Any:
        self._the_call(args)["muted"] = bool(args["muted"])

    def _calls(self, args: dict[str, Any]) -> Any:
        return list(self.calls.values())


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
}


def click(column: int, row: int) -> str:
    """An SGR mouse press and release at 0-based (column, row)."""
    return f"\x1b[<0;{column + 1};{row + 1}M\x1b[<0;{column + 1};{row + 1}m"


@asynccontextmanager
async def running_ui(
    tmp_path: Path, node: NodeDouble, *, columns: int = 80, rows: int = 24
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
        asyncio.run(run_terminal_ui(socket_path, input=keys, output=output, on_render=on_render))

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
