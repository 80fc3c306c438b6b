"""The full-screen prompt_toolkit application: layout, keys, overlays.

Layout (usable from 80x24 up, follows resizes)::

    ┌ status bar: Node / Tor progress + phase │ DHT │ registration ───────────┐
    │ contacts pane │ conversation title                                      │
    │ ● alice ✓ (2) │ 12:01 alice: hi                                          │
    │ ◐ bob         │ 12:02 me: hello  ✓✓ delivered                            │
    ├ call bar (only during a call): peer, timer, mute, quality ──────────────┤
    │ > input line (history on up/down, /commands)                           │
    └ one-line notice: the last error or event worth telling ─────────────────┘

Floats: the incoming-call prompt (answer ctrl-a, decline ctrl-d, from any
screen) and one overlay screen at a time (help, requests, identity,
verify, add contact). prompt_toolkit renders; we only ``invalidate()`` when
the view state changes (and once a second while a call's timer runs).
Every node operation runs as a task in the application's ``TaskGroup``.
"""

from __future__ import annotations

import asyncio
import enum
import time
from collections.abc import Callable, Coroutine
from typing import Any

from prompt_toolkit.application import Application, get_app
from prompt_toolkit.buffer import Buffer
from prompt_toolkit.data_structures import Point
from prompt_toolkit.filters import Condition, has_focus
from prompt_toolkit.formatted_text import StyleAndTextTuples, fragment_list_to_text
from prompt_toolkit.history import InMemoryHistory
from prompt_toolkit.input import Input
from prompt_toolkit.key_binding import KeyBindings, KeyPressEvent
from prompt_toolkit.layout import (
    ConditionalContainer,
    Dimension,
    Float,
    FloatContainer,
    FormattedTextControl,
    HSplit,
    Layout,
    VSplit,
    Window,
)
from prompt_toolkit.layout.controls import BufferControl
from prompt_toolkit.layout.processors import BeforeInput
from prompt_toolkit.output import Output
from prompt_toolkit.styles import Style
from prompt_toolkit.widgets import Button, Frame, Label, TextArea

from anonsip.control import AsyncioControlClient
from tui import _model
from tui._call_bar import render_call_bar, render_incoming_call
from tui._commands import Command, UsageError, parse_command
from tui._contacts_pane import render_contacts
from tui._conversation_pane import render_conversation, render_conversation_title
from tui._help_screen import render_help
from tui._identity_screen import render_identity
from tui._requests_screen import render_requests
from tui._session import Session
from tui._status_bar import render_notice, render_status_bar
from tui._verify_screen import render_verify

__all__ = ["MAX_PENDING_OPS", "InputHistory", "Screen", "TerminalUI", "run_terminal_ui"]

MAX_PENDING_OPS = 32  # node operations in flight at once; more and the user is told to wait
HISTORY_LINES = 200

STYLE = Style.from_dict(
    {
        "status": "bg:#303030 #d0d0d0",
        "status.good": "bg:#303030 #5fd75f bold",
        "status.busy": "bg:#303030 #ffd75f",
        "status.bad": "bg:#5f0000 #ffffff bold",
        "status.alert": "bg:#303030 #ff875f bold",
        "notice": "#87d7ff",
        "notice.error": "#ff5f5f bold",
        "notice.hint": "#808080",
        "contact.selected": "reverse",
        "contact.open": "bold",
        "presence.available": "#5fd75f",
        "presence.away": "#ffd75f",
        "presence.busy": "#ff5f5f",
        "presence.offline": "#808080",
        "unread": "#ffaf00 bold",
        "verified": "#5fd75f",
        "unverified": "#ffaf00",
        "title": "bold",
        "title.presence": "#808080",
        "hint": "#808080 italic",
        "message.time": "#808080",
        "message.who": "bold",
        "message.out": "#87afff",
        "delivery.queued": "#808080",
        "delivery.sent": "#afafaf",
        "delivery.delivered": "#5fd75f",
        "delivery.failed": "#ff5f5f",
        "call": "bg:#005f00 #ffffff",
        "call.timer": "bg:#005f00 #ffffff bold",
        "call.muted": "bg:#af0000 #ffffff bold",
        "call.held": "bg:#af8700 #000000",
        "call.quality": "bg:#005f00 #d0d0d0",
        "call.hint": "bg:#005f00 #afafaf",
        "incoming": "bg:#af5f00 #ffffff bold",
        "incoming.keys": "bg:#af5f00 #ffffff",
        "screen.heading": "bold underline",
        "screen.key": "bold",
        "screen.value": "#87d7ff",
        "request.selected": "reverse",
        "prompt": "bold",
    }
)


