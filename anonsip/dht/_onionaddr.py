"""Tor v3 onion addresses, as the DHT sees them (rend-spec-v3, "Encoding onion addresses").

The encoding lives in ``onion._keys``; here an address that came from the
network and fails to decode is the peer's fault, so it raises
``RemoteProtocolError``. The DHT binds a node's identity to the onion
service it answers on, so a contact's address must be exactly the one its
key implies.
"""

from anonsip._errors import RemoteProtocolError
from onion import InvalidOnionAddress
from onion import onion_address_from_public_key as onion_address_from_public_key
from onion import public_key_from_onion_address as _public_key_from_onion_address

__all__ = ["ONION_ADDRESS_LENGTH", "onion_address_from_public_key", "public_key_from_onion_address"]

ONION_ADDRESS_LENGTH = 56


def public_key_from_onion_address(address: str) -> bytes:
    """The Ed25519 public key inside a v3 onion address; raises RemoteProtocolError if invalid."""
    try:
        return _public_key_from_onion_address(address)
    except InvalidOnionAddress as exc:
        raise RemoteProtocolError(str(exc)) from exc
