"""The control API's operations and events: names, arguments, results.

``OPERATIONS`` is the one list of what a client may ask a node; each entry
names its typed argument view and what its result is. Arguments are decoded
strictly (``Operation.parse_args``: a wrong or missing argument is the
client's mistake and gets a clear ``BadArguments`` error), results and
events tolerantly (``_views``). ``EVENTS`` maps each pushed event to its
view. docs/control-api.md is checked against both by a test.
"""

from __future__ import annotations

import dataclasses
import typing
from collections.abc import Mapping
from typing import Any, Final

from anonsip._errors import LocalError
from anonsip.control._views import (
    AudioDevicesView,
    CallStatsView,
    CallView,
    ContactView,
    IdentityView,
    InviteView,
    LookupView,
    MessageView,
    PresenceView,
    RequestView,
    SafetyNumberView,
    SeedView,
    StatusView,
    View,
    _decode_value,
)

__all__ = [
    "EVENTS",
    "OPERATIONS",
    "AcceptArgs",
    "AddressArgs",
    "Args",
    "BadArguments",
    "CallArgs",
    "CallIdArgs",
    "ContactAddArgs",
    "DeclineCallArgs",
    "HistoryArgs",
    "HoldArgs",
    "InviteArgs",
    "MuteArgs",
    "NoArgs",
    "Operation",
    "PeerArgs",
    "PresenceSetArgs",
    "Result",
    "SeedArgs",
    "SendArgs",
    "TransferAnswerArgs",
    "TransferArgs",
    "VerifyArgs",
]


class BadArguments(LocalError):
    """A client called an operation with missing or wrong arguments."""


@dataclasses.dataclass(frozen=True, kw_only=True)
class Args:
    """Base of operation arguments: decoded strictly from the request's map."""

    @classmethod
    def parse(cls, op: str, data: Mapping[str, Any]) -> Any:
        hints = typing.get_type_hints(cls)
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise BadArguments(f"{op} takes no argument {unknown[0]!r}")
        values: dict[str, Any] = {}
        for f in dataclasses.fields(cls):
            if f.name not in data or data[f.name] is None:
                if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                    raise BadArguments(f"{op} needs '{f.name}'")
                continue
            ok, value = _decode_value(hints[f.name], data[f.name])
            if not ok or (isinstance(value, str) and not value and f.name in _NON_EMPTY):
                raise BadArguments(f"{op}: '{f.name}' {_EXPECTED.get(hints[f.name], 'is wrong')}")
            values[f.name] = value
        return cls(**values)

    def encode(self) -> dict[str, Any]:
        """The request map; arguments left at None are not sent."""
        return {
            f.name: getattr(self, f.name)
            for f in dataclasses.fields(self)
            if getattr(self, f.name) is not None
        }


_NON_EMPTY = frozenset({"peer", "address", "text", "target", "status", "call_id", "contact"})
_EXPECTED: dict[Any, str] = {
    str: "must be given as text",
    str | None: "must be text if given",
    bool: "is true or false",
    int: "must be a whole number",
    int | None: "must be a whole number if given",
    float | None: "must be a number if given",
}


@dataclasses.dataclass(frozen=True, kw_only=True)
class NoArgs(Args):
    pass


@dataclasses.dataclass(frozen=True, kw_only=True)
class PeerArgs(Args):
    peer: str  # a contact's nick, an asip1… address or a sip: URI


@dataclasses.dataclass(frozen=True, kw_only=True)
class AddressArgs(Args):
    address: str


@dataclasses.dataclass(frozen=True, kw_only=True)
class ContactAddArgs(Args):
    address: str  # an address, a sip: URI or an invite
    nick: str


@dataclasses.dataclass(frozen=True, kw_only=True)
class AcceptArgs(Args):
    address: str
    nick: str | None = None


@dataclasses.dataclass(frozen=True, kw_only=True)
class VerifyArgs(Args):
    peer: str
    verified: bool = True


@dataclasses.dataclass(frozen=True, kw_only=True)
class InviteArgs(Args):
    days: int = 7  # how long the invite lasts


@dataclasses.dataclass(frozen=True, kw_only=True)
class SeedArgs(Args):
    contact: str  # ONION[:PORT] or an invite


@dataclasses.dataclass(frozen=True, kw_only=True)
class SendArgs(Args):
    peer: str
    text: str


@dataclasses.dataclass(frozen=True, kw_only=True)
class HistoryArgs(Args):
    peer: str
    limit: int = 100


@dataclasses.dataclass(frozen=True, kw_only=True)
class PresenceSetArgs(Args):
    status: str
    note: str | None = None


@dataclasses.dataclass(frozen=True, kw_only=True)
class CallArgs(Args):
    peer: str
    play: str | None = None
    record: str | None = None
    record_rate: int | None = None
    seconds: float | None = None
    input_device: str | None = None
    output_device: str | None = None


@dataclasses.dataclass(frozen=True, kw_only=True)
class CallIdArgs(Args):
    call_id: str | None = None


