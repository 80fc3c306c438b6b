"""Slash commands: what parses, what is refused, and how."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tui._commands import COMMANDS, MAX_LINE, Command, UsageError, parse_command


def test_plain_text_is_not_a_command() -> None:
    assert parse_command("hello") is None
    assert parse_command("") is None
    assert parse_command("//not a command") is None


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("/add asip1xyz", Command(name="add", args=("asip1xyz",))),
        (
            "/add asip1xyz Bob the Builder",
            Command(name="add", args=("asip1xyz", "Bob the Builder")),
        ),
        ("/ACCEPT asip1xyz bob", Command(name="accept", args=("asip1xyz", "bob"))),
        ("/decline", Command(name="decline", args=())),
        ("/decline asip1xyz", Command(name="decline", args=("asip1xyz",))),
        ("/call", Command(name="call", args=())),
        ("/call  alice ", Command(name="call", args=("alice",))),
        ("/presence away at lunch", Command(name="presence", args=("away", "at lunch"))),
        ("/quit", Command(name="quit", args=())),
        ("/me", Command(name="me", args=())),
        ("/rename Bob Robert Smith", Command(name="rename", args=("Bob", "Robert Smith"))),
        (
            "/device input USB Headset Mic",
            Command(name="device", args=("input", "USB Headset Mic")),
        ),
        ("/unblock asip1xyz", Command(name="unblock", args=("asip1xyz",))),
    ],
)
def test_commands_parse(line: str, expected: Command) -> None:
    assert parse_command(line) == expected


@pytest.mark.parametrize(
    ("line", "says"),
    [
        ("/frobnicate", "unknown command /frobnicate"),
        ("/add", "usage: /add ADDRESS [NAME]"),
        ("/rename bob", "usage: /rename PEER NAME"),
        ("/device speaker x", "usage: /device"),
        ("/block a b", "usage: /block ADDRESS"),
        ("/quit now", "usage: /quit"),
        ("/presence sleeping", "usage: /presence"),
        ("/" + "x" * MAX_LINE, "too long"),
    ],
)
def test_bad_commands_say_how(line: str, says: str) -> None:
    with pytest.raises(UsageError, match=says.replace("[", r"\[").replace("]", r"\]")):
        parse_command(line)


def test_every_command_has_usage_starting_with_its_name() -> None:
    for name, spec in COMMANDS.items():
        assert spec.usage.startswith(f"/{name}")
        assert spec.summary


def test_arg_default() -> None:
    assert Command(name="call", args=()).arg(0, "bob") == "bob"


@given(st.text(max_size=60))
def test_any_line_parses_or_says_why(line: str) -> None:
    message = ""
    try:
        command = parse_command(line)
    except UsageError as exc:
        message = str(exc)
        assert message != ""
    else:
        assert command is None or command.name in COMMANDS
        assert (command is None) == (not line.startswith("/") or line.startswith("//"))
