"""The full-screen prompt_toolkit application: layout, keys, overlays.

Layout (usable from 80x24 up, follows resizes)::

    ┌ status bar: Node / Tor progress + phase │ registration │ DHT │ me ──────┐
    │ contacts pane │ conversation title                                      │
    │ ● alice ✓ (2) │ 12:01 alice: hi                                          │
    │ ◐ bob         │ 12:02 me: hello  ✓✓ delivered    (PageUp scrolls back) │
    ├ call bar (only during a call): peer, timer, mute, quality ──────────────┤
    │ > input line (wraps; history on up/down; /commands)                    │
    └ notice: the last thing worth telling, whole; it clears itself ─────────┘

Floats: the call prompt (answer or decline an incoming call, allow or
refuse a transfer; from any screen), one text screen at a time (help,
requests, my address, verify, sound devices, confirm a removal; each
scrolls) and one form (add a contact, accept a request). prompt_toolkit
renders; we only ``invalidate()`` when the view state changes (and once a
second while a call's timer runs). Every node operation runs as a task in
the application's ``TaskGroup``.
"""

from __future__ import annotations

import asyncio
import enum
import time
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

from prompt_toolkit.application import Application, get_app
from prompt_toolkit.buffer import Buffer
from prompt_toolkit.filters import Condition, has_focus
from prompt_toolkit.formatted_text import StyleAndTextTuples
from prompt_toolkit.history import InMemoryHistory
from prompt_toolkit.input import Input
from prompt_toolkit.key_binding import KeyBindings, KeyPressEvent
from prompt_toolkit.keys import Keys
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
from prompt_toolkit.output import Output
from prompt_toolkit.styles import Style
from prompt_toolkit.utils import get_cwidth
from prompt_toolkit.widgets import Frame

from anonsip.control import AsyncioControlClient
from tui import _model
from tui._call_bar import render_call_bar, render_call_prompt
from tui._commands import Command, UsageError, parse_command
from tui._contacts_pane import render_contacts
from tui._conversation_pane import conversation_rows, render_conversation_title
from tui._devices_screen import device_entries, render_devices
from tui._form import Form
from tui._help_screen import render_help
from tui._identity_screen import render_identity
from tui._requests_screen import render_requests
from tui._scroll import Rows, ScrollView, printable, wrap
from tui._session import Failed, Session
from tui._status_bar import notice_rows, render_status_bar
from tui._verify_screen import render_verify

__all__ = [
    "ERROR_SECONDS",
    "MAX_PENDING_OPS",
    "NOTICE_SECONDS",
    "InputHistory",
    "Screen",
    "TerminalUI",
    "run_terminal_ui",
]

MAX_PENDING_OPS = 32  # node operations in flight at once; more and the user is told to wait
HISTORY_LINES = 200
PROMPT = "> "
MAX_INPUT_ROWS = 4
MAX_NOTICE_ROWS = 4
NOTICE_SECONDS = 8.0  # a notice clears itself after this long
ERROR_SECONDS = 30.0  # an error stays longer, so it can be read whole

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
        "presence.unknown": "#808080",
        "unread": "#ffaf00 bold",
        "verified": "#5fd75f",
        "unverified": "#ffaf00",
        "title": "bold",
        "title.presence": "#808080",
        "hint": "#808080 italic",
        "scroll.more": "reverse",
        "message.time": "#808080",
        "message.who": "bold",
        "message.out": "#87afff",
        "message.request": "#808080 italic",
        "delivery.queued": "#808080",
        "delivery.request": "#ffaf00",
        "delivery.sent": "#afafaf",
        "delivery.in_mailbox": "#afafaf",
        "delivery.delivered": "#5fd75f",
        "delivery.failed": "#ff5f5f",
        "call.note": "#87afff",
        "call.note.missed": "#ff875f",
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
        "qr": "bg:#ffffff #000000",
    }
)


class Screen(enum.Enum):
    """What is drawn over the main layout; MAIN is nothing."""

    MAIN = "main"
    HELP = "help"
    REQUESTS = "contact requests"
    IDENTITY = "my address"
    VERIFY = "verify"
    DEVICES = "sound devices"
    CONFIRM_REMOVE = "remove a contact"
    FORM = "form"


TEXT_SCREENS = frozenset(Screen) - {Screen.MAIN, Screen.FORM}


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


