"""The real prompt_toolkit application against a real ControlServer and a node double.

Keys go in through prompt_toolkit's pipe input; every assertion reads the
screen as the terminal would show it (80x24 unless a test says otherwise).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from prompt_toolkit.data_structures import Size

import tui
from anonsip.control import CallState, ContactView, NodePhase, PresenceStatus, TorView
from tests.unit.tui.harness import (
    ALICE,
    BOB,
    CAROL,
    KEY,
    ME,
    RESTART,
    NodeDouble,
    Running,
    Snapshot,
    click,
    paste,
    running_ui,
    wheel,
)


def two_contacts() -> NodeDouble:
    node = NodeDouble()
    node.add_contact(ALICE, "alice", verified=True, unread=2)
    node.add_contact(BOB, "bob", presence="away")
    return node


def unwrapped(text: str) -> str:
    """The screen's words in order, frame borders and line breaks taken out."""
    return " ".join(line.strip().strip("│").strip() for line in text.split("\n"))


def inside_frame(line: str) -> str:
    """What a row of a framed screen holds between the frame's borders."""
    parts = line.split("│")
    return parts[1].strip() if len(parts) > 2 else ""


def conversation_of(shot: Snapshot) -> list[str]:
    """The rows right of the contacts pane, below the conversation's title."""
    rows = shot.text.split("\n")[3:]
    return [row.partition("│")[2] for row in rows if "│" in row]


async def open_conversation(ui: Running, name: str) -> Snapshot:
    await ui.watch.until(lambda s: len(s.state.contacts) > 0, "the contacts")
    ui.type(f"/open {name}" + KEY["enter"])
    return await ui.watch.until(
        lambda s: s.state.conversation is not None and s.state.conversation.loaded,
        f"{name}'s conversation",
    )


async def test_80x24_shows_the_key_elements(tmp_path: Path) -> None:
    async with running_ui(tmp_path, two_contacts()) as ui:
        shot = await ui.watch.shows("alice", "bob", "registered")
        lines = shot.text.split("\n")
        assert len(lines) == 24
        assert all(len(line) <= 80 for line in lines)
        assert "100% Done" in lines[0]
        assert "DHT 7 peers" in lines[0]
        assert "me: available" in lines[0]
        assert "● alice ✓ (2)" in shot.text
        assert "◐ bob" in shot.text
        assert lines[-2] == ">"  # the prompt, rows read without trailing spaces
        assert "F1: help" in lines[-1]


async def test_tor_bootstrap_progress_and_node_phase(tmp_path: Path) -> None:
    node = two_contacts()
    node.status = node.status.__class__(
        phase=NodePhase.BOOTSTRAPPING, tor=TorView(progress=45, phase="Loading relay descriptors")
    )
    async with running_ui(tmp_path, node) as ui:
        shot = await ui.watch.shows("45% Loading relay descriptors")
        first = shot.text.split("\n")[0]
        assert "████░░░░░░" in first
        assert "node bootstrapping tor" in first
        node.set_status(phase=NodePhase.RUNNING, tor=TorView(progress=100, phase="Done"))
        shot = await ui.watch.shows("100% Done")
        assert "node " not in shot.text.split("\n")[0]


async def test_a_sent_message_shows_each_honest_state_once(tmp_path: Path) -> None:
    node = two_contacts()
    async with running_ui(tmp_path, node) as ui:
        await ui.watch.shows("alice")
        ui.type(KEY["ctrl-n"])  # opens the first contact
        await ui.watch.until(
            lambda s: s.state.conversation is not None and s.state.conversation.loaded,
            "alice's conversation",
        )
        ui.type("hello there" + KEY["enter"])
        shot = await ui.watch.shows("me: hello there  … queued")
        assert node.called("send") == [{"peer": ALICE, "text": "hello there"}]
        assert shot.input_text == ""
        (message,) = node.messages[ALICE]
        for state, mark in (("sent", "✓ sent"), ("delivered", "✓✓ delivered")):
            node.advance(ALICE, message.message_id, state)
            shot = await ui.watch.shows(f"me: hello there  {mark}")
        assert "queued" not in shot.text
        # The send reply and the message events are one message, shown once.
        assert shot.text.count("hello there") == 1
        assert len(shot.state.conversation.messages) == 1  # type: ignore[union-attr]


