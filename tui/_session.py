"""The UI's side of one control connection (docs/control-api.md).

``Session`` runs operations on the node through ``AsyncioControlClient``
with the schema's typed arguments (``anonsip.control.SendArgs`` …), folds
every reply and pushed event into the ``ViewState`` with the pure reducers
of ``tui._model``, and tells the screen to redraw. A failed operation
becomes the notice the node wrote for the user (or a ``Failed`` its caller
shows elsewhere, as a dialog does); a lost connection becomes "Node: not
connected" with the command that restarts the node. It never raises a
node error.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections.abc import Callable, Mapping
from typing import Any

from anonsip import AnonsipError
from anonsip.control import (
    AcceptArgs,
    AddressArgs,
    AnswerArgs,
    Args,
    AsyncioControlClient,
    CallArgs,
    CallIdArgs,
    ContactAddArgs,
    ContactView,
    ControlConnectionClosed,
    DeclineCallArgs,
    HistoryArgs,
    HoldArgs,
    MessageDirection,
    MessageView,
    MuteArgs,
    NoArgs,
    NodeError,
    PeerArgs,
    PresenceSetArgs,
    SchemaError,
    SendArgs,
    TransferAnswerArgs,
    VerifyArgs,
)
from tui import _model
from tui._devices_screen import DeviceChoice
from tui._model import ViewState

__all__ = ["HISTORY_LIMIT", "Failed", "Session"]

logger = logging.getLogger(__name__)

HISTORY_LIMIT = 200  # messages fetched when a conversation opens

_INITIAL_OPS = ("status", "identity", "contacts.list", "requests", "calls")


@dataclasses.dataclass(frozen=True)
class Failed:
    """What ``Session.run`` returns when an operation did not succeed: the reason."""

    message: str


def _plural(count: int, word: str) -> str:
    return f"{count} {word}" if count == 1 else f"{count} {word}s"


class Session:
    def __init__(
        self,
        client: AsyncioControlClient,
        *,
        on_change: Callable[[], None],
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._client = client
        self._on_change = on_change
        self._clock = clock
        self._state = ViewState()
        self._subscribed = asyncio.Event()
        self.devices = DeviceChoice()

    @property
    def state(self) -> ViewState:
        return self._state

    def update(self, change: Callable[[ViewState], ViewState]) -> None:
        new = change(self._state)
        if new is not self._state:
            self._state = new
            self._on_change()

    def notice(self, text: str, *, error: bool = False) -> None:
        self.update(lambda s: _model.set_notice(s, text, error=error))

    async def run(self, op: str, args: Args | None = None, *, notify: bool = True) -> Any:
        """``op`` on the node, its result folded into the state; a ``Failed`` if it failed.

        With ``notify`` the reason is also the notice; without, the caller shows it.
        """
        args = args if args is not None else NoArgs()
        failure: str | None = None
        if op != "subscribe" and not self._state.connected:
            failure = (
                "Not connected to the node. Start it again with: "
                f"{_model.restart_hint(self._state)}"
            )
        else:
            try:
                result = await self._client.call(op, **args.encode())
            except NodeError as exc:
                failure = exc.message
            except ControlConnectionClosed:
                self.update(lambda s: _model.set_connected(s, False))
                return Failed(self._state.notice.text if self._state.notice else "")
            except AnonsipError as exc:  # e.g. a malformed frame from the node
                logger.warning("a control operation failed: %s", exc)
                failure = str(exc)
        if failure is not None:
            message = failure
            if notify:
                self.update(lambda s: _model.apply_error(s, op, message))
            return Failed(message)
        self.update(lambda s: _model.apply_result(s, op, args, result, now=self._clock()))
        return result

    async def follow_events(self) -> None:
        """Subscribe, then apply events until the node goes away."""
        if isinstance(await self.run("subscribe"), Failed):
            return
        self.update(lambda s: _model.set_connected(s, True))
        self._subscribed.set()
        try:
            async for event in self._client.events():
                self._apply_event(event.event, event.data)
                if event.event == "message":
                    await self._read_if_open(event.data)
        except AnonsipError as exc:
            logger.info("control connection ended: %s", exc)
        self.update(lambda s: _model.set_connected(s, False))

    def _apply_event(self, name: str, data: Any) -> None:
        self.update(lambda s: _model.apply_event(s, name, data, now=self._clock()))

    async def load(self) -> None:
        """Fetch what the screens show, once the event stream is live (so nothing is missed)."""
        await self._subscribed.wait()
        for op in _INITIAL_OPS:
            await self.run(op)

    async def _read_if_open(self, data: Any) -> None:
        try:
            message = MessageView.decode(data)
        except SchemaError:
            return
        conversation = self._state.conversation
        if conversation is None or message.direction is not MessageDirection.IN:
            return
        contact = _model.find_contact(self._state, message.peer)
        if contact is not None and contact.address == conversation.peer:
            await self.run("read", PeerArgs(peer=contact.address))

    # -- conversations and contacts -------------------------------------------------

    async def open_conversation(self, peer: str) -> None:
        """Open ``peer``'s conversation: a contact by name (any case) or address, or an address."""
        contact = _model.find_contact(self._state, peer)
        if contact is None and not _model.address_form(peer).startswith("asip1"):
            self.notice(
                f"No contact is called '{peer}'. Add one with /add ADDRESS NAME (or F2).",
                error=True,
            )
            return
        self.update(lambda s: _model.open_conversation(s, peer))
        conversation = self._state.conversation
        if conversation is None or conversation.loaded:
            return
        address = conversation.peer
        history = await self.run("history", HistoryArgs(peer=address, limit=HISTORY_LIMIT))
        if isinstance(history, Failed):
            # A conversation the node cannot show is not left "loading…" on screen.
            self.update(
                lambda s: (
                    _model.close_conversation(s)
                    if s.conversation and s.conversation.peer == address
                    else s
                )
            )
            return
        if contact is not None:
            await self.run("read", PeerArgs(peer=address))

    async def send(self, text: str) -> None:
        conversation = self._state.conversation
        if conversation is None:
            self.notice(
                "Open a conversation first: pick a contact (Tab, up/down, Enter).", error=True
            )
            return
        # The message appears through the node's ``message`` event, once.
        await self.run("send", SendArgs(peer=conversation.peer, text=text))

    async def add_contact(self, address: str, nick: str) -> Failed | None:
        """Add (or rename) a contact; the failure is returned for the dialog to show."""
        known = _model.find_contact(self._state, address)
        result = await self.run(
            "contacts.add", ContactAddArgs(address=address, nick=nick), notify=False
        )
        if isinstance(result, Failed):
            return result
        contact = ContactView.decode(result) if isinstance(result, Mapping) else None
        if known is not None:
            self.notice(f"Renamed {_model.display_name(known)} to {nick}.")
        else:
            self.notice(f"Added {nick or address}.")
        if contact is not None:
            await self.open_conversation(contact.address)
        return None

    async def rename(self, peer: str, name: str) -> None:
        contact = _model.find_contact(self._state, peer)
        if contact is None:
            self.notice(f"No contact is called '{peer}'.", error=True)
            return
        result = await self.run("contacts.add", ContactAddArgs(address=contact.address, nick=name))
        if not isinstance(result, Failed):
            self.notice(f"Renamed {_model.display_name(contact)} to {name}.")

    async def refresh_contacts(self) -> None:
        await self.run("contacts.list")

    async def remove(self, address: str) -> None:
        contact = _model.find_contact(self._state, address)
        queued = contact.queued if contact else 0
        name = _model.display_name(contact) if contact else address
        if isinstance(await self.run("contacts.remove", PeerArgs(peer=address)), Failed):
            return
        cancelled = f"; {_plural(queued, 'queued message')} cancelled" if queued else ""
        self.notice(f"Removed {name}{cancelled}.")

    async def answer_request(self, op: str, address: str, nick: str | None = None) -> Failed | None:
        args: Args = (
            AcceptArgs(address=address, nick=nick)
            if op == "accept"
            else AddressArgs(address=address)
        )
        result = await self.run(op, args)
        if isinstance(result, Failed):
            return result
        words = {"accept": "Accepted", "decline": "Declined", "block": "Blocked"}
        self.notice(f"{words.get(op, op)} {nick or address}.")
        if op != "decline":
            await self.run("contacts.list")
        return None

    async def unblock(self, address: str) -> None:
        if not isinstance(await self.run("unblock", AddressArgs(address=address)), Failed):
            self.notice(f"Unblocked {address}.")

    async def show_safety_number(self, peer: str) -> None:
        await self.run("safety_number", PeerArgs(peer=peer))

    async def set_verified(self, peer: str, verified: bool) -> None:
        args = VerifyArgs(peer=peer, verified=verified)
        if not isinstance(await self.run("contacts.verify", args), Failed):
            self.notice("Marked verified." if verified else "Marked not verified.")

    async def set_presence(self, status: str, note: str) -> None:
        args = PresenceSetArgs(status=status, note=note or None)
        if not isinstance(await self.run("presence.set", args), Failed):
            self.notice(f"You are now {status}" + (f": {note}" if note else "."))

    # -- calls ------------------------------------------------------------------------

    async def call(self, peer: str) -> None:
        devices = self.devices
        args = CallArgs(peer=peer, input_device=devices.input, output_device=devices.output)
        await self.run("call", args)

    async def answer(self) -> None:
        call = _model.incoming_call(self._state)
        if call is None:
            self.notice("No call is ringing.", error=True)
            return
        devices = self.devices
        args = AnswerArgs(
            call_id=call.call_id, input_device=devices.input, output_device=devices.output
        )
        await self.run("answer", args)

    async def decline_call(self) -> None:
        call = _model.incoming_call(self._state)
        if call is None:
            self.notice("No call is ringing.", error=True)
            return
        await self.run("call.decline", DeclineCallArgs(call_id=call.call_id))

    async def hangup(self) -> None:
        call = _model.shown_call(self._state) or _model.incoming_call(self._state)
        if call is None:
            self.notice("No call to hang up.", error=True)
            return
        await self.run("hangup", CallIdArgs(call_id=call.call_id))

    async def toggle_mute(self) -> None:
        call = _model.shown_call(self._state)
        if call is None:
            self.notice("No call to mute.", error=True)
            return
        await self.run("call.mute", MuteArgs(call_id=call.call_id, muted=not call.muted))

    async def toggle_hold(self) -> None:
        call = _model.shown_call(self._state)
        if call is None:
            self.notice("No call to hold.", error=True)
            return
        await self.run("call.hold", HoldArgs(call_id=call.call_id, held=not call.held))

    async def answer_transfer(self, accept: bool) -> None:
        call = _model.transfer_request(self._state)
        if call is None:
            return
        args = TransferAnswerArgs(call_id=call.call_id, accept=accept)
        if not isinstance(await self.run("call.transfer_answer", args), Failed):
            target = _model.peer_label(self._state, call.transfer_to)
            self.notice(f"Calling {target}…" if accept else "Transfer refused.")

    async def list_devices(self) -> None:
        await self.run("audio.devices")

    def choose_device(self, kind: str, name: str | None) -> None:
        if kind == "input":
            self.devices = dataclasses.replace(self.devices, input=name)
        else:
            self.devices = dataclasses.replace(self.devices, output=name)
        what = "microphone" if kind == "input" else "speaker"
        self.notice(f"Calls use the {what} {name!r}." if name else f"Calls use the default {what}.")
