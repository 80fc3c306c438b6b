"""``anonsip demo``: a private Tor network, a demo peer and the terminal UI in one command.

Also what the end-to-end tests use: making two nodes mutual contacts
(``befriend``); nodes as child processes come from ``anonsip.nodeproc``.
"""

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
    "befriend",
    "make_voice_clip",
    "run_demo",
]
