"""Waiting for a node's control events in the integration tests."""

from __future__ import annotations

from collections.abc import Callable

import trio

from anonsip.control import Event, TrioControlClient


async def next_event(
    client: TrioControlClient, match: Callable[[Event], bool], timeout: float
) -> Event:
    """The next event ``match`` accepts, reading (and so draining) every one before it."""
    with trio.fail_after(timeout):
        async for event in client.events():
            if match(event):
                return event
    raise AssertionError("the node closed the control connection")
