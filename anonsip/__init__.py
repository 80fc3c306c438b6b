"""anonsip: peer-to-peer SIP over Tor onion services.

Pure protocol cores (identity, DHT, SIP, registrations, media) live in
sub-packages; the node wires them to onion streams with trio.
"""

from anonsip._errors import AnonsipError, LocalError, RemoteProtocolError

__all__ = ["AnonsipError", "LocalError", "RemoteProtocolError"]