FormAction = Callable[[list[str]], Awaitable[Failed | None]]


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
        notice_seconds: float = NOTICE_SECONDS,
        error_seconds: float = ERROR_SECONDS,
    ) -> None:
        self.session = Session(client, on_change=self._changed, clock=clock)
        self._clock = clock
        self._notice_seconds = notice_seconds
        self._error_seconds = error_seconds
        self.screen = Screen.MAIN
        self.request_index = 0
        self.device_index = 0
        self.verify_peer: str | None = None
        self.removing: str | None = None  # the address a removal waits to be confirmed for
        self._form_action: FormAction | None = None
        self._group: asyncio.TaskGroup | None = None
        self._pending: set[asyncio.Task[None]] = set()
        self._timers: set[asyncio.Task[None]] = set()  # notices that clear themselves
        self._call_running = asyncio.Event()
        self._notice_serial = 0
        self._open_peer: str | None = None

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
            BufferControl(self.input_buffer), wrap_lines=True, height=self._input_height
        )
        self.conversation = ScrollView(
            lambda width: conversation_rows(self.state, width), anchor_bottom=True
        )
        self.overlay = ScrollView(self._overlay_rows, anchor_bottom=False, focusable=True)
        self.overlay_window = Window(self.overlay)
        # The identity screen is taller (its QR code); the same text in another frame.
        self.identity_window = Window(self.overlay)
        self.notice_view = ScrollView(
            lambda width: notice_rows(self.state, width), anchor_bottom=False, fit=True
        )
        self.form = Form(self._submit_form)

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
                for task in (*background, *self._pending, *self._timers):
                    task.cancel()

    def spawn(self, job: Callable[[], Coroutine[Any, Any, None]]) -> None:
        """Run a node operation without blocking the keyboard."""
        if self._group is None:
            return
        if len(self._pending) >= MAX_PENDING_OPS:
            self.session.notice("The node is busy; try again in a moment.", error=True)
            return
        task = self._group.create_task(job())
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    def _changed(self) -> None:
        state = self.state
        if _model.shown_call(state) is not None:
            self._call_running.set()
        peer = state.conversation.peer if state.conversation else None
        if peer != self._open_peer:  # another conversation starts at its newest line
            self._open_peer = peer
            self.conversation.reset()
        notice = state.notice
        if notice is not None and notice.serial != self._notice_serial and self._group:
            self._notice_serial = notice.serial
            seconds = self._error_seconds if notice.error else self._notice_seconds
            timer = self._group.create_task(self._clear_notice_later(notice.serial, seconds))
            self._timers.add(timer)
            timer.add_done_callback(self._timers.discard)
        self.app.invalidate()

    async def _clear_notice_later(self, serial: int, seconds: float) -> None:
        await asyncio.sleep(seconds)
        self.session.update(lambda s: _model.clear_notice(s, serial))

    async def _tick_call_timer(self) -> None:
        # The call timer is the one thing that changes without the node saying so.
        while True:
            await self._call_running.wait()
            while (call := _model.shown_call(self.state)) is not None:
                self.app.invalidate()
                await asyncio.sleep(1.0 - _model.call_duration(call, self._clock()) % 1.0)
            self._call_running.clear()

    # -- layout ----------------------------------------------------------------------

    def _columns(self) -> int:
        return get_app().output.get_size().columns

    def _contacts_width(self) -> Dimension:
        return Dimension.exact(min(28, max(16, self._columns() // 4)))

    def _contacts_text(self) -> StyleAndTextTuples:
        width = self._contacts_width().preferred
        return render_contacts(self.state, width, self._contact_clicked)

    def _input_height(self) -> Dimension:
        # A long line wraps over up to MAX_INPUT_ROWS rows, then scrolls.
        room = max(1, self._columns() - len(PROMPT))
        rows = get_cwidth(self.input_buffer.text) // room + 1
        return Dimension.exact(min(MAX_INPUT_ROWS, rows))

    def _notice_height(self) -> Dimension:
        rows = len(notice_rows(self.state, self._columns()))
        return Dimension.exact(max(1, min(MAX_NOTICE_ROWS, rows)))

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
                Window(self.conversation),
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
        prompt = Window(FormattedTextControl([("class:prompt", PROMPT)]), width=len(PROMPT))
        body = HSplit(
            [
                status_bar,
                VSplit([self.contacts_window, Window(char="│", width=1), conversation]),
                call_bar,
                Window(char="─", height=1),
                VSplit([prompt, self.input_window]),
                Window(self.notice_view, height=self._notice_height),
            ]
        )
        call_prompt = ConditionalContainer(
            Frame(Window(FormattedTextControl(lambda: render_call_prompt(self.state)), height=2)),
            filter=Condition(lambda: bool(render_call_prompt(self.state))),
        )
        text_screen = ConditionalContainer(
            Frame(self.overlay_window, title=lambda: self.screen.value.title()),
            filter=Condition(lambda: self.screen in TEXT_SCREENS - {Screen.IDENTITY}),
        )
        identity_screen = ConditionalContainer(
            Frame(self.identity_window, title="My address"),
            filter=Condition(lambda: self.screen is Screen.IDENTITY),
        )
        form = ConditionalContainer(
            self.form.container, filter=Condition(lambda: self.screen is Screen.FORM)
        )
        return FloatContainer(
            body,
            floats=[
                Float(text_screen, top=1, bottom=4, left=2, right=2),  # the call bar stays in view
                Float(identity_screen, top=1, bottom=1, left=2, right=2),
                Float(form, top=3, left=2, right=2),
                Float(call_prompt, top=1),
            ],
        )

    def _overlay_text(self, width: int) -> StyleAndTextTuples:
        state = self.state
        match self.screen:
            case Screen.HELP:
                return render_help()
            case Screen.IDENTITY:
                return render_identity(state, width)
            case Screen.VERIFY:
                return render_verify(state, self.verify_peer)
            case Screen.REQUESTS:
                self.request_index = max(0, min(self.request_index, len(state.requests) - 1))
                return render_requests(state, self.request_index)
            case Screen.DEVICES:
                return render_devices(state.devices, self.session.devices, self.device_index)
            case Screen.CONFIRM_REMOVE:
                return self._removal_text()
        return []

    def _overlay_rows(self, width: int) -> Rows:
        return wrap(self._overlay_text(width), width)

    def _removal_text(self) -> StyleAndTextTuples:
        contact = _model.find_contact(self.state, self.removing or "")
        if contact is None:
            return [("class:hint", "That contact is gone already.\n\nEsc closes this screen.")]
        name = printable(_model.display_name(contact))
        queued = contact.queued
        if queued:
            plural = "message" if queued == 1 else "messages"
            cancel = f"{queued} {plural} still queued for {name} will be cancelled, never sent.\n"
        else:
            cancel = f"No message is waiting to be sent to {name}.\n"
        return [
            ("class:screen.heading", f"Remove {name}?\n\n"),
            ("", f"{contact.address}\n\n"),
            ("", cancel),
            ("", f"{name} will no longer see your presence, and you theirs.\n\n"),
            ("class:screen.key", "y: remove   n or Esc: keep"),
        ]

    # -- screens -----------------------------------------------------------------------

    def show_screen(self, screen: Screen) -> None:
        self.screen = screen
        self.overlay.reset()
        if screen is Screen.IDENTITY:
            self.app.layout.focus(self.identity_window)
        elif screen in TEXT_SCREENS:
            self.app.layout.focus(self.overlay_window)
        self.app.invalidate()

    def close_screen(self) -> None:
        self.screen = Screen.MAIN
        self._form_action = None
        self.app.layout.focus(self.input_window)
        self.app.invalidate()

    def open_form(
        self,
        title: str,
        intro: str,
        labels: list[str],
        action: FormAction,
        values: list[str] | None = None,
    ) -> None:
        self.screen = Screen.FORM
        self._form_action = action
        self.form.open(title, intro, labels, values or [])
        self.app.invalidate()

    def show_add_contact(self) -> None:
        self.open_form(
            "Add contact",
            "Add a contact by the address they gave you (asip1…), and a name for them.",
            ["Address:", "Name:"],
            lambda values: self.session.add_contact(values[0], values[1]),
        )

    def _submit_form(self, form: Form) -> None:
        action = self._form_action
        values = form.values()
        if action is None:
            return
        if not values[0]:
            form.error = f"Type the {form.labels[0].rstrip(':').lower()} first."
            self.app.invalidate()
            return

        async def submit() -> None:
            failed = await action(values)
            if self._form_action is not action:
                return  # the user closed or replaced the form meanwhile
            if failed is None:
                self.close_screen()
            else:
                form.error = failed.message or "That did not work."
                self.app.invalidate()

        self.spawn(submit)

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

    def show_identity(self) -> None:
        self.show_screen(Screen.IDENTITY)
        self.spawn(lambda: self._run_op("identity"))

    def show_devices(self) -> None:
        self.device_index = 0
        self.show_screen(Screen.DEVICES)
        self.spawn(self.session.list_devices)

    def confirm_remove(self, peer: str) -> None:
        contact = _model.find_contact(self.state, peer)
        if contact is None:
            self.session.notice(f"No contact is called '{peer}'.", error=True)
            return
        self.removing = contact.address
        self.show_screen(Screen.CONFIRM_REMOVE)
        # The count of queued messages as the node has it now, not as it was.
        self.spawn(self.session.refresh_contacts)

    async def _run_op(self, op: str) -> None:
        await self.session.run(op)

    # -- actions ------------------------------------------------------------------------

    def open_contact(self, peer: str) -> None:
        self.spawn(lambda: self.session.open_conversation(peer))

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
            self.session.notice(str(exc), error=True)
            return True  # keep the text so it can be fixed
        self.session.update(_model.clear_notice)
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
                self.spawn(lambda: self._add_by_command(arg(0), arg(1)))
            case "rename":
                self.spawn(lambda: session.rename(arg(0), arg(1)))
            case "open":
                self.open_contact(arg(0))
            case "remove":
                self.confirm_remove(arg(0))
            case "requests":
                self.show_requests()
            case "accept":
                self.spawn(lambda: self._answer("accept", arg(0), arg(1) or None))
            case "decline" if command.args:
                self.spawn(lambda: self._answer("decline", arg(0)))
            case "decline":
                self.spawn(session.decline_call)
            case "block":
                self.spawn(lambda: self._answer("block", arg(0)))
            case "unblock":
                self.spawn(lambda: session.unblock(arg(0)))
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
            case "devices":
                self.show_devices()
            case "device":
                name = arg(1)
                session.choose_device(arg(0).lower(), None if name == "default" else name)
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

    async def _add_by_command(self, address: str, nick: str) -> None:
        failed = await self.session.add_contact(address, nick)
        if failed is not None:
            self.session.notice(failed.message, error=True)

    async def _answer(self, op: str, address: str, nick: str | None = None) -> None:
        await self.session.answer_request(op, address, nick)

    def _start_call(self, peer: str = "") -> None:
        target = self._call_target(peer)
        if target is None:
            self.session.notice("Call whom? Open a conversation or type /call NAME.", error=True)
            return
        self.spawn(lambda: self.session.call(target))

    def _selected_request(self) -> str | None:
        requests = self.state.requests
        if not requests:
            return None
        return requests[min(self.request_index, len(requests) - 1)].address

    def _answer_selected_request(self, op: str) -> None:
        address = self._selected_request()
        if address is not None:
            self.spawn(lambda: self._answer(op, address))

    def _accept_selected_request(self) -> None:
        address = self._selected_request()
        if address is None:
            return

        async def accept(values: list[str]) -> Failed | None:
            return await self.session.answer_request("accept", address, values[0] or None)

        self.open_form(
            "Accept contact request",
            f"Accept {address}? Give them a name (you can change it later with /rename).",
            ["Name:"],
            accept,
        )
        # An empty name is allowed: the node names them by their address.
        self.form.error = ""

    def _confirmed_removal(self) -> None:
        address = self.removing
        self.removing = None
        self.close_screen()
        if address is not None:
            self.spawn(lambda: self.session.remove(address))

    def _choose_device(self) -> None:
        entries = device_entries(self.state.devices)
        if entries:
            kind, name = entries[min(self.device_index, len(entries) - 1)]
            self.session.choose_device(kind, name)
            self.app.invalidate()

    # -- keys --------------------------------------------------------------------------

    def _build_keys(self) -> KeyBindings:
        keys = KeyBindings()
        main = Condition(lambda: self.screen is Screen.MAIN)
        prompted = Condition(lambda: bool(render_call_prompt(self.state)))
        ringing = Condition(lambda: _model.incoming_call(self.state) is not None)
        in_contacts = has_focus(self.contacts_window)
        in_input = has_focus(self.input_buffer)
        text_screen = Condition(lambda: self.screen in TEXT_SCREENS)
        form = Condition(lambda: self.screen is Screen.FORM)

        def on(*names: str | Keys, filter: Any = True) -> Callable[[Callable[[], None]], None]:
            def register(action: Callable[[], None]) -> None:
                def handler(event: KeyPressEvent) -> None:
                    action()

                for name in names:
                    keys.add(name, filter=filter, eager=True)(handler)

            return register

        on("c-a", filter=ringing)(lambda: self.spawn(self.session.answer))
        on("c-d", filter=ringing)(lambda: self.spawn(self.session.decline_call))
        on("c-a", filter=prompted & ~ringing)(
            lambda: self.spawn(lambda: self.session.answer_transfer(True))
        )
        on("c-d", filter=prompted & ~ringing)(
            lambda: self.spawn(lambda: self.session.answer_transfer(False))
        )
        on("c-q", "f10", "c-c")(lambda: self.app.exit())
        on("f1")(lambda: self.show_screen(Screen.HELP))
        on("?", filter=main & in_contacts)(lambda: self.show_screen(Screen.HELP))
        on("f2")(self.show_add_contact)
        on("f3")(self.show_requests)
        on("f4")(self.show_identity)
        on("f5")(self.show_verify)
        on("f6")(self._start_call)
        on("f7")(lambda: self.spawn(self.session.toggle_mute))
        on("f8")(lambda: self.spawn(self.session.hangup))
        on("f9")(self.show_devices)
        on("escape", filter=~main)(self.close_screen)
        on("q", filter=text_screen)(self.close_screen)

        on("tab", filter=form)(lambda: self.form.focus_step(1))
        on("s-tab", filter=form)(lambda: self.form.focus_step(-1))

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
        on("pageup", filter=main)(self.conversation.page_up)
        on("pagedown", filter=main)(self.conversation.page_down)

        @keys.add(Keys.BracketedPaste, filter=(main & in_input) | form, eager=True)
        def _paste(event: KeyPressEvent) -> None:
            # One-line fields: a pasted text's line breaks become spaces (and an
            # address copied with its line break stays one address).
            text = event.data.replace("\r\n", "\n").replace("\r", "\n")
            if self.screen is Screen.FORM:
                text = text.strip()
            event.current_buffer.insert_text(text.replace("\n", " "))

        lists = Condition(lambda: self.screen in (Screen.REQUESTS, Screen.DEVICES))
        plain = text_screen & ~lists
        on("up", filter=plain)(self.overlay.up)
        on("down", filter=plain)(self.overlay.down)
        on("pageup", filter=text_screen)(self.overlay.page_up)
        on("pagedown", filter=text_screen)(self.overlay.page_down)
        on("home", filter=text_screen)(self.overlay.home)
        on("end", filter=text_screen)(self.overlay.end)

        requests = Condition(lambda: self.screen is Screen.REQUESTS)
        on("up", filter=requests)(lambda: self._move_request(-1))
        on("down", filter=requests)(lambda: self._move_request(1))
        on("a", filter=requests)(self._accept_selected_request)
        on("d", filter=requests)(lambda: self._answer_selected_request("decline"))
        on("b", filter=requests)(lambda: self._answer_selected_request("block"))

        devices = Condition(lambda: self.screen is Screen.DEVICES)
        on("up", filter=devices)(lambda: self._move_device(-1))
        on("down", filter=devices)(lambda: self._move_device(1))
        on("enter", filter=devices)(self._choose_device)

        verify = Condition(lambda: self.screen is Screen.VERIFY)
        on("v", filter=verify)(lambda: self._mark_verified(True))
        on("u", filter=verify)(lambda: self._mark_verified(False))

        removal = Condition(lambda: self.screen is Screen.CONFIRM_REMOVE)
        on("y", "enter", filter=removal)(self._confirmed_removal)
        on("n", filter=removal)(self.close_screen)
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

    def _move_device(self, delta: int) -> None:
        last = len(device_entries(self.state.devices)) - 1
        self.device_index = max(0, min(last, self.device_index + delta))
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
    notice_seconds: float = NOTICE_SECONDS,
    error_seconds: float = ERROR_SECONDS,
) -> None:
    """Attach to the node at ``socket_path`` and run the UI until the user quits."""
    async with AsyncioControlClient.connect(socket_path) as client:
        ui = TerminalUI(
            client,
            input=input,
            output=output,
            clock=clock,
            on_render=on_render,
            notice_seconds=notice_seconds,
            error_seconds=error_seconds,
        )
        await ui.run()