async def test_a_message_to_an_unreachable_peer_stays_queued(tmp_path: Path) -> None:
    node = two_contacts()
    async with running_ui(tmp_path, node) as ui:
        await open_conversation(ui, "bob")
        ui.type("are you there?" + KEY["enter"])
        await ui.watch.shows("me: are you there?  … queued")
        # Other news arrives (the outbox counts it); nothing says it left.
        node.set_status(outbox=1)
        shot = await ui.watch.shows("outbox 1")
        assert "me: are you there?  … queued" in shot.text
        assert "sent" not in unwrapped(shot.text)
        assert "delivered" not in shot.text


async def test_a_request_not_yet_accepted_looks_like_one(tmp_path: Path) -> None:
    node = two_contacts()
    async with running_ui(tmp_path, node) as ui:
        await ui.watch.shows("alice")
        ui.type(f"/open {CAROL}" + KEY["enter"])  # a stranger's address
        await ui.watch.shows("no messages yet", "not a contact")
        ui.type("hi, it's me from the meetup" + KEY["enter"])
        await ui.watch.shows("… queued")
        (message,) = node.messages[CAROL]
        node.advance(CAROL, message.message_id, "request")
        shot = await ui.watch.shows("? request, not accepted yet")
        assert "delivered" not in shot.text
        assert "has not accepted you yet" in shot.text.split("\n")[1]
        assert "? asip1qcaro" in shot.text  # in the contacts pane, as a request


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
        await ui.watch.until(lambda s: len(node.called("read")) >= 2, "a second read")
        assert node.contacts[ALICE].unread == 0
        # A message for bob, not on screen, counts as unread in the contacts pane.
        node.receive_message(BOB, "psst")
        await ui.watch.shows("◐ bob (1)")


async def test_incoming_call_answered_then_a_line_in_the_conversation(tmp_path: Path) -> None:
    node = two_contacts()
    async with running_ui(tmp_path, node) as ui:
        await open_conversation(ui, "bob")
        ui.type(KEY["f1"])  # even over the help screen
        await ui.watch.shows("Keys", "ctrl-a / ctrl-d")
        call_id = node.offer_call(BOB)
        await ui.watch.shows("Incoming call from bob", "ctrl-a answer", "ctrl-d decline")
        ui.type(KEY["ctrl-a"])
        shot = await ui.watch.shows("In call: bob", "mic on")
        assert node.called("answer") == [{"call_id": call_id}]
        assert "Incoming call" not in shot.text
        node.call_stats(call_id, playout_delay_ms=180.0, concealed_frames=3, mos=4.2)
        await ui.watch.shows("delay 180 ms", "concealed 3", "MOS 4.2")
        ui.type(KEY["f7"])
        await ui.watch.shows("In call: bob", "muted")
        assert node.calls[call_id].muted is True
        ui.type(KEY["escape"])
        await ui.watch.until(lambda s: "Keys" not in s.text, "the help closed")
        ui.type(KEY["f8"])
        shot = await ui.watch.shows("Call with bob ended: hung up", "· call, 2:31")
        assert "In call" not in shot.text
        assert shot.state.calls == ()


async def test_a_call_not_answered_is_a_missed_call(tmp_path: Path) -> None:
    node = two_contacts()
    async with running_ui(tmp_path, node) as ui:
        await open_conversation(ui, "bob")
        call_id = node.offer_call(BOB)
        await ui.watch.shows("Incoming call from bob")
        node.end_call(call_id, "remote-cancelled")
        shot = await ui.watch.shows("· missed call")
        assert "Incoming call" not in shot.text


async def test_incoming_call_declined(tmp_path: Path) -> None:
    node = two_contacts()
    async with running_ui(tmp_path, node) as ui:
        await ui.watch.shows("bob")
        ui.type("half a mess")  # typing in the input line does not block the keys
        call_id = node.offer_call(BOB)
        await ui.watch.shows("Incoming call from bob")
        ui.type(KEY["ctrl-d"])
        shot = await ui.watch.shows("Call with bob ended: declined")
        assert node.called("call.decline") == [{"call_id": call_id, "busy": False}]
        assert "Incoming call" not in shot.text
        assert shot.input_text == "half a mess"


async def test_outgoing_call_with_slash_command(tmp_path: Path) -> None:
    node = two_contacts()
    async with running_ui(tmp_path, node) as ui:
        await ui.watch.shows("alice")
        ui.type("/call ALICE" + KEY["enter"])  # a name in any case
        await ui.watch.shows("Calling alice…")
        assert node.called("call") == [{"peer": "ALICE"}]
        (call_id,) = node.calls
        node.update_call(call_id, state=CallState.ACTIVE)
        await ui.watch.shows("In call: alice", "00:0")
        ui.type("/hangup" + KEY["enter"])
        await ui.watch.shows("Call with alice ended")


