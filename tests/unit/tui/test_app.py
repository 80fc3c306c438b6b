"""The real prompt_toolkit application against a real ControlServer and a node double."""

from __future__ import annotations

from pathlib import Path

import pytest
from prompt_toolkit.data_structures import Size

import tui
from tests.unit.tui.harness import ALICE, BOB, KEY, NodeDouble, click, running_ui


def two_contacts() -> NodeDouble:
    node = NodeDouble()
    node.add_contact(ALICE, "alice", verified=True, unread=2)
    node.add_contact(BOB, "bob", presence="away")
    return node


async def test_80x24_shows_the_key_elements(tmp_path: Path) -> None:
    async with running_ui(tmp_path, two_contacts()) as ui:
        shot = await ui.watch.shows("alice", "bob", "registered")
        lines = shot.text.split("\n")
        assert len(lines) == 24
        assert all(len(line) <= 80 for line in lines)
        assert "Tor" in lines[0]
        assert "100% Done" in lines[0]
        assert "DHT 7 peers" in lines[0]
        assert "registered" in lines[0]
        assert "● alice ✓ (2)" in shot.text
        assert "◐ bob" in shot.text
        assert ">" in shot.text.split("\n")[-2]
        assert "F1: help" in lines[-1]


async def test_tor_not_connected_is_said_plainly(tmp_path: Path) -> None:
    node = two_contacts()
    node.tor = None
    async with running_ui(tmp_path, node) as ui:
        shot = await ui.watch.shows("Tor: not connected")
        assert shot.text.startswith(" Tor: not connected")
        # Bootstrap starts: the bar shows progress and Tor's phase.
        node.tor = {"progress": 45, "phase": "Loading relay descriptors"}
        node.registration = "registering"
        node.publish("status", node.status_result())
        shot = await ui.watch.shows("45% Loading relay descriptors")
        first = shot.text.split("\n")[0]
        assert "████░░░░░░" in first
        assert "registering" in first


async def test_type_a_message_and_see_it_delivered(tmp_path: Path) -> None:
    node = two_contacts()
    async with running_ui(tmp_path, node) as ui:
        await ui.watch.shows("alice")
        ui.type(KEY["ctrl-n"])  # opens the first contact
        await ui.watch.until(
            lambda s: s.state.conversation is not None and s.state.conversation.loaded,
            "alice's conversation",
        )
        ui.type("hello there" + KEY["enter"])
        shot = await ui.watch.shows("me: hello there", "… queued")
        assert node.called("send") == [{"peer": ALICE, "text": "hello there"}]
        assert shot.input_text == ""
        (message_id,) = [m["message_id"] for m in node.messages[ALICE]]
        node.advance(ALICE, message_id, "sent")
        await ui.watch.shows("me: hello there", "✓ sent")
        node.advance(ALICE, message_id, "delivered")
        shot = await ui.watch.shows("me: hello there", "✓✓ delivered")
        assert "queued" not in shot.text


async def test_incoming_message_in_the_open_conversation_is_shown_and_read(
    tmp_path: Path,
) -> None:
    node = two_contacts()
    async with running_ui(tmp_path, node) as ui:
        await ui.watch.shows("alice")
        ui.type(KEY["ctrl-n"])
        await ui.watch.until(lambda s: s.state.conversation is not None, "a conversation")
        node.receive_message(ALICE, "are you there?")
        await ui.watch.shows("alice: are you there?")
        # The UI told the node the conversation was read.
        await ui.watch.until(lambda s: len(node.called("read")) >= 2, "a second read")
        assert node.contacts[ALICE]["unread"] == 0
        # A message for bob, not on screen, counts as unread in the contacts pane.
        node.receive_message(BOB, "psst")
        await ui.watch.shows("◐ bob (1)")


async def test_incoming_call_answered_from_anywhere(tmp_path: Path) -> None:
    node = two_contacts()
    async with running_ui(tmp_path, node) as ui:
        await ui.watch.shows("bob")
        ui.type(KEY["f1"])  # even over the help screen
        await ui.watch.shows("Keys", "ctrl-a / ctrl-d")
        call_id = node.offer_call(BOB)
        await ui.watch.shows("Incoming call from bob", "ctrl-a answer", "ctrl-d decline")
        ui.type(KEY["ctrl-a"])
        shot = await ui.watch.shows("In call: bob", "mic on")
        assert node.called("answer") == [{"call_id": call_id}]
        assert "Incoming call" not in shot.text
        node.publish(
            "call.stats",
            {"call_id": call_id, "playout_delay_ms": 180, "concealed_frames": 3, "mos": 4.2},
        )
        await ui.watch.shows("delay 180 ms", "concealed 3", "MOS 4.2")
        ui.type(KEY["f7"])
        await ui.watch.shows("In call: bob", "muted")
        assert node.calls[call_id]["muted"] is True
        ui.type(KEY["f8"])
        shot = await ui.watch.shows("Call with bob ended: hung up")
        assert "In call" not in shot.text
        assert shot.state.calls == ()


