"""The anonsip node: a host of services (messaging, contacts, presence, calls, …)
around tor, the DHT, registrations and secure sessions, in one nursery."""

from anonsip.node._assembly import build_node
from anonsip.node._context import NodeContext, NotReady
from anonsip.node._home import Home, Unlocked
from anonsip.node._node import SIP_PORT, Node, NodeConfig
from anonsip.node._service import NodeService, ServiceConflict, ServiceTable
from anonsip.node._session import Session, SessionBroken, SessionClosed

__all__ = [
    "SIP_PORT",
    "Home",
    "Node",
    "NodeConfig",
    "NodeContext",
    "NodeService",
    "NotReady",
    "ServiceConflict",
    "ServiceTable",
    "Session",
    "SessionBroken",
    "SessionClosed",
    "Unlocked",
    "build_node",
]
