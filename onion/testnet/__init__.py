"""A private Tor network (own directory authorities and relays) on one machine or a LAN."""

from onion.testnet._bridge import running_bridge, start_bridge, stop_bridge
from onion.testnet._joincode import DirAuthority, JoinCode, ServiceContact
from onion.testnet._network import (
    DEFAULT_AUTHORITIES,
    DEFAULT_RELAYS,
    network_status,
    start_network,
    stop_network,
)
from onion.testnet._state import NodeInfo, TestnetInfo

__all__ = [
    "DEFAULT_AUTHORITIES",
    "DEFAULT_RELAYS",
    "DirAuthority",
    "JoinCode",
    "NodeInfo",
    "ServiceContact",
    "TestnetInfo",
    "network_status",
    "running_bridge",
    "start_bridge",
    "start_network",
    "stop_bridge",
    "stop_network",
]
