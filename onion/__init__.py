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
from onion._control_proto import ControlReplyParser, Event, Reply, ReplyLine
from onion._errors import (
    AuthenticationFailed,
    BootstrapStuck,
    ControlClosed,
    ControlCommandError,
    ControlProtocolError,
    DirectoryError,
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
    from onion._process import attach_tor, launch_tor
    from onion._service import OnionService, StreamHandler
    from onion._tor import Tor

# name -> the private module that defines it; each imports trio.
_TRIO_NAMES = {
    "ControlConnection": "onion._control",
    "ProtocolInfo": "onion._control",
    "attach_tor": "onion._process",
    "launch_tor": "onion._process",
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
    "AuthenticationFailed",
    "BootstrapStatus",
    "BootstrapStuck",
    "ControlClosed",
    "ControlCommandError",
    "ControlConnection",
    "ControlProtocolError",
    "ControlReplyParser",
    "DirectoryError",
    "Event",
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
    "attach_tor",
    "expanded_key_from_seed",
    "launch_tor",
    "normalize_onion_address",
    "onion_address_from_public_key",
    "public_key_from_expanded_key",
    "public_key_from_onion_address",
]