class Screen(enum.Enum):
    """What is drawn over the main layout; MAIN is nothing."""

    MAIN = "main"
    HELP = "help"
    REQUESTS = "requests"
    IDENTITY = "identity"
    VERIFY = "verify"
    ADD_CONTACT = "add contact"


class InputHistory(InMemoryHistory):
    """The input line's history (up/down), kept to the last ``limit`` lines."""

    def __init__(self, limit: int = HISTORY_LINES) -> None:
        super().__init__()
        self._limit = limit

    def append_string(self, string: str) -> None:
        super().append_string(string)
        # The base class keeps every line in two lists; trim both to the limit.
        del self._loaded_strings[self._limit :]
        del self._storage[: -self._limit]


class TerminalUI:
    """One terminal UI attached to one control connection; ``await run()`` until quit."""

    def __init__(
        self,
        client: AsyncioControlClient,
        *,
        input: Input | None = None,
        output: Output | None = None,
        clock: Callable[[], float] = time.time,
        on_render: Callable[[TerminalUI], None] | None = None,
    ) -> None:
        self.session = Session(client, on_change=self._changed, clock=clock)
        self._clock = clock
        self.screen = Screen.MAIN
        self.request_index = 0
        self.verify_peer: str | None = None
        self._group: asyncio.TaskGroup | None = None
        self._pending: set[asyncio.Task[None]] = set()
        self._call_running = asyncio.Event()

        self.input_buffer = Buffer(
            multiline=False,
            history=InputHistory(),
            accept_handler=self._accept_line,
            name="input",
        )
        self.contacts_window = Window(
            FormattedTextControl(self._contacts_text, focusable=True, show_cursor=False),
            width=self._contacts_width,
            style="class:contacts",
        )
        self.input_window = Window(
            BufferControl(
                self.input_buffer,
                input_processors=[BeforeInput("> ", style="class:prompt")],
            ),
            height=1,
        )
        self.overlay_window = Window(
            FormattedTextControl(self._overlay_text, focusable=True, show_cursor=False),
            wrap_lines=True,
        )
        self.add_address = TextArea(multiline=False, prompt="Address: ", width=60)
        self.add_nick = TextArea(multiline=False, prompt="Nick:    ", width=60)
        self.add_address.buffer.accept_handler = self._address_entered
        self.add_nick.buffer.accept_handler = self._nick_entered

        self.app: Application[None] = Application(
            layout=Layout(self._build_layout(), focused_element=self.input_window),
            key_bindings=self._build_keys(),
            style=STYLE,
            full_screen=True,
            mouse_support=True,
            input=input,
            output=output,
        )
        if on_render is not None:
            self.app.after_render += lambda _: on_render(self)

    @property
    def state(self) -> _model.ViewState:
        return self.session.state

    # -- running -------------------------------------------------------------------

    async def run(self) -> None:
        async with asyncio.TaskGroup() as group:
            self._group = group
            background = [
                group.create_task(self.session.follow_events()),
                group.create_task(self.session.load()),
                group.create_task(self._tick_call_timer()),
            ]
            try:
                await self.app.run_async()
            finally:
                self._group = None
                for task in (*background, *self._pending):
                    task.cancel()

    def spawn(self, job: Callable[[], Coroutine[Any, Any, None]]) -> None:
        """Run a node operation without blocking the keyboard."""
        if self._group is None:
            return
        if len(self._pending) >= MAX_PENDING_OPS:
            self._notice("The node is busy; try again in a moment.", error=True)
            return
        task = self._group.create_task(job())
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    def _changed(self) -> None:
        if _model.shown_call(self.state) is not None:
            self._call_running.set()
        self.app.invalidate()

    async def _tick_call_timer(self) -> None:
        # The call timer is the one thing that changes without the node saying so.
        while True:
            await self._call_running.wait()
            while (call := _model.shown_call(self.state)) is not None:
                self.app.invalidate()
                await asyncio.sleep(1.0 - call.duration(self._clock()) % 1.0)
            self._call_running.clear()

    def _notice(self, text: str, *, error: bool = False) -> None:
        self.session.update(lambda s: _model.set_notice(s, text, error=error))

    # -- layout ----------------------------------------------------------------------

    def _columns(self) -> int:
        return get_app().output.get_size().columns

    def _contacts_width(self) -> Dimension:
        return Dimension.exact(min(28, max(16, self._columns() // 4)))

    def _contacts_text(self) -> StyleAndTextTuples:
        width = self._contacts_width().preferred
        return render_contacts(self.state, width, self._contact_clicked)

    def _conversation_cursor(self) -> Point:
        # The cursor sits after the last message, so the window follows the newest.
        text = fragment_list_to_text(render_conversation(self.state))
        lines = text.split("\n")
        return Point(x=len(lines[-1]), y=len(lines) - 1)

    def _build_layout(self) -> FloatContainer:
        status_bar = Window(
            FormattedTextControl(lambda: render_status_bar(self.state, self._columns())),
            height=1,
            style="class:status",
        )
        conversation = HSplit(
            [
                Window(
                    FormattedTextControl(lambda: render_conversation_title(self.state)), height=1
                ),
                Window(char="─", height=1),
                Window(
                    FormattedTextControl(
                        lambda: render_conversation(self.state),
                        get_cursor_position=self._conversation_cursor,
                        show_cursor=False,
                    ),
                    wrap_lines=True,
                ),
            ]
        )
        call_bar = ConditionalContainer(
            Window(
                FormattedTextControl(
                    lambda: render_call_bar(self.state, self._clock(), self._columns())
                ),
                height=1,
                style="class:call",
            ),
            filter=Condition(lambda: _model.shown_call(self.state) is not None),
        )
        body = HSplit(
            [
                status_bar,
                VSplit([self.contacts_window, Window(char="│", width=1), conversation]),
                call_bar,
                Window(char="─", height=1),
                self.input_window,
                Window(FormattedTextControl(lambda: render_notice(self.state)), height=1),
            ]
        )
        incoming = ConditionalContainer(
            Frame(Window(FormattedTextControl(lambda: render_incoming_call(self.state)), height=2)),
            filter=Condition(lambda: _model.incoming_call(self.state) is not None),
        )
        text_screen = ConditionalContainer(
            Frame(self.overlay_window, title=lambda: self.screen.value.title()),
            filter=Condition(lambda: self.screen not in (Screen.MAIN, Screen.ADD_CONTACT)),
        )
        add_contact = ConditionalContainer(
            Frame(
                HSplit(
                    [
                        Label("Add a contact by the address they gave you (asip1…)."),
                        self.add_address,
                        self.add_nick,
                        VSplit(
                            [
                                Button("Add", handler=self._submit_add_contact),
                                Button("Cancel", handler=self.close_screen),
                            ],
                            padding=2,
                        ),
                    ]
                ),
                title="Add contact",
            ),
            filter=Condition(lambda: self.screen is Screen.ADD_CONTACT),
        )
        return FloatContainer(
            body,
            floats=[
                Float(text_screen, top=2, bottom=4, left=4, right=4),
                Float(add_contact, top=4),
                Float(incoming, top=1),
            ],
        )

    def _overlay_text(self) -> StyleAndTextTuples:
        if self.screen is Screen.HELP:
            return render_help()
        if self.screen is Screen.IDENTITY:
            return render_identity(self.state)
        if self.screen is Screen.VERIFY:
            return render_verify(self.state, self.verify_peer)
        if self.screen is Screen.REQUESTS:
            self.request_index = max(0, min(self.request_index, len(self.state.requests) - 1))
            return render_requests(self.state, self.request_index)
        return []

    # -- screens -----------------------------------------------------------------------

    def show_screen(self, screen: Screen) -> None:
        self.screen = screen
        if screen is Screen.ADD_CONTACT:
            self.add_address.text = ""
            self.add_nick.text = ""
            self.app.layout.focus(self.add_address)
        elif screen is not Screen.MAIN:
            self.app.layout.focus(self.overlay_window)
        self.app.invalidate()

    def close_screen(self) -> None:
        self.screen = Screen.MAIN
        self.app.layout.focus(self.input_window)
        self.app.invalidate()

    def show_verify(self, peer: str | None = None) -> None:
        state = self.state
        if peer is None:
            peer = state.conversation.peer if state.conversation else state.selected
        contact = _model.find_contact(state, peer) if peer else None
        self.verify_peer = contact.address if contact else peer
        self.show_screen(Screen.VERIFY)
        if contact is not None:
            address = contact.address
            self.spawn(lambda: self.session.show_safety_number(address))

    def show_requests(self) -> None:
        self.request_index = 0
        self.show_screen(Screen.REQUESTS)
        self.spawn(lambda: self._run_op("requests"))

    async def _run_op(self, op: str, **args: Any) -> None:
        await self.session.run(op, **args)

    # -- actions ------------------------------------------------------------------------

    def open_contact(self, address: str) -> None:
        self.spawn(lambda: self.session.open_conversation(address))

    def _contact_clicked(self, address: str) -> None:
        self.session.update(lambda s: _model.select_contact(s, address))
        self.open_contact(address)
        self.app.layout.focus(self.input_window)

    def _step_contact(self, delta: int) -> None:
        if self.state.conversation is not None:  # else open the highlighted one first
            self.session.update(lambda s: _model.move_selection(s, delta))
        if self.state.selected is not None:
            self.open_contact(self.state.selected)

    def _call_target(self, peer: str) -> str | None:
        if peer:
            return peer
        state = self.state
        return state.conversation.peer if state.conversation else state.selected

    def _accept_line(self, buffer: Buffer) -> bool:
        line = buffer.text.strip()
        if not line:
            return False
        try:
            command = parse_command(line)
        except UsageError as exc:
            self._notice(str(exc), error=True)
            return True  # keep the text so it can be fixed
        if command is None:
            text = line[1:] if line.startswith("//") else line
            self.spawn(lambda: self.session.send(text))
        else:
            self._run_command(command)
        return False

    def _run_command(self, command: Command) -> None:
        session = self.session
        arg = command.arg
        match command.name:
            case "add":
                self.spawn(lambda: session.add_contact(arg(0), arg(1)))
            case "open":
                self.open_contact(arg(0))
            case "remove":
                self.spawn(lambda: session.remove(arg(0)))
            case "requests":
                self.show_requests()
            case "accept":
                self.spawn(lambda: session.answer_request("accept", arg(0), arg(1) or None))
            case "decline" if command.args:
                self.spawn(lambda: session.answer_request("decline", arg(0)))
            case "decline":
                self.spawn(session.decline_call)
            case "block":
                self.spawn(lambda: session.answer_request("block", arg(0)))
            case "call":
                self._start_call(arg(0))
            case "answer":
                self.spawn(session.answer)
            case "hangup":
                self.spawn(session.hangup)
            case "mute":
                self.spawn(session.toggle_mute)
            case "hold":
                self.spawn(session.toggle_hold)
            case "verify":
                self.show_verify(arg(0) or None)
            case "me":
                self.show_identity()
            case "presence":
                self.spawn(lambda: session.set_presence(arg(0).lower(), arg(1)))
            case "help":
                self.show_screen(Screen.HELP)
            case "quit":
                self.app.exit()

    def show_identity(self) -> None:
        self.show_screen(Screen.IDENTITY)
        self.spawn(lambda: self._run_op("identity"))

    def _start_call(self, peer: str = "") -> None:
        target = self._call_target(peer)
        if target is None:
            self._notice("Call whom? Open a conversation or type /call NICK.", error=True)
            return
        self.spawn(lambda: self.session.call(target))

    def _address_entered(self, buffer: Buffer) -> bool:
        self.app.layout.focus(self.add_nick)
        return True

    def _nick_entered(self, buffer: Buffer) -> bool:
        self._submit_add_contact()
        return True

    def _submit_add_contact(self) -> None:
        address = self.add_address.text.strip()
        nick = self.add_nick.text.strip()
        if not address:
            self._notice("Type the address first (asip1…).", error=True)
            self.app.layout.focus(self.add_address)
            return
        self.close_screen()
        self.spawn(lambda: self.session.add_contact(address, nick))

    def _answer_selected_request(self, op: str) -> None:
        requests = self.state.requests
        if not requests:
            return
        address = requests[min(self.request_index, len(requests) - 1)].address
        self.spawn(lambda: self.session.answer_request(op, address))

    # -- keys --------------------------------------------------------------------------

    def _build_keys(self) -> KeyBindings:
        keys = KeyBindings()
        main = Condition(lambda: self.screen is Screen.MAIN)
        ringing = Condition(lambda: _model.incoming_call(self.state) is not None)
        in_contacts = has_focus(self.contacts_window)
        in_input = has_focus(self.input_buffer)
        input_empty = Condition(lambda: self.input_buffer.text == "")
        text_screen = Condition(lambda: self.screen not in (Screen.MAIN, Screen.ADD_CONTACT))

        def on(*names: str, filter: Any = True) -> Callable[[Callable[[], None]], None]:
            def register(action: Callable[[], None]) -> None:
                def handler(event: KeyPressEvent) -> None:
                    action()

                for name in names:
                    keys.add(name, filter=filter, eager=True)(handler)

            return register

        on("c-a", filter=ringing)(lambda: self.spawn(self.session.answer))
        on("c-d", filter=ringing)(lambda: self.spawn(self.session.decline_call))
        on("c-q", "f10", "c-c")(lambda: self.app.exit())
        on("f1")(lambda: self.show_screen(Screen.HELP))
        on("?", filter=main & (in_contacts | (in_input & input_empty)))(
            lambda: self.show_screen(Screen.HELP)
        )
        on("f2")(lambda: self.show_screen(Screen.ADD_CONTACT))
        on("f3")(self.show_requests)
        on("f4")(self.show_identity)
        on("f5")(self.show_verify)
        on("f6")(self._start_call)
        on("f7")(lambda: self.spawn(self.session.toggle_mute))
        on("f8")(lambda: self.spawn(self.session.hangup))
        on("escape", filter=~main)(self.close_screen)
        on("q", filter=text_screen)(self.close_screen)

        on("tab", "s-tab", filter=main)(self._toggle_focus)
        on("c-n", filter=main)(lambda: self._step_contact(1))
        on("c-p", filter=main)(lambda: self._step_contact(-1))
        on("up", filter=main & in_contacts)(
            lambda: self.session.update(lambda s: _model.move_selection(s, -1))
        )
        on("down", filter=main & in_contacts)(
            lambda: self.session.update(lambda s: _model.move_selection(s, 1))
        )
        on("enter", filter=main & in_contacts)(self._open_selected)

        requests = Condition(lambda: self.screen is Screen.REQUESTS)
        on("up", filter=requests)(lambda: self._move_request(-1))
        on("down", filter=requests)(lambda: self._move_request(1))
        on("a", filter=requests)(lambda: self._answer_selected_request("accept"))
        on("d", filter=requests)(lambda: self._answer_selected_request("decline"))
        on("b", filter=requests)(lambda: self._answer_selected_request("block"))

        verify = Condition(lambda: self.screen is Screen.VERIFY)
        on("v", filter=verify)(lambda: self._mark_verified(True))
        on("u", filter=verify)(lambda: self._mark_verified(False))
        return keys

    def _toggle_focus(self) -> None:
        target = self.input_window if self.app.layout.has_focus(self.contacts_window) else None
        self.app.layout.focus(target or self.contacts_window)

    def _open_selected(self) -> None:
        if self.state.selected is not None:
            self.open_contact(self.state.selected)
            self.app.layout.focus(self.input_window)

    def _move_request(self, delta: int) -> None:
        self.request_index = max(0, min(len(self.state.requests) - 1, self.request_index + delta))
        self.app.invalidate()

    def _mark_verified(self, verified: bool) -> None:
        peer = self.verify_peer
        if peer is not None and _model.find_contact(self.state, peer) is not None:
            self.spawn(lambda: self.session.set_verified(peer, verified))


async def run_terminal_ui(
    socket_path: str,
    *,
    input: Input | None = None,
    output: Output | None = None,
    clock: Callable[[], float] = time.time,
    on_render: Callable[[TerminalUI], None] | None = None,
) -> None:
    """Attach to the node at ``socket_path`` and run the UI until the user quits."""
    async with AsyncioControlClient.connect(socket_path) as client:
        ui = TerminalUI(client, input=input, output=output, clock=clock, on_render=on_render)
        await ui.run()
