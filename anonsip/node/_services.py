"""Optional services a node runs beside IM: the demo peer's echo bot, and
the hooks presence and calls attach through."""

from __future__ import annotations

import logging

import trio

from anonsip._errors import AnonsipError
from anonsip.node._calls import install_calls
from anonsip.node._node import Node
from anonsip.node._presence import install_presence

log = logging.getLogger(__name__)

ECHO_QUEUE = 64


def install_echo_bot(node: Node) -> None:
    """Answer every message (the demo peer): proves the round trip to a new user."""
    send, receive = trio.open_memory_channel[tuple[str, str]](ECHO_QUEUE)

    def heard(peer: str, text: str) -> None:
        try:
            send.send_nowait((peer, text))
        except trio.WouldBlock:
            log.info("echo bot is busy; not answering one message")

    async def answer() -> None:
        assert node.messenger is not None
        node.messenger.listeners.append(heard)
        async for peer, text in receive:
            try:
                await node.messenger.send(peer, f"echo: {text}")
            except AnonsipError as exc:
                log.info("echo bot could not answer: %s", exc)

    node.background.append(answer)


def install_services(node: Node) -> None:
    install_presence(node)
    if node.config.echo_bot:
        install_echo_bot(node)
    install_calls(node)  # after presence: calls pass on the NOTIFYs that are not theirs
