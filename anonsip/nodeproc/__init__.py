"""Nodes as child processes, for the demo, the integration tests and the benchmarks.

One implementation of starting ``anonsip run`` as a child, waiting until it
is running through its control socket, and stopping it for sure.
"""

from anonsip.nodeproc._fleet import NodeFleet
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
    "NodeFailed",
    "NodeFleet",
    "NodeProcess",
    "anonsip_command",
    "children",
    "init_home",
    "log_tail",
    "run_node",
    "sole_error",
]
