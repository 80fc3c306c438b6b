"""The UI's side of one control connection (docs/control-api.md).

``Session`` runs operations on the node through ``AsyncioControlClient``,
folds every reply and pushed event into the ``ViewState`` with the pure
reducers of ``tui._model``, and tells the screen to redraw. A failed
operation becomes the one-line notice the node wrote for the user; a lost
connection becomes "Node: not connected". It never raises a node error.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any

from anonsip import AnonsipError
from anonsip.control import AsyncioControlClient, ControlConnectionClosed, NodeError
from tui import _model
from tui._model import ViewState

__all__ = ["HISTORY_LIMIT", "Session"]

logger = logging.getLogger(__name__)

HISTORY_LIMIT = 200  # messages fetched when a conversation opens

_NOT_CONNECTED = "not connected to the node; start it with `anonsip run`, then reopen the UI"

_INITIAL_OPS = ("status", "identity", "contacts.list", "requests", "calls")


class _Failed:
    """The marker ``Session.run`` returns when an operation did not succeed."""


FAILED = _Failed()


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

    @property
    def state(self) -> ViewState:
        return self._state

    def update(self, change: Callable[[ViewState], ViewState]) -> None:
        new = change(self._state)
        if new is not self._state:
            self._state = new
            self._on_change()

    async def run(self, op: str, /, **args: Any) -> Any:
        """``op`` on the node, its result folded into the state; ``FAILED`` if it failed."""
        args = {key: value for key, value in args.items() if value is not None}
        if op != "subscribe" and not self._state.connected:
            self.update(lambda s: _model.apply_error(s, op, _NOT_CONNECTED))
            return FAILED
        try:
            result = await self._client.call(op, **args)
        except NodeError as exc:
            message = exc.message
            self.update(lambda s: _model.apply_error(s, op, message))
            return FAILED
        except ControlConnectionClosed:
            self.update(lambda s: _model.set_connected(s, False))
            return FAILED
        except AnonsipError as exc:  # e.g. a malformed frame from the node
            logger.warning("control op %s failed: %s", op, exc)
            message = str(exc)
            self.update(lambda s: _model.apply_error(s, op, message))
            return FAILED
        self.update(lambda s: _model.apply_result(s, op, args, result, now=self._clock()))
        return result

    async def follow_events(self) -> None:
        """Subscribe, then apply events until the node goes away."""
        if await self.run("subscribe") is FAILED:
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
        conversation = self._state.conversation
        if conversation is None or data.get("direction") != "in":
            return
        contact = _model.find_contact(self._state, str(data.get("peer", "")))
        peer = contact.address if contact else data.get("peer")
        if peer == conversation.peer:
            await self.run("read", peer=peer)

    # -- what the user asks for -------------------------------------------------------

    async def open_conversation(self, peer: str) -> None:
        self.update(lambda s: _model.open_conversation(s, peer))
        conversation = self._state.conversation
        if conversation is None or conversation.loaded:
            return
        await self.run("history", peer=conversation.peer, limit=HISTORY_LIMIT)
        await self.run("read", peer=conversation.peer)

    async def send(self, text: str) -> None:
        conversation = self._state.conversation
        if conversation is None:
            self.update(
                lambda s: _model.set_notice(
                    s,
                    "Open a conversation first: pick a contact (Tab, up/down, Enter).",
                    error=True,
                )
            )
            return
        await self.run("send", peer=conversation.peer, text=text)

    async def add_contact(self, address: str, nick: str) -> None:
        contact = await self.run("contacts.add", address=address, nick=nick)
        if contact is not FAILED:
            self.update(lambda s: _model.set_notice(s, f"Added {nick or address}."))
            await self.open_conversation(address)

    async def answer_request(self, op: str, address: str, nick: str | None = None) -> None:
        if await self.run(op, address=address, nick=nick) is FAILED:
            return
        words = {"accept": "Accepted", "decline": "Declined", "block": "Blocked"}
        self.update(lambda s: _model.set_notice(s, f"{words.get(op, op)} {address}."))
        await self.run("contacts.list")

    async def show_safety_number(self, peer: str) -> None:
        if self._state.identity is None:
            await self.run("identity")
        await self.run("safety_number", peer=peer)

    async def set_verified(self, peer: str, verified: bool) -> None:
        if await self.run("contacts.verify", peer=peer, verified=verified) is not FAILED:
            word = "verified" if verified else "no longer verified"
            self.update(lambda s: _model.set_notice(s, f"Marked {word}."))

    async def call(self, peer: str) -> None:
        await self.run("call", peer=peer)

    async def answer(self) -> None:
        call = _model.incoming_call(self._state)
        if call is not None:
            await self.run("answer", call_id=call.call_id)

    async def decline_call(self) -> None:
        call = _model.incoming_call(self._state)
        if call is not None:
            await self.run("call.decline", call_id=call.call_id)

    async def hangup(self) -> None:
        call = _model.shown_call(self._state)
        if call is not None:
            await self.run("hangup", call_id=call.call_id)

    async def toggle_mute(self) -> None:
        call = _model.shown_call(self._state)
        if call is not None:
            await self.run("call.mute", call_id=call.call_id, muted=not call.muted)

    async def toggle_hold(self) -> None:
        call = _model.shown_call(self._state)
        if call is not None:
            await self.run("call.hold", call_id=call.call_id, held=not call.held)

    async def set_presence(self, status: str, note: str) -> None:
        await self.run("presence.set", status=status, note=note or None)

    async def remove(self, peer: str) -> None:
        await self.run("contacts.remove", peer=peer)