async def test_a_transfer_needs_consent(tmp_path: Path) -> None:
    node = two_contacts()
    async with running_ui(tmp_path, node) as ui:
        await ui.watch.shows("bob")
        call_id = node.offer_call(BOB)
        await ui.watch.shows("Incoming call from bob")
        ui.type(KEY["ctrl-a"])
        await ui.watch.shows("In call: bob")
        node.update_call(call_id, transfer_to=CAROL)
        await ui.watch.shows("bob asks you to call asip1qcaro", "ctrl-a allow", "ctrl-d refuse")
        ui.type(KEY["ctrl-d"])
        shot = await ui.watch.shows("Transfer refused.")
        assert node.called("call.transfer_answer") == [{"call_id": call_id, "accept": False}]
        assert "asks you to call" not in shot.text


async def test_calls_use_the_devices_chosen_by_name(tmp_path: Path) -> None:
    node = two_contacts()
    async with running_ui(tmp_path, node) as ui:
        await ui.watch.shows("alice")
        ui.type(KEY["f9"])
        await ui.watch.shows("Sound devices", "USB Headset Mic", "Built-in Speakers")
        ui.type(KEY["down"] + KEY["down"] + KEY["enter"])  # the second microphone
        await ui.watch.shows("● USB Headset Mic", "Calls use the microphone 'USB Headset Mic'")
        ui.type(KEY["escape"])
        await ui.watch.until(lambda s: s.screen.value == "main", "the main screen")
        ui.type("/device output USB Headset" + KEY["enter"])
        await ui.watch.shows("Calls use the speaker 'USB Headset'")
        ui.type("/call bob" + KEY["enter"])
        await ui.watch.shows("Calling bob…")
        assert node.called("call") == [
            {"peer": "bob", "input_device": "USB Headset Mic", "output_device": "USB Headset"}
        ]


async def test_contact_request_accepted_with_a_name(tmp_path: Path) -> None:
    node = two_contacts()
    async with running_ui(tmp_path, node) as ui:
        await ui.watch.shows("alice")
        node.request(CAROL, "hi, it's Carol from the meetup")
        await ui.watch.shows("1 request(s) F3")
        ui.type(KEY["f3"])
        await ui.watch.shows("Contact requests", CAROL, "Carol from the meetup")
        ui.type("a")
        await ui.watch.shows("Accept contact request", "Name:")
        ui.type("Carol" + KEY["enter"])
        shot = await ui.watch.shows("Accepted Carol.", "● Carol")
        assert node.called("accept") == [{"address": CAROL, "nick": "Carol"}]
        assert "request(s)" not in shot.text.split("\n")[0]
        assert shot.screen.value == "main"


async def test_rename_a_contact(tmp_path: Path) -> None:
    node = two_contacts()
    async with running_ui(tmp_path, node) as ui:
        await ui.watch.shows("bob")
        ui.type("/rename Bob Robert Smith" + KEY["enter"])  # a name in any case
        shot = await ui.watch.shows("◐ Robert Smith", "Renamed bob to Robert Smith.")
        assert node.called("contacts.add") == [{"address": BOB, "nick": "Robert Smith"}]
        assert "◐ bob" not in shot.text
        # /add with a contact's address renames it too, and says so.
        ui.type(f"/add {BOB} Bobby" + KEY["enter"])
        await ui.watch.shows("◐ Bobby", "Renamed Robert Smith to Bobby.")


async def test_contact_request_blocked_by_command(tmp_path: Path) -> None:
    node = two_contacts()
    async with running_ui(tmp_path, node) as ui:
        await ui.watch.shows("alice")
        node.request(CAROL, "buy now")
        await ui.watch.shows("1 request(s)")
        ui.type(f"/block {CAROL}" + KEY["enter"])
        shot = await ui.watch.shows(f"Blocked {CAROL}")
        assert "request(s)" not in shot.text.split("\n")[0]
        assert node.called("block") == [{"address": CAROL}]