@dataclasses.dataclass(frozen=True, kw_only=True)
class AnswerArgs(Args):
    call_id: str | None = None
    play: str | None = None
    record: str | None = None
    record_rate: int | None = None
    input_device: str | None = None
    output_device: str | None = None


@dataclasses.dataclass(frozen=True, kw_only=True)
class DeclineCallArgs(Args):
    call_id: str | None = None
    busy: bool = False


@dataclasses.dataclass(frozen=True, kw_only=True)
class MuteArgs(Args):
    call_id: str | None = None
    muted: bool = True


@dataclasses.dataclass(frozen=True, kw_only=True)
class HoldArgs(Args):
    call_id: str | None = None
    held: bool = True


@dataclasses.dataclass(frozen=True, kw_only=True)
class TransferArgs(Args):
    call_id: str | None = None
    target: str


@dataclasses.dataclass(frozen=True, kw_only=True)
class TransferAnswerArgs(Args):
    call_id: str | None = None
    accept: bool


@dataclasses.dataclass(frozen=True, kw_only=True)
class Result:
    """What an operation returns: nothing, one view, or a list of views."""

    view: type[View] | None = None
    many: bool = False

    def describe(self) -> str:
        if self.view is None:
            return "null"
        return f"list of {self.view.__name__}" if self.many else self.view.__name__


@dataclasses.dataclass(frozen=True, kw_only=True)
class Operation:
    name: str
    args: type[Args]
    result: Result
    summary: str

    def parse_args(self, data: Mapping[str, Any]) -> Any:
        return self.args.parse(self.name, data)


def _op(name: str, args: type[Args], result: Result, summary: str) -> tuple[str, Operation]:
    return name, Operation(name=name, args=args, result=result, summary=summary)


NOTHING: Final = Result()

OPERATIONS: Final[Mapping[str, Operation]] = dict(
    [
        _op("status", NoArgs, Result(view=StatusView), "the node's state"),
        _op("identity", NoArgs, Result(view=IdentityView), "who this node is"),
        _op("contacts.list", NoArgs, Result(view=ContactView, many=True), "every contact"),
        _op("contacts.add", ContactAddArgs, Result(view=ContactView), "add or rename a contact"),
        _op("contacts.remove", PeerArgs, NOTHING, "remove a contact and its queued messages"),
        _op("contacts.verify", VerifyArgs, Result(view=ContactView), "mark a contact verified"),
        _op("safety_number", PeerArgs, Result(view=SafetyNumberView), "the safety number"),
        _op("send", SendArgs, Result(view=MessageView), "queue a message"),
        _op("history", HistoryArgs, Result(view=MessageView, many=True), "a conversation"),
        _op("read", PeerArgs, NOTHING, "mark a conversation read"),
        _op("requests", NoArgs, Result(view=RequestView, many=True), "contact requests"),
        _op("accept", AcceptArgs, Result(view=ContactView), "accept a contact request"),
        _op("decline", AddressArgs, NOTHING, "decline a contact request"),
        _op("block", AddressArgs, NOTHING, "block an address"),
        _op("unblock", AddressArgs, NOTHING, "unblock an address"),
        _op("lookup", AddressArgs, Result(view=LookupView), "a pseudonym's registration"),
        _op("presence.set", PresenceSetArgs, NOTHING, "set our presence"),
        _op("call", CallArgs, Result(view=CallView), "call a contact"),
        _op("answer", AnswerArgs, NOTHING, "answer a ringing call"),
        _op("call.decline", DeclineCallArgs, NOTHING, "decline a ringing call"),
        _op("hangup", CallIdArgs, NOTHING, "hang up"),
        _op("call.mute", MuteArgs, NOTHING, "mute or unmute our microphone"),
        _op("call.hold", HoldArgs, NOTHING, "hold or resume"),
        _op("call.transfer", TransferArgs, NOTHING, "ask the peer to call someone else"),
        _op("call.transfer_answer", TransferAnswerArgs, NOTHING, "allow or refuse a transfer"),
        _op("calls", NoArgs, Result(view=CallView, many=True), "every call"),
        _op("audio.devices", NoArgs, Result(view=AudioDevicesView), "the sound devices"),
        _op("subscribe", NoArgs, NOTHING, "receive events on this connection"),
        _op("invite", InviteArgs, Result(view=InviteView), "an invite to share"),
        _op("bootstrap.add", SeedArgs, NOTHING, "join the DHT through this contact too"),
        _op("bootstrap.list", NoArgs, Result(view=SeedView, many=True), "where we join the DHT"),
        _op("bootstrap.remove", SeedArgs, NOTHING, "forget a contact given to join through"),
        _op("shutdown", NoArgs, NOTHING, "unregister and stop the node"),
    ]
)

EVENTS: Final[Mapping[str, type[View]]] = {
    "status": StatusView,
    "message": MessageView,
    "request": RequestView,
    "contact": ContactView,
    "presence": PresenceView,
    "call": CallView,
    "call.stats": CallStatsView,
}
