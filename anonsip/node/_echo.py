"""The demo peer's echo bot: it answers every message, proving the round trip to a new user."""

from __future__ import annotations

import logging

import trio

from anonsip._errors import AnonsipError
from anonsip.node._messaging import MessagingService
from anonsip.node._service import NodeService

__all__ = ["EchoBot"]

log = logging.getLogger(__name__)

ECHO_QUEUE = 64


class EchoBot(NodeService):
    name = "echo bot"

    def __init__(self, messaging: MessagingService) -> None:
        self._messaging = messaging
        self._send, self._receive = trio.open_memory_channel[tuple[str, str]](ECHO_QUEUE)
        messaging.hear(self._heard)

    def _heard(self, peer: str, text: str) -> None:
        try:
            self._send.send_nowait((peer, text))
        except trio.WouldBlock:
            log.info("the echo bot is busy; not answering one message")

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        task_status.started()
        async for peer, text in self._receive:
            try:
                await self._messaging.send(peer, f"echo: {text}")
            except AnonsipError as exc:
                log.info("the echo bot could not answer: %s", exc)
