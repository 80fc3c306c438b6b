"""Exceptions a control client raises (docs/control-api.md)."""

from __future__ import annotations

from anonsip._errors import AnonsipError, LocalError

__all__ = ["ControlConnectionClosed", "NodeError", "NodeNotRunning"]


class NodeNotRunning(LocalError):
    """Nothing answers on the home's control socket."""

    def __init__(self, home: str) -> None:
        super().__init__(f"no node is running in {home}; start it with: anonsip --home {home} run")
        self.home = home


class NodeError(AnonsipError):
    """The node answered an operation with an error reply.

    ``kind`` is the node-side exception class name; ``str()`` is the message
    the node wrote for the user.
    """

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message


class ControlConnectionClosed(AnonsipError):
    """The control connection ended (the node stopped, or we fell behind on events)."""
