"""Identities and the cryptographic core: addresses, safety numbers, the
keystore, Tor-style key blinding, Noise handshakes and the secure channel.
"""

from anonsip.identity._address import ADDRESS_HRP, SIP_DOMAIN, Address
from anonsip.identity._errors import (
    ChannelBroken,
    CorruptKeystore,
    HandshakeError,
    InvalidAddress,
    KeystoreError,
    WrongPassphrase,
)
from anonsip.identity._identity import (
    Identity,
    RandomSource,
    ed25519_to_x25519_public,
    system_random,
    verify_signature,
)
from anonsip.identity._safety import SafetyNumber

__all__ = [
    "ADDRESS_HRP",
    "SIP_DOMAIN",
    "Address",
    "ChannelBroken",
    "CorruptKeystore",
    "HandshakeError",
    "Identity",
    "InvalidAddress",
    "KeystoreError",
    "RandomSource",
    "SafetyNumber",
    "WrongPassphrase",
    "ed25519_to_x25519_public",
    "system_random",
    "verify_signature",
]