async def test_presence_comes_from_presence_events_and_survives_contact_updates(
    tmp_path: Path,
) -> None:
    node = two_contacts()
    async with running_ui(tmp_path, node) as ui:
        await ui.watch.shows("● alice")
        node.set_presence(ALICE, "busy", "in a meeting")
        await ui.watch.shows("⊘ alice")
        ui.type(KEY["ctrl-n"])
        await ui.watch.shows("busy — in a meeting", "✓ verified")
        # A contact update that knows nothing of presence (as a node once sent)
        # does not reset what the presence events said.
        stale = ContactView(address=ALICE, nick="alice", verified=True)
        assert stale.presence is PresenceStatus.UNKNOWN
        node.publish("contact", stale)
        ui.type("/verify alice" + KEY["enter"])
        ui.type("v")
        await ui.watch.shows("Marked verified.")
        ui.type(KEY["escape"])
        await ui.watch.shows("⊘ alice ✓", "busy — in a meeting")
        node.set_presence(ALICE, "offline")
        await ui.watch.shows("○ alice")


async def test_verify_screen_compares_and_marks_verified(tmp_path: Path) -> None:
    node = two_contacts()
    async with running_ui(tmp_path, node) as ui:
        await open_conversation(ui, "BOB")  # any case
        await ui.watch.shows("not verified (F5)")
        ui.type(KEY["f5"])
        shot = await ui.watch.shows("Verify bob", "12345 67890 11111 22222")
        assert any(inside_frame(line) == BOB for line in shot.text.split("\n"))
        assert "ASIPSN1" not in shot.text
        ui.type("v")
        await ui.watch.shows("Status: verified ✓")
        assert node.contacts[BOB].verified is True
        assert node.called("contacts.verify") == [{"peer": BOB, "verified": True}]
        ui.type("q")
        await ui.watch.shows("◐ bob ✓", "bob  away · ✓ verified")


async def test_my_address_screen_shows_the_address_whole_and_a_qr_code(tmp_path: Path) -> None:
    node = two_contacts()
    async with running_ui(tmp_path, node) as ui:
        await ui.watch.shows("alice")
        ui.type(KEY["f4"])
        shot = await ui.watch.shows("My address", ME)
        lines = shot.text.split("\n")
        # One line holds the address and nothing else: a mouse copies it whole.
        assert any(inside_frame(line) == ME for line in lines)
        assert any("▀" in line or "▄" in line for line in lines)
        assert "fingerprint" not in shot.text.lower()
        assert "ASIPSN1" not in shot.text
        ui.type(KEY["escape"])
        ui.type("/me" + KEY["enter"])
        await ui.watch.shows("My address", ME)


async def test_add_contact_dialog_tab_label_and_error_keep_the_address(tmp_path: Path) -> None:
    dave = "asip1qdave98765432109876543210987654321098765432109876543210abc"
    node = two_contacts()
    async with running_ui(tmp_path, node) as ui:
        await ui.watch.shows("alice")
        ui.type(KEY["f2"])
        await ui.watch.shows("Add contact", "Address:", "Name:")
        ui.type("12345" + KEY["tab"] + "dave" + KEY["enter"])
        shot = await ui.watch.shows("is neither a contact's name nor an address")
        # The whole reason, and the dialog still open with what was typed.
        assert "it must start with 'asip1')" in unwrapped(shot.text)
        assert shot.screen.value == "form"
        assert "Address: 12345" in shot.text
        assert "Name:    dave" in shot.text
        assert "contacts.add" not in shot.text
        ui.type(KEY["shift-tab"] + "\x7f" * 5 + dave)
        await ui.watch.shows(f"Address: {dave}")  # the label stays beside a long address
        ui.type(KEY["enter"] + KEY["enter"])  # to the name, then done
        shot = await ui.watch.shows("? dave", "Added dave.")
        assert node.called("contacts.add")[-1] == {"address": dave, "nick": "dave"}
        assert shot.screen.value == "main"
        assert shot.state.conversation is not None
        assert shot.state.conversation.peer == dave


async def test_an_address_pasted_with_its_line_break_stays_in_its_field(tmp_path: Path) -> None:
    node = two_contacts()
    async with running_ui(tmp_path, node) as ui:
        await ui.watch.shows("alice")
        ui.type(KEY["f2"])
        await ui.watch.shows("Add contact")
        ui.type(paste(CAROL + "\n") + KEY["tab"] + "carol")
        shot = await ui.watch.shows(f"Address: {CAROL}", "Name:    carol")
        assert node.called("contacts.add") == []  # the line break did not submit it
        ui.type(KEY["enter"])
        await ui.watch.shows("Added carol.")
        assert node.called("contacts.add") == [{"address": CAROL, "nick": "carol"}]
        assert shot.screen.value == "form"


