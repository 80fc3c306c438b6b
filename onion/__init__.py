"""onion: run and drive the tor daemon with trio.

Knows Tor (process, control protocol, onion services, SOCKS streams, a
private network) and nothing of SIP.

Importing ``onion`` does not import trio: the pure part (onion-address and
key codecs, the control-protocol and SOCKS parsers, bootstrap status,
bridge lines, errors) is loaded at once, so sans-IO packages such as
``anonsip.registration`` can use the codecs; the trio adapters (``Tor``,
``launch_tor``, ``ControlConnection``, ...) load on first use through the
module ``__getattr__`` (PEP 562). ``from onion import X`` works for both.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from onion._bootstrap import BootstrapStatus
from onion._bridges import (
    TRANSPORTS,
    Bridge,
    Transport,
    bridge_client_config,
    describe_bridges,
    obfs4_bridge_line,
    parse_bridge_line,
    transport_programs,
)
from onion._control_proto import ControlReplyParser, Event, Reply, ReplyLine
from onion._endpoint import ControlEndpoint, InvalidControlEndpoint
from onion._errors import (
    AuthenticationFailed,
    BootstrapStuck,
    ControlClosed,
    ControlCommandError,
    ControlProtocolError,
    ControlUnreachable,
    DirectoryError,
    InvalidBridgeLine,
    InvalidJoinCode,
    InvalidOnionAddress,
    InvalidOnionKey,
    OnionAuthRequired,
    OnionBadAddress,
    OnionError,
    OnionLocalError,
    OnionNotFound,
    OnionRemoteError,
    OnionTimeout,
    OnionUnreachable,
    PortInUse,
    SocksProtocolError,
    TestnetError,
    TorDied,
    TorExited,
    TorNotFound,
    TorTooOld,
    TransportNotFound,
)
from onion._keys import (
    OnionKey,
    expanded_key_from_seed,
    normalize_onion_address,
    onion_address_from_public_key,
    public_key_from_expanded_key,
    public_key_from_onion_address,
)
from onion._socks import SocksClient

if TYPE_CHECKING:
    from onion._control import ControlConnection, ProtocolInfo
    from onion._process import attach_tor, launch_tor, open_tor
    from onion._service import OnionService, StreamHandler
    from onion._tor import Tor

# name -> the private module that defines it; each imports trio.
_TRIO_NAMES = {
    "ControlConnection": "onion._control",
    "ProtocolInfo": "onion._control",
    "attach_tor": "onion._process",
    "launch_tor": "onion._process",
    "open_tor": "onion._process",
    "OnionService": "onion._service",
    "StreamHandler": "onion._service",
    "Tor": "onion._tor",
}


def __getattr__(name: str) -> Any:
    module = _TRIO_NAMES.get(name)
    if module is None:
        raise AttributeError(f"module 'onion' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # once loaded, an ordinary attribute
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_TRIO_NAMES))


__all__ = [
    "TRANSPORTS",
    "AuthenticationFailed",
    "BootstrapStatus",
    "BootstrapStuck",
    "Bridge",
    "ControlClosed",
    "ControlCommandError",
    "ControlConnection",
    "ControlEndpoint",
    "ControlProtocolError",
    "ControlReplyParser",
    "ControlUnreachable",
    "DirectoryError",
    "Event",
    "InvalidBridgeLine",
    "InvalidControlEndpoint",
    "InvalidJoinCode",
    "InvalidOnionAddress",
    "InvalidOnionKey",
    "OnionAuthRequired",
    "OnionBadAddress",
    "OnionError",
    "OnionKey",
    "OnionLocalError",
    "OnionNotFound",
    "OnionRemoteError",
    "OnionService",
    "OnionTimeout",
    "OnionUnreachable",
    "PortInUse",
    "ProtocolInfo",
    "Reply",
    "ReplyLine",
    "SocksClient",
    "SocksProtocolError",
    "StreamHandler",
    "TestnetError",
    "Tor",
    "TorDied",
    "TorExited",
    "TorNotFound",
    "TorTooOld",
    "Transport",
    "TransportNotFound",
    "attach_tor",
    "bridge_client_config",
    "describe_bridges",
    "expanded_key_from_seed",
    "launch_tor",
    "normalize_onion_address",
    "obfs4_bridge_line",
    "onion_address_from_public_key",
    "open_tor",
    "parse_bridge_line",
    "public_key_from_expanded_key",
    "public_key_from_onion_address",
    "transport_programs",
]
