"""The node's local control API (docs/control-api.md): codec, server and clients.

The CLI uses ``TrioControlClient``, the terminal UI ``AsyncioControlClient``,
the node ``ControlServer``; all three share the sans-IO ``ControlCodec``.
"""

from anonsip.control._client import AsyncioControlClient, TrioControlClient
from anonsip.control._errors import ControlConnectionClosed, NodeError, NodeNotRunning
from anonsip.control._protocol import (
    MAX_FRAME,
    ControlCodec,
    ErrorInfo,
    Event,
    Frame,
    Reply,
    Request,
    Role,
    encode,
)
from anonsip.control._server import ControlServer, ControlServerStatistics, Handler

__all__ = [
    "MAX_FRAME",
    "AsyncioControlClient",
    "ControlCodec",
    "ControlConnectionClosed",
    "ControlServer",
    "ControlServerStatistics",
    "ErrorInfo",
    "Event",
    "Frame",
    "Handler",
    "NodeError",
    "NodeNotRunning",
    "Reply",
    "Request",
    "Role",
    "TrioControlClient",
    "encode",
]