async def test_a_long_error_is_readable_whole_without_internal_names(tmp_path: Path) -> None:
    node = two_contacts()
    async with running_ui(tmp_path, node) as ui:
        await ui.watch.shows("alice")
        ui.type("/add 12345 eve" + KEY["enter"])
        shot = await ui.watch.shows("is neither a contact's name")
        bottom = unwrapped("\n".join(shot.text.split("\n")[-3:]))
        assert (
            "'12345' is neither a contact's name nor an address ('12345' is not an anonsip"
            " address: it must start with 'asip1')"
        ) in bottom
        assert "contacts.add" not in shot.text
        assert shot.state.notice is not None
        assert shot.state.notice.error
        ui.type("/frob" + KEY["enter"])
        shot = await ui.watch.shows("unknown command /frob")
        assert shot.input_text == "/frob"  # kept, to be corrected


async def test_notices_clear_themselves(tmp_path: Path) -> None:
    node = two_contacts()
    async with running_ui(tmp_path, node, notice_seconds=0.3) as ui:
        await ui.watch.shows("alice")
        ui.type("/presence away at lunch" + KEY["enter"])
        await ui.watch.shows("You are now away: at lunch", "me: away")
        shot = await ui.watch.shows("F1: help")
        assert "You are now away" not in shot.text


async def test_keys_without_a_call_say_so(tmp_path: Path) -> None:
    node = two_contacts()
    async with running_ui(tmp_path, node) as ui:
        await ui.watch.shows("alice")
        ui.type(KEY["f7"])
        await ui.watch.shows("No call to mute.")
        ui.type(KEY["f8"])
        await ui.watch.shows("No call to hang up.")
        assert node.called("call.mute") == node.called("hangup") == []


async def test_open_a_stranger_by_name_says_so_and_wrong_case_finds_the_contact(
    tmp_path: Path,
) -> None:
    node = two_contacts()
    async with running_ui(tmp_path, node) as ui:
        await ui.watch.shows("alice")
        ui.type("/open carol" + KEY["enter"])
        shot = await ui.watch.shows("No contact is called 'carol'")
        assert shot.state.conversation is None
        assert "loading" not in shot.text
        shot = await open_conversation(ui, "Bob")
        assert shot.state.conversation is not None
        assert shot.state.conversation.peer == BOB


async def test_remove_asks_first_and_says_what_is_cancelled(tmp_path: Path) -> None:
    node = two_contacts()
    async with running_ui(tmp_path, node) as ui:
        await open_conversation(ui, "bob")
        ui.type("one" + KEY["enter"] + "two" + KEY["enter"])
        await ui.watch.shows("me: two  … queued")
        ui.type("/remove bob" + KEY["enter"])
        await ui.watch.shows("Remove bob?", "2 messages still queued for bob will be cancelled")
        ui.type("n")
        await ui.watch.until(lambda s: s.screen.value == "main", "the main screen")
        assert node.called("contacts.remove") == []
        ui.type("/remove bob" + KEY["enter"])
        await ui.watch.shows("Remove bob?")
        ui.type("y")
        shot = await ui.watch.shows("Removed bob; 2 queued messages cancelled.")
        assert node.called("contacts.remove") == [{"peer": BOB}]
        assert "bob" not in shot.text.split("\n")[1]
        assert shot.state.conversation is None


async def test_page_up_and_the_wheel_reach_the_first_message(tmp_path: Path) -> None:
    node = two_contacts()
    node.history_of(BOB, *(f"note {i:02d}." for i in range(60)))
    async with running_ui(tmp_path, node) as ui:
        shot = await open_conversation(ui, "bob")
        shot = await ui.watch.shows("note 59.")
        assert "note 00." not in shot.text
        for _ in range(6):
            ui.type(KEY["pageup"])
        shot = await ui.watch.shows("note 00.")
        assert "note 59." not in shot.text
        assert "more lines: PageDown" in shot.text
        for _ in range(6):
            ui.type(KEY["pagedown"])
        shot = await ui.watch.shows("note 59.")
        assert "more lines" not in shot.text
        for _ in range(25):
            ui.type(wheel(40, 10, up=True))
        shot = await ui.watch.shows("note 00.")
        for _ in range(25):
            ui.type(wheel(40, 10, up=False))
        await ui.watch.shows("note 59.")


