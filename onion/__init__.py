"""onion: run and drive the tor daemon with trio.

Knows Tor (process, control protocol, onion services, SOCKS streams, a
private network) and nothing of SIP.
"""

from onion._bootstrap import BootstrapStatus
from onion._control import ControlConnection, ProtocolInfo
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
from onion._process import attach_tor, launch_tor
from onion._service import OnionService, StreamHandler
from onion._socks import SocksClient
from onion._tor import Tor

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
