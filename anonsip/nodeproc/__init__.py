"""Nodes as child processes, for the demo, the integration tests and the benchmarks.

One implementation of starting ``anonsip run`` as a child, waiting until it
is running through its control socket, and stopping it for sure; and of
several hosts on one machine (network namespaces on a bridge, sharing no
files) with nodes in them, and what a node process's sockets reach.
"""

from anonsip.nodeproc._fleet import NodeFleet
from anonsip.nodeproc._hosts import (
    Host,
    HostNode,
    Hosts,
    HostsError,
    SocketAudit,
    registered,
    tcp_listeners,
    unix_connections,
    wait_for_line,
)
from anonsip.nodeproc._process import (
    READY_TIMEOUT,
    NodeFailed,
    NodeProcess,
    anonsip_command,
    children,
    init_home,
    log_tail,
    run_node,
    sole_error,
)

__all__ = [
    "READY_TIMEOUT",
    "Host",
    "HostNode",
    "Hosts",
    "HostsError",
    "NodeFailed",
    "NodeFleet",
    "NodeProcess",
    "SocketAudit",
    "anonsip_command",
    "children",
    "init_home",
    "log_tail",
    "registered",
    "run_node",
    "sole_error",
    "tcp_listeners",
    "unix_connections",
    "wait_for_line",
]
