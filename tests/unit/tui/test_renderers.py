"""The per-screen renderers and the word wrap: pure functions from ViewState to text."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
import segno
from hypothesis import given
from hypothesis import strategies as st
from prompt_toolkit.data_structures import Point
from prompt_toolkit.formatted_text import StyleAndTextTuples, fragment_list_to_text
from prompt_toolkit.mouse_events import MouseButton, MouseEvent, MouseEventType
from prompt_toolkit.utils import get_cwidth

from anonsip.control import (
    Args,
    AudioDevicesView,
    CallState,
    CallStatsView,
    CallView,
    ContactState,
    ContactView,
    DhtView,
    HistoryArgs,
    IdentityView,
    MessageDirection,
    MessageState,
    MessageView,
    NoArgs,
    PresenceStatus,
    PresenceView,
    RegistrationView,
    StatusView,
    TorView,
    View,
)
from tui._call_bar import format_duration, render_call_bar, render_call_prompt
from tui._contacts_pane import render_contacts
from tui._conversation_pane import conversation_rows
from tui._devices_screen import DeviceChoice, device_entries, render_devices
from tui._identity_screen import QR_BORDER, qr_rows, render_identity
from tui._model import (
    ViewState,
    apply_error,
    apply_event,
    apply_result,
    open_conversation,
    set_connected,
)
from tui._scroll import NO_BREAK, ScrollView, printable, rows_text, wrap
from tui._status_bar import notice_rows, progress_bar, render_status_bar
from tui._verify_screen import group_digits, render_verify

ALICE = "asip1alice0000000000000000000000"
ME = "asip1qgrvjvz2ufa0ukx0805ygylxnays55d9vdvnjqjven8h9lpefj2lq6c7kcz"


def text(fragments: StyleAndTextTuples) -> str:
    return fragment_list_to_text(fragments)


def status(progress: int = 30, phase: str = "Loading authority key certs") -> StatusView:
    return StatusView(
        tor=TorView(progress=progress, phase=phase),
        dht=DhtView(routing_table=5, records=1),
        registration=RegistrationView(state="unregistered"),
        outbox=4,
        presence=PresenceView(status=PresenceStatus.BUSY),
    )


def connected() -> ViewState:
    return set_connected(ViewState(), True)


def res(state: ViewState, op: str, result: Any, args: Args | None = None) -> ViewState:
    if isinstance(result, View):
        result = result.encode()
    return apply_result(state, op, args or NoArgs(), result, now=0)


def ev(state: ViewState, event: str, view: View, now: float = 100.0) -> ViewState:
    return apply_event(state, event, view.encode(), now=now)


# -- word wrap --------------------------------------------------------------------


def test_wrap_breaks_at_spaces_with_a_hanging_indent() -> None:
    rows = wrap([("", "12:01 bob: the machine works")], 16, indent=6)
    assert rows_text(rows).split("\n") == ["12:01 bob: the", "      machine", "      works"]


def test_wrap_cuts_only_a_word_longer_than_a_row() -> None:
    rows = rows_text(wrap([("", "a " + "x" * 12)], 5)).split("\n")
    assert rows == ["a xxx", "xxxxx", "xxxx"]


def test_wrap_keeps_a_no_break_mark_whole() -> None:
    rows = wrap([("", "me: hello"), (NO_BREAK, "  ✓✓ delivered")], 18)
    assert rows_text(rows).split("\n") == ["me: hello", "✓✓ delivered"]


def test_wrap_counts_wide_characters_as_two_cells() -> None:
    rows = rows_text(wrap([("", "漢字 漢字 漢字")], 9)).split("\n")
    assert rows == ["漢字 漢字", "漢字"]


@given(st.text(max_size=200), st.integers(min_value=1, max_value=100), st.integers(0, 10))
def test_wrap_never_exceeds_the_width_and_keeps_every_word(
    words: str, width: int, indent: int
) -> None:
    shown = printable(words)
    rows = wrap([("", shown)], width, indent=indent)
    for row in rows:
        assert sum(get_cwidth(f[1]) for f in row) <= max(width, 2)
    joined = "".join("".join(f[1] for f in row) for row in rows)
    assert joined.replace(" ", "") == shown.replace(" ", "").replace("\n", "")


def test_printable_shows_control_characters_in_caret_notation() -> None:
    assert printable("a\x1b[2Jb\x07\x7f\x85\nc") == "a^[[2Jb^G^?<85>\nc"


def test_scroll_view_anchored_at_the_bottom_pages_to_the_top() -> None:
    lines = [[("", f"line {i}")] for i in range(30)]
    view = ScrollView(lambda width: lines, anchor_bottom=True)

    def shown() -> list[str]:
        content = view.create_content(40, 10)
        return [text(content.get_line(i)) for i in range(content.line_count)]

    assert shown()[-1] == "line 29"
    for _ in range(5):
        view.page_up()
    first = shown()
    assert first[0] == "line 0"
    assert "more lines: PageDown" in first[-1]
    view.end()
    assert shown()[-1] == "line 29"
    wheel = MouseEvent(Point(x=0, y=0), MouseEventType.SCROLL_UP, MouseButton.NONE, frozenset())
    assert view.mouse_handler(wheel) is None
    assert shown()[-1] != "line 29"


# -- status bar and notice ------------------------------------------------------------


@pytest.mark.parametrize(("percent", "bar"), [(0, "░" * 10), (45, "████░░░░░░"), (100, "█" * 10)])
def test_progress_bar(percent: int, bar: str) -> None:
    assert progress_bar(percent) == bar


def test_status_bar_before_the_node_answers() -> None:
    assert text(render_status_bar(ViewState(), 80)) == " Node: not connected "
    assert "asking the node" in text(render_status_bar(connected(), 80))


def test_status_bar_counts_one_peer_in_the_singular() -> None:
    one = dataclasses.replace(status(), dht=DhtView(routing_table=1))
    assert "DHT 1 peer │" in text(render_status_bar(res(connected(), "status", one), 200))


def test_status_bar_wide_shows_everything() -> None:
    state = res(connected(), "status", status())
    bar = text(render_status_bar(state, 200))
    for part in ("30% Loading authority key certs", "unregistered", "DHT 5", "outbox 4", "busy"):
        assert part in bar


@given(st.integers(min_value=20, max_value=200), st.integers(0, 100), st.text(max_size=90))
def test_status_bar_never_wider_than_the_terminal(width: int, progress: int, phase: str) -> None:
    state = res(connected(), "status", status(progress, phase))
    bar = text(render_status_bar(state, width))
    tor_only = 5 + 10 + 6 + max(8, width // 3)
    assert len(bar) <= max(width, tor_only)
    assert "Tor" in bar


def test_a_long_notice_wraps_whole() -> None:
    state = apply_result(connected(), "status", NoArgs(), status().encode(), now=0)
    reason = "this is a long reason " * 8
    rows = rows_text(notice_rows(apply_error(state, "send", reason), 40)).split("\n")
    assert len(rows) > 2
    assert " ".join(r.strip() for r in rows) == reason.strip()


# -- calls --------------------------------------------------------------------------


def active_call(**stats: Any) -> ViewState:
    state = ev(ViewState(), "call", CallView(call_id="c", peer="bob", state=CallState.ACTIVE))
    return ev(state, "call.stats", CallStatsView(call_id="c", **stats))


def test_call_bar_timer_mute_quality() -> None:
    state = active_call(playout_delay_ms=240.4, concealed_frames=2, mos=3.66)
    state = ev(state, "call", CallView(call_id="c", peer="bob", state=CallState.ACTIVE, muted=True))
    bar = text(render_call_bar(state, 100.0 + 3725, 120))
    assert "In call: bob" in bar
    assert "1:02:05" in bar
    assert "muted" in bar
    assert "delay 240 ms · concealed 2 · MOS 3.7" in bar


@pytest.mark.parametrize("width", [40, 60, 80, 120])
def test_call_bar_fits_or_keeps_the_essentials(width: int) -> None:
    state = active_call(playout_delay_ms=240, concealed_frames=2, mos=3.6)
    bar = text(render_call_bar(state, 130.0, width))
    assert bar.startswith(" In call: bob  00:30  mic on ")
    assert len(bar) <= max(width, len(" In call: bob  00:30  mic on "))


def test_no_call_no_bar_no_prompt() -> None:
    assert render_call_bar(ViewState(), 0.0) == []
    assert render_call_prompt(ViewState()) == []


@pytest.mark.parametrize(
    ("seconds", "shown"), [(0, "00:00"), (59.9, "00:59"), (61, "01:01"), (3600, "1:00:00")]
)
def test_format_duration(seconds: float, shown: str) -> None:
    assert format_duration(seconds) == shown


# -- contacts and conversation ---------------------------------------------------------


def contacts_state() -> ViewState:
    contacts = [
        ContactView(address=ALICE, nick="alice", presence=PresenceStatus.AVAILABLE, verified=True),
        ContactView(
            address="asip1b",
            nick="the-very-long-nickname-indeed",
            presence=PresenceStatus.AWAY,
            unread=12,
        ),
        ContactView(address="asip1c", nick="carol", state=ContactState.BLOCKED),
        ContactView(address="asip1d", nick="dave", state=ContactState.REQUESTED),
    ]
    return apply_result(
        connected(), "contacts.list", NoArgs(), [c.encode() for c in contacts], now=0
    )


def test_contacts_pane_glyphs_marks_and_truncation() -> None:
    lines = text(render_contacts(contacts_state(), 20, lambda _: None)).split("\n")
    assert lines[0].startswith(" ● alice ✓")
    assert lines[1].startswith(" ◐ the-very-lo…")
    assert lines[1].rstrip().endswith("… (12)")
    assert lines[2].startswith(" ? dave")
    assert lines[3].startswith(" ✗ carol")
    assert all(len(line) <= 20 for line in lines)


def test_clicking_a_contact_line_reports_its_address() -> None:
    clicked: list[str] = []
    fragments = render_contacts(contacts_state(), 20, clicked.append)
    handlers = [f[2] for f in fragments if len(f) == 3 and "alice" in f[1]]
    assert handlers
    event = MouseEvent(Point(x=3, y=0), MouseEventType.MOUSE_UP, MouseButton.LEFT, frozenset())
    handlers[0](event)
    assert clicked == [ALICE]


def test_conversation_shows_each_delivery_state_honestly() -> None:
    state = open_conversation(contacts_state(), ALICE)
    history = [
        MessageView(
            peer=ALICE,
            message_id=str(index),
            direction=MessageDirection.IN
            if state_ is MessageState.RECEIVED
            else MessageDirection.OUT,
            text=word,
            state=state_,
        ).encode()
        for index, (word, state_) in enumerate(
            [
                ("hi", MessageState.RECEIVED),
                ("a", MessageState.QUEUED),
                ("b", MessageState.SENT),
                ("c", MessageState.IN_MAILBOX),
                ("d", MessageState.DELIVERED),
                ("e", MessageState.FAILED),
                ("f", MessageState.REQUEST),
            ]
        )
    ]
    state = res(state, "history", history, HistoryArgs(peer=ALICE))
    lines = rows_text(conversation_rows(state, 60)).split("\n")
    assert lines[0].endswith("alice: hi")
    assert lines[1].endswith("me: a  … queued")
    assert lines[2].endswith("me: b  ✓ sent")
    assert lines[3].endswith("me: c  ✓ in mailbox")
    assert lines[4].endswith("me: d  ✓✓ delivered")
    assert lines[5].endswith("me: e  ✗ failed")
    assert lines[6].endswith("me: f  ? request, not accepted yet")


def test_an_empty_conversation_says_loading_then_nothing_yet() -> None:
    state = open_conversation(contacts_state(), ALICE)
    assert rows_text(conversation_rows(state, 40)) == "loading…"
    state = res(state, "history", [], HistoryArgs(peer=ALICE))
    assert rows_text(conversation_rows(state, 40)) == "no messages yet"


# -- screens ------------------------------------------------------------------------------


def test_safety_number_grouping() -> None:
    assert group_digits("1 2 3 4 5 6") == "   1 2 3 4\n   5 6"
    unspaced = "".join(f"{i:05d}" for i in range(12))
    assert group_digits(unspaced).split("\n")[0] == "   00000 00001 00002 00003"
    assert len(group_digits(unspaced).split("\n")) == 3


def test_verify_without_a_contact_says_what_to_do() -> None:
    assert "Open a contact" in text(render_verify(ViewState(), None))


def test_the_qr_code_holds_the_address() -> None:
    rows = qr_rows(ME)
    # Read the half blocks back into modules and compare with the code itself.
    top = {"█": True, "▀": True, "▄": False, " ": False}
    bottom = {"█": True, "▀": False, "▄": True, " ": False}
    modules = []
    for row in rows:
        modules.append([top[c] for c in row])
        modules.append([bottom[c] for c in row])
    code = segno.make(ME.upper(), error="l", micro=False)
    expected = [[bool(m) for m in row] for row in code.matrix_iter(border=QR_BORDER)]
    assert modules[: len(expected)] == expected
    assert code.mode == "alphanumeric"
    assert len(rows[0]) <= 40  # fits beside the address at 80 columns


def test_my_address_screen_puts_the_address_on_its_own_line() -> None:
    state = res(connected(), "identity", IdentityView(nick="me", address=ME))
    shown = text(render_identity(state, 74)).split("\n")
    assert ME in shown
    assert any("▀" in line for line in shown)
    narrow = text(render_identity(state, 20))
    assert "widen the terminal" in narrow


def test_devices_screen_lists_and_marks_the_choice() -> None:
    devices = AudioDevicesView(inputs=("mic",), outputs=("spk", "hdmi"))
    assert device_entries(devices) == [
        ("input", None),
        ("input", "mic"),
        ("output", None),
        ("output", "spk"),
        ("output", "hdmi"),
    ]
    shown = text(render_devices(devices, DeviceChoice(output="hdmi"), 0))
    assert "● the system's default" in shown  # the input
    assert "● hdmi" in shown
    assert "○ spk" in shown
    problem = AudioDevicesView(problem="PortAudio sees no sound devices here")
    assert "PortAudio sees no sound devices here" in text(
        render_devices(problem, DeviceChoice(), 0)
    )


@dataclasses.dataclass(frozen=True, kw_only=True)
class InvitingIdentity(IdentityView):
    """The identity view once the node adds an invite to it."""

    invite: str = ""


def test_my_address_screen_shows_an_invite_when_the_node_gives_one() -> None:
    invite = "anonsip:invite?v=1&a=" + ME + "&h=abcdefgh"
    state = dataclasses.replace(
        connected(), identity=InvitingIdentity(nick="me", address=ME, invite=invite)
    )
    shown = text(render_identity(state, 74))
    assert "holds this invite" in shown
    assert ME in shown.split("\n")
    assert qr_rows(invite) != qr_rows(ME)
    assert qr_rows(invite)[3] in shown
