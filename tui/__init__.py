"""tui: the anonsip terminal user interface (prompt_toolkit).

Talks to a node only through the node's control API (``anonsip.control``),
over the node's control socket: ``anonsip tui`` attaches to a running
``anonsip run``. prompt_toolkit runs on asyncio; the node runs on trio in
another process.
"""

from __future__ import annotations

import asyncio
import sys

from prompt_toolkit.input import Input
from prompt_toolkit.output import Output

from anonsip import AnonsipError
from tui._app import TerminalUI, run_terminal_ui

__all__ = ["TerminalUI", "main", "run_tui"]


async def run_tui(
    socket_path: str,
    *,
    input: Input | None = None,
    output: Output | None = None,
) -> None:
    """Attach to the node's control socket and run the full-screen UI until the user quits.

    Raises ``anonsip.control.NodeNotRunning`` if nothing answers on ``socket_path``.
    """
    await run_terminal_ui(socket_path, input=input, output=output)


def main(socket_path: str) -> int:
    """``anonsip tui``: run the UI in this terminal; 0 on quit, 1 with a message on error."""
    try:
        asyncio.run(run_tui(socket_path))
    except AnonsipError as exc:
        print(f"anonsip tui: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    return 0