async def test_help_fits_80x24_by_scrolling_to_quit(tmp_path: Path) -> None:
    node = two_contacts()
    async with running_ui(tmp_path, node) as ui:
        await ui.watch.shows("alice")
        ui.type(KEY["f1"])
        shot = await ui.watch.shows("Keys", "Tab / shift-Tab")
        assert "leave the terminal UI" not in shot.text
        assert "more lines: PageDown" in shot.text
        for _ in range(4):
            ui.type(KEY["pagedown"])
        shot = await ui.watch.shows("/quit", "leave the terminal UI")
        assert all(len(line) <= 80 for line in shot.text.split("\n"))
        ui.type("q")
        await ui.watch.until(lambda s: s.screen.value == "main" and "Keys" not in s.text, "main")


async def test_question_mark_is_a_message_not_help(tmp_path: Path) -> None:
    node = two_contacts()
    async with running_ui(tmp_path, node) as ui:
        await open_conversation(ui, "alice")
        ui.type("?")
        shot = await ui.watch.until(lambda s: s.input_text == "?", "the typed ?")
        assert "Keys" not in shot.text
        ui.type(KEY["enter"])
        await ui.watch.shows("me: ?  … queued")
        assert node.called("send") == [{"peer": ALICE, "text": "?"}]


async def test_a_long_paste_keeps_the_prompt_and_wraps(tmp_path: Path) -> None:
    node = two_contacts()
    text = " ".join(f"word{i}" for i in range(40))  # about 270 characters, two lines
    async with running_ui(tmp_path, node) as ui:
        await open_conversation(ui, "alice")
        ui.type(paste(text.replace("word30 ", "word30\n")))  # a line break in it
        shot = await ui.watch.until(lambda s: s.input_text.startswith("word0"), "the paste")
        assert "\n" not in shot.input_text
        lines = shot.text.split("\n")
        first = next(i for i, line in enumerate(lines) if line.startswith("> "))
        assert lines[first].startswith("> word0 word1")
        assert "word39" in "\n".join(lines[first:])  # the end of it too, wrapped
        ui.type(KEY["enter"])
        shot = await ui.watch.shows("word39", "… queued")
        assert shot.text.split("\n")[-2] == ">"


async def test_the_conversation_wraps_at_word_boundaries(tmp_path: Path) -> None:
    node = two_contacts()
    sentence = (
        "the machine wrapped every word whole, however long the message turned out "
        "to be, and the hanging indent kept the text under the text of this message"
    )
    async with running_ui(tmp_path, node) as ui:
        await open_conversation(ui, "alice")
        node.receive_message(ALICE, sentence)
        shot = await ui.watch.shows("alice: the machine")
        rows = [row.strip() for row in conversation_of(shot) if row.strip()]
        words = " ".join(rows).split()
        for word in sentence.split():
            assert word in words, (word, rows)
        assert len(rows) >= 3


async def test_input_history_with_up_and_down(tmp_path: Path) -> None:
    node = two_contacts()
    async with running_ui(tmp_path, node) as ui:
        await open_conversation(ui, "alice")
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


async def test_node_going_away_says_how_to_restart_it(tmp_path: Path) -> None:
    node = two_contacts()
    async with running_ui(tmp_path, node) as ui:
        await ui.watch.shows("● alice")
        ui.stop_node()
        shot = await ui.watch.shows("Node: not connected", "Start it again with:")
        assert RESTART in unwrapped(shot.text)
        assert "anonsip run" not in shot.text
        assert "● alice" not in shot.text  # no stale "available"
        assert not shot.state.connected
        calls = len(node.ops)
        ui.type("/call alice" + KEY["enter"])  # the UI stays usable and says why it cannot
        await ui.watch.shows("Not connected to the node")
        assert len(node.ops) == calls


async def test_the_restart_hint_stays_after_its_notice_cleared(tmp_path: Path) -> None:
    node = two_contacts()
    async with running_ui(tmp_path, node, notice_seconds=0.2) as ui:
        await ui.watch.shows("● alice")
        ui.stop_node()
        await ui.watch.shows("The node stopped. Start it again with:")
        shot = await ui.watch.shows("Node stopped. Start it again with:")
        assert "The node stopped" not in shot.text  # the notice cleared; the hint stays
        assert RESTART in unwrapped(shot.text)


async def test_escape_sequences_in_peer_text_are_shown_not_obeyed(tmp_path: Path) -> None:
    node = two_contacts()
    async with running_ui(tmp_path, node) as ui:
        await open_conversation(ui, "alice")
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