async def test_incoming_call_declined(tmp_path: Path) -> None:
    node = two_contacts()
    async with running_ui(tmp_path, node) as ui:
        await ui.watch.shows("bob")
        ui.type("half a mess")  # typing in the input line does not block the keys
        call_id = node.offer_call(BOB)
        await ui.watch.shows("Incoming call from bob")
        ui.type(KEY["ctrl-d"])
        shot = await ui.watch.shows("Call with bob ended: declined")
        assert node.called("call.decline") == [{"call_id": call_id}]
        assert "Incoming call" not in shot.text
        assert shot.input_text == "half a mess"


async def test_outgoing_call_with_slash_command(tmp_path: Path) -> None:
    node = two_contacts()
    async with running_ui(tmp_path, node) as ui:
        await ui.watch.shows("alice")
        ui.type("/call alice" + KEY["enter"])
        await ui.watch.shows("Calling alice…")
        assert node.called("call") == [{"peer": "alice"}]
        (call_id,) = node.calls
        node.calls[call_id]["state"] = "active"
        node.publish("call", {"call_id": call_id, "peer": ALICE, "state": "active"})
        await ui.watch.shows("In call: alice", "00:0")
        ui.type("/hangup" + KEY["enter"])
        await ui.watch.shows("Call with alice ended")


async def test_contact_request_accepted(tmp_path: Path) -> None:
    carol = "asip1qcarol2w3e4r5t6y7u8i9o0p1a2s3d4f5"
    node = two_contacts()
    async with running_ui(tmp_path, node) as ui:
        await ui.watch.shows("alice")
        node.request(carol, "hi, it's Carol from the meetup")
        await ui.watch.shows("1 request(s) F3")
        ui.type(KEY["f3"])
        await ui.watch.shows("Contact requests", carol, "Carol from the meetup")
        ui.type("a")
        await ui.watch.shows("Accepted")
        assert node.called("accept") == [{"address": carol}]
        ui.type("q")
        shot = await ui.watch.until(
            lambda s: "request(s)" not in s.text and "asip1qcarol" in s.text,
            "carol in the contacts pane",
        )
        assert shot.state.requests == ()
        assert any(c.address == carol for c in shot.state.contacts)


async def test_contact_request_blocked_by_command(tmp_path: Path) -> None:
    node = two_contacts()
    async with running_ui(tmp_path, node) as ui:
        await ui.watch.shows("alice")
        node.request("asip1qspam", "buy now")
        await ui.watch.shows("1 request(s)")
        ui.type("/block asip1qspam" + KEY["enter"])
        shot = await ui.watch.shows("Blocked asip1qspam")
        assert "request(s)" not in shot.text.split("\n")[0]
        assert node.called("block") == [{"address": "asip1qspam"}]


async def test_presence_change_is_shown(tmp_path: Path) -> None:
    node = two_contacts()
    async with running_ui(tmp_path, node) as ui:
        await ui.watch.shows("● alice")
        node.set_presence(ALICE, "busy", "in a meeting")
        await ui.watch.shows("⊘ alice")
        ui.type(KEY["ctrl-n"])
        await ui.watch.shows("busy — in a meeting", "✓ verified")
        node.set_presence(ALICE, "offline")
        await ui.watch.shows("○ alice")


async def test_verify_screen_compares_and_marks_verified(tmp_path: Path) -> None:
    node = two_contacts()
    async with running_ui(tmp_path, node) as ui:
        await ui.watch.shows("bob")
        ui.type("/open bob" + KEY["enter"])
        await ui.watch.shows("not verified (F5)")
        ui.type(KEY["f5"])
        shot = await ui.watch.shows("Verify bob", "12345 67890 11111 22222", "AB12 CD34")
        assert "not verified" in shot.text
        ui.type("v")
        await ui.watch.shows("Status: verified ✓")
        assert node.contacts[BOB]["verified"] is True
        assert node.called("contacts.verify") == [{"peer": BOB, "verified": True}]
        ui.type("q")
        await ui.watch.shows("◐ bob ✓", "bob  away ✓ verified")


async def test_identity_screen(tmp_path: Path) -> None:
    node = two_contacts()
    async with running_ui(tmp_path, node) as ui:
        await ui.watch.shows("alice")
        ui.type("/me" + KEY["enter"])
        shot = await ui.watch.shows("My identity", "asip1qme", "AB12 CD34", "meonion.onion")
        assert shot.text.count("asip1qme") >= 2  # the address and the SIP URI


async def test_add_contact_dialog(tmp_path: Path) -> None:
    dave = "asip1qdave9876543210"
    node = two_contacts()
    async with running_ui(tmp_path, node) as ui:
        await ui.watch.shows("alice")
        ui.type(KEY["f2"])
        await ui.watch.shows("Add contact", "Address:", "Nick:")
        ui.type(dave + KEY["enter"] + "dave" + KEY["enter"])
        shot = await ui.watch.shows("? dave", "Added dave.")
        assert node.called("contacts.add") == [{"address": dave, "nick": "dave"}]
        assert shot.state.conversation is not None
        assert shot.state.conversation.peer == dave


