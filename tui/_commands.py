"""Slash commands typed in the input line (``/add asip1… bob``), parsed without side effects.

Each command has a fixed number of space-separated arguments; its last
argument may take the rest of the line (a nick or a presence note with
spaces). ``parse_command`` returns a ``Command`` or raises ``UsageError``
with the usage line to show; running it is the application's job.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

__all__ = ["COMMANDS", "Command", "CommandSpec", "UsageError", "parse_command"]

MAX_LINE = 4096  # longer input is refused rather than sent


class UsageError(ValueError):
    """The line is not a valid command; ``str()`` says how to write it."""


@dataclasses.dataclass(frozen=True, kw_only=True)
class CommandSpec:
    usage: str
    summary: str
    required: int = 0
    optional: int = 0
    rest: bool = False  # the last argument takes the rest of the line


@dataclasses.dataclass(frozen=True, kw_only=True)
class Command:
    name: str
    args: tuple[str, ...]

    def arg(self, index: int, default: str = "") -> str:
        return self.args[index] if index < len(self.args) else default


COMMANDS: Mapping[str, CommandSpec] = {
    "add": CommandSpec(
        usage="/add ADDRESS [NAME]",
        summary="add a contact by the address they gave you (an existing one is renamed)",
        required=1,
        optional=1,
        rest=True,
    ),
    "rename": CommandSpec(
        usage="/rename PEER NAME",
        summary="give a contact another name",
        required=2,
        rest=True,
    ),
    "open": CommandSpec(usage="/open PEER", summary="open a conversation", required=1),
    "remove": CommandSpec(
        usage="/remove PEER",
        summary="remove a contact (asks first; cancels messages still queued for them)",
        required=1,
    ),
    "requests": CommandSpec(usage="/requests", summary="show contact requests (F3)"),
    "accept": CommandSpec(
        usage="/accept ADDRESS [NAME]",
        summary="accept a contact request and name them",
        required=1,
        optional=1,
        rest=True,
    ),
    "decline": CommandSpec(
        usage="/decline [ADDRESS]",
        summary="decline a contact request, or the incoming call",
        optional=1,
    ),
    "block": CommandSpec(usage="/block ADDRESS", summary="block an address", required=1),
    "unblock": CommandSpec(usage="/unblock ADDRESS", summary="unblock an address", required=1),
    "call": CommandSpec(usage="/call [PEER]", summary="call a contact (F6)", optional=1),
    "answer": CommandSpec(usage="/answer", summary="answer the incoming call (ctrl-a)"),
    "hangup": CommandSpec(usage="/hangup", summary="end the call (F8)"),
    "mute": CommandSpec(usage="/mute", summary="mute or unmute the microphone (F7)"),
    "hold": CommandSpec(usage="/hold", summary="hold or resume the call"),
    "devices": CommandSpec(usage="/devices", summary="list sound devices and choose (F9)"),
    "device": CommandSpec(
        usage="/device input|output NAME|default",
        summary="choose the microphone or speaker calls use, by name",
        required=2,
        rest=True,
    ),
    "verify": CommandSpec(
        usage="/verify [PEER]", summary="compare safety numbers with a contact (F5)", optional=1
    ),
    "me": CommandSpec(usage="/me", summary="show my address and its QR code (F4)"),
    "presence": CommandSpec(
        usage="/presence available|away|busy [NOTE]",
        summary="set my presence, with an optional note",
        required=1,
        optional=1,
        rest=True,
    ),
    "help": CommandSpec(usage="/help", summary="show keys and commands (F1)"),
    "quit": CommandSpec(usage="/quit", summary="leave the terminal UI (the node keeps running)"),
}

PRESENCE_STATES = ("available", "away", "busy")
DEVICE_KINDS = ("input", "output")


def parse_command(line: str) -> Command | None:
    """The command on ``line``, or None if it is a message (no leading ``/``).

    ``//text`` is a message starting with ``/``.
    """
    if not line.startswith("/") or line.startswith("//"):
        return None
    if len(line) > MAX_LINE:
        raise UsageError("that line is too long")
    head, _, tail = line[1:].partition(" ")
    name = head.lower()
    spec = COMMANDS.get(name)
    if spec is None:
        raise UsageError(f"unknown command /{head}; type /help for the list")
    most = spec.required + spec.optional
    if most == 0:
        args: list[str] = []
        if tail.strip():
            raise UsageError(f"usage: {spec.usage}")
    elif spec.rest:
        args = tail.split(maxsplit=most - 1)
    else:
        args = tail.split()
    if not spec.required <= len(args) <= most:
        raise UsageError(f"usage: {spec.usage}")
    if name == "presence" and args[0].lower() not in PRESENCE_STATES:
        raise UsageError(f"usage: {spec.usage}")
    if name == "device" and args[0].lower() not in DEVICE_KINDS:
        raise UsageError(f"usage: {spec.usage}")
    return Command(name=name, args=tuple(args))
