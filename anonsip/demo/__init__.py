"""``anonsip demo``: a private Tor network, a demo peer and the terminal UI in one command.

Also the pieces the end-to-end tests use: nodes as child processes
(``run_node``) and making two nodes mutual contacts (``befriend``).
"""

from anonsip.demo._child import NodeFailed, NodeProcess, init_home, log_tail, run_node
from anonsip.demo._clip import make_voice_clip
from anonsip.demo._demo import (
    DEFAULT_DIR,
    GREETING,
    ME_NICK,
    PEER_NICK,
    DemoError,
    DemoLayout,
    befriend,
    run_demo,
)

__all__ = [
    "DEFAULT_DIR",
    "GREETING",
    "ME_NICK",
    "PEER_NICK",
    "DemoError",
    "DemoLayout",
    "NodeFailed",
    "NodeProcess",
    "befriend",
    "init_home",
    "log_tail",
    "make_voice_clip",
    "run_demo",
    "run_node",
]