async def test_node_errors_are_one_line_notices(tmp_path: Path) -> None:
    node = two_contacts()
    async with running_ui(tmp_path, node) as ui:
        await ui.watch.shows("alice")
        ui.type("/add 12345 eve" + KEY["enter"])
        shot = await ui.watch.shows("contacts.add: '12345' is not an anonsip address")
        assert shot.state.notice_is_error
        assert "Traceback" not in shot.text
        ui.type("/frob" + KEY["enter"])
        shot = await ui.watch.shows("unknown command /frob")
        assert shot.input_text == "/frob"  # kept, to be corrected


async def test_input_history_with_up_and_down(tmp_path: Path) -> None:
    node = two_contacts()
    async with running_ui(tmp_path, node) as ui:
        await ui.watch.shows("alice")
        ui.type(KEY["ctrl-n"])
        await ui.watch.until(lambda s: s.state.conversation is not None, "a conversation")
        ui.type("first" + KEY["enter"])
        await ui.watch.shows("me: first")
        ui.type("second" + KEY["enter"])
        await ui.watch.shows("me: second")
        ui.type(KEY["up"])
        await ui.watch.until(lambda s: s.input_text == "second", "the last line")
        ui.type(KEY["up"])
        await ui.watch.until(lambda s: s.input_text == "first", "the line before")
        ui.type(KEY["down"])
        await ui.watch.until(lambda s: s.input_text == "second", "the next line")


async def test_click_a_contact_opens_it(tmp_path: Path) -> None:
    node = two_contacts()
    async with running_ui(tmp_path, node) as ui:
        shot = await ui.watch.shows("◐ bob")
        row = next(i for i, line in enumerate(shot.text.split("\n")) if "◐ bob" in line)
        ui.type(click(3, row))
        shot = await ui.watch.until(
            lambda s: s.state.conversation is not None and s.state.conversation.peer == BOB,
            "bob's conversation",
        )
        assert shot.state.selected == BOB


async def test_keyboard_navigation_of_contacts(tmp_path: Path) -> None:
    node = two_contacts()
    async with running_ui(tmp_path, node) as ui:
        await ui.watch.shows("alice")
        ui.type(KEY["tab"] + KEY["down"] + KEY["enter"])
        shot = await ui.watch.until(
            lambda s: s.state.conversation is not None and s.state.conversation.peer == BOB,
            "bob's conversation",
        )
        assert shot.state.selected == BOB


async def test_help_on_question_mark_and_closing(tmp_path: Path) -> None:
    node = two_contacts()
    async with running_ui(tmp_path, node) as ui:
        await ui.watch.shows("alice")
        ui.type("?")
        await ui.watch.shows("Keys", "/quit")
        ui.type("q")
        await ui.watch.until(lambda s: s.screen.value == "main" and "Keys" not in s.text, "main")
        ui.type("why?")  # inside a line, ? is just a character
        shot = await ui.watch.until(lambda s: s.input_text == "why?", "the typed text")
        assert "Keys" not in shot.text


async def test_resizing_follows_the_terminal(tmp_path: Path) -> None:
    node = two_contacts()
    async with running_ui(tmp_path, node, columns=80, rows=24) as ui:
        await ui.watch.shows("alice")
        ui.output.size = Size(rows=30, columns=120)
        ui.type(KEY["ctrl-n"])  # any change redraws at the new size
        shot = await ui.watch.until(lambda s: s.size.columns == 120, "the wider screen")
        lines = shot.text.split("\n")
        assert len(lines) == 30
        assert len(lines[-3]) == 120  # the rule above the input line spans the width
        assert "alice" in shot.text


async def test_node_going_away_is_shown_not_raised(tmp_path: Path) -> None:
    node = two_contacts()
    async with running_ui(tmp_path, node) as ui:
        await ui.watch.shows("alice")
        ui.stop_node()
        shot = await ui.watch.shows("Node: not connected", "restart it with `anonsip run`")
        assert not shot.state.connected
        calls = len(node.ops)
        ui.type("/call alice" + KEY["enter"])  # the UI stays usable and says why it cannot
        await ui.watch.shows("call: not connected to the node")
        assert len(node.ops) == calls


async def test_escape_sequences_in_peer_text_are_shown_not_obeyed(tmp_path: Path) -> None:
    node = two_contacts()
    async with running_ui(tmp_path, node) as ui:
        await ui.watch.shows("alice")
        ui.type(KEY["ctrl-n"])
        await ui.watch.until(lambda s: s.state.conversation is not None, "a conversation")
        node.receive_message(ALICE, "clear\x1b[2Jscreen\x07")
        shot = await ui.watch.shows("alice: clear^[[2Jscreen^G")
        assert "\x1b" not in shot.text


def test_main_without_a_node_says_how_to_start_one(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert tui.main(str(tmp_path / "control.sock")) == 1
    err = capsys.readouterr().err
    assert "no node is running" in err
    assert "anonsip" in err
    assert "Traceback" not in err
