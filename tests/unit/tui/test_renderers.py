"""The per-screen renderers: pure functions from ViewState to formatted text."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from prompt_toolkit.data_structures import Point
from prompt_toolkit.formatted_text import StyleAndTextTuples, fragment_list_to_text
from prompt_toolkit.mouse_events import MouseButton, MouseEvent, MouseEventType

from tui._call_bar import format_duration, render_call_bar, render_incoming_call
from tui._contacts_pane import render_contacts
from tui._conversation_pane import render_conversation
from tui._model import ViewState, apply_event, apply_result, open_conversation, set_connected
from tui._status_bar import progress_bar, render_status_bar
from tui._verify_screen import group_digits, render_verify

ALICE = "asip1alice0000000000000000000000"


def text(fragments: StyleAndTextTuples) -> str:
    return fragment_list_to_text(fragments)


def status(**tor: Any) -> dict[str, Any]:
    return {
        "tor": {"progress": 30, "phase": "Loading authority key certs", **tor},
        "dht": {"routing_table": 5, "records": 1},
        "registration": {"state": "unregistered"},
        "outbox": 4,
        "presence": {"status": "busy"},
    }


def connected() -> ViewState:
    return set_connected(ViewState(), True)


@pytest.mark.parametrize(("percent", "bar"), [(0, "░" * 10), (45, "████░░░░░░"), (100, "█" * 10)])
def test_progress_bar(percent: int, bar: str) -> None:
    assert progress_bar(percent) == bar


def test_status_bar_before_the_node_answers() -> None:
    assert text(render_status_bar(ViewState(), 80)) == " Node: not connected "
    assert "Tor: not connected" in text(render_status_bar(connected(), 80))


def test_status_bar_wide_shows_everything() -> None:
    state = apply_result(connected(), "status", {}, status(), now=0)
    bar = text(render_status_bar(state, 200))
    for part in ("30% Loading authority key certs", "unregistered", "DHT 5", "outbox 4", "busy"):
        assert part in bar


@given(st.integers(min_value=20, max_value=200), st.integers(0, 100), st.text(max_size=90))
def test_status_bar_never_wider_than_the_terminal(width: int, progress: int, phase: str) -> None:
    state = apply_result(connected(), "status", {}, status(progress=progress, phase=phase), now=0)
    state = apply_event(state, "request", {"address": "asip1x", "text": ""}, now=0)
    bar = text(render_status_bar(state, width))
    tor_only = 5 + 10 + 6 + max(8, width // 3)
    assert len(bar) <= max(width, tor_only)
    assert "Tor" in bar


def active_call(**stats: Any) -> ViewState:
    state = apply_event(
        ViewState(), "call", {"call_id": "c", "peer": "bob", "state": "active"}, now=100.0
    )
    return apply_event(state, "call.stats", {"call_id": "c", **stats}, now=100.0)


def test_call_bar_timer_mute_quality() -> None:
    state = active_call(playout_delay_ms=240.4, concealed_frames=2, mos=3.66)
    state = apply_result(state, "call.mute", {"muted": True}, None, now=0)
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
    assert render_incoming_call(ViewState()) == []


@pytest.mark.parametrize(
    ("seconds", "shown"), [(0, "00:00"), (59.9, "00:59"), (61, "01:01"), (3600, "1:00:00")]
)
def test_format_duration(seconds: float, shown: str) -> None:
    assert format_duration(seconds) == shown


def contacts_state() -> ViewState:
    contacts = [
        {"address": ALICE, "nick": "alice", "presence": "available", "verified": True},
        {
            "address": "asip1b",
            "nick": "the-very-long-nickname-indeed",
            "presence": "away",
            "unread": 12,
        },
        {"address": "asip1c", "nick": "carol", "state": "blocked"},
    ]
    return apply_result(ViewState(), "contacts.list", {}, contacts, now=0)


def test_contacts_pane_glyphs_marks_and_truncation() -> None:
    lines = text(render_contacts(contacts_state(), 20, lambda _: None)).split("\n")
    assert lines[0].startswith(" ● alice ✓")
    assert lines[1].startswith(" ◐ the-very-lo…")
    assert lines[1].rstrip().endswith("… (12)")
    assert lines[2].startswith(" ✗ carol")
    assert all(len(line) <= 20 for line in lines)


def test_clicking_a_contact_line_reports_its_address() -> None:
    clicked: list[str] = []
    fragments = render_contacts(contacts_state(), 20, clicked.append)
    handlers = [f[2] for f in fragments if len(f) == 3 and "alice" in f[1]]
    assert handlers
    event = MouseEvent(Point(x=3, y=0), MouseEventType.MOUSE_UP, MouseButton.LEFT, frozenset())
    handlers[0](event)
    assert clicked == [ALICE]


def test_conversation_shows_delivery_state_per_message() -> None:
    state = open_conversation(contacts_state(), ALICE)
    history = [
        {"message_id": "1", "direction": "in", "text": "hi", "time": 0.0, "state": "received"},
        {"message_id": "2", "direction": "out", "text": "a", "time": 0.0, "state": "queued"},
        {"message_id": "3", "direction": "out", "text": "b", "time": 0.0, "state": "sent"},
        {"message_id": "4", "direction": "out", "text": "c", "time": 0.0, "state": "delivered"},
    ]
    state = apply_result(state, "history", {"peer": ALICE}, history, now=0)
    lines = text(render_conversation(state)).split("\n")
    assert lines[0].endswith("alice: hi")
    assert lines[1].endswith("me: a  … queued")
    assert lines[2].endswith("me: b  ✓ sent")
    assert lines[3].endswith("me: c  ✓✓ delivered")


def test_safety_number_grouping() -> None:
    assert group_digits("1 2 3 4 5 6") == "   1 2 3 4\n   5 6"
    unspaced = "".join(f"{i:05d}" for i in range(12))
    assert group_digits(unspaced).split("\n")[0] == "   00000 00001 00002 00003"
    assert len(group_digits(unspaced).split("\n")) == 3


def test_verify_without_a_contact_says_what_to_do() -> None:
    assert "Open a contact" in text(render_verify(ViewState(), None))
