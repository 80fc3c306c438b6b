"""Several node children on one private network; every one is reaped when the fleet closes."""

from __future__ import annotations

import signal
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType
from typing import Self

import trio

from anonsip.nodeproc._process import READY_TIMEOUT, NodeProcess, sole_error

__all__ = ["NodeFleet"]


class NodeFleet:
    """``with NodeFleet(root, testnet) as nodes: nodes.add("alice")`` — homes under ``root``."""

    def __init__(self, root: Path, testnet: Path | None, *, pow_bits: int = 8) -> None:
        self.root = root
        self.testnet = testnet
        self.pow_bits = pow_bits
        self.nodes: dict[str, NodeProcess] = {}

    def add(self, name: str) -> NodeProcess:
        node = NodeProcess(name, self.root / name, testnet=self.testnet, pow_bits=self.pow_bits)
        self.nodes[name] = node
        return node

    def __getitem__(self, name: str) -> NodeProcess:
        return self.nodes[name]

    def __iter__(self) -> Iterator[NodeProcess]:
        return iter(self.nodes.values())

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.reap()

    def reap(self) -> None:
        # SIGTERM all first, so they say goodbye and stop side by side.
        for node in self.nodes.values():
            node.signal(signal.SIGTERM)
        for node in self.nodes.values():
            node.reap()

    async def start_all(
        self, *names: str, timeout: float = READY_TIMEOUT, registered: bool = False
    ) -> None:
        """Start the named nodes side by side and wait until all are running (and, if
        asked, registered where the fleet's other nodes find them)."""
        others = len(names) > 1 or any(n.running for n in self if n.name not in names)
        for name in names:
            self.nodes[name].start()
        try:
            async with trio.open_nursery() as nursery:
                for name in names:
                    nursery.start_soon(self._wait, name, timeout, registered, others)
        except BaseExceptionGroup as group:
            error = sole_error(group)
            if error is group:
                raise
            raise error from None

    async def _wait(self, name: str, timeout: float, registered: bool, others: bool) -> None:
        await self.nodes[name].wait_ready(
            timeout, registered=registered, joined=registered and others
        )
