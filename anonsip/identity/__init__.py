"""Identities and the cryptographic core: addresses, safety numbers, the
keystore, Tor-style key blinding, Noise handshakes and the secure channel.
"""

from anonsip.identity._address import ADDRESS_HRP, SIP_DOMAIN, Address
from anonsip.identity._blinding import (
    TOR_TIME_PERIODS,
    BlindedKey,
    TimePeriods,
    blind_public_key,
    record_key,
)
from anonsip.identity._channel import (
    NEED_DATA,
    ChannelEvent,
    ChannelState,
    CloseReceived,
    HandshakeComplete,
    Message,
    NeedData,
    SecureChannel,
)
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
from anonsip.identity._keystore import (
    DHT_NODE_KEY,
    FAST_INSECURE_KDF,
    MESSAGE_STORE_KEY,
    MODERATE_KDF,
    ONION_SERVICE_KEY,
    KdfParams,
    Keystore,
)
from anonsip.identity._safety import SafetyNumber

__all__ = [
    "ADDRESS_HRP",
    "DHT_NODE_KEY",
    "FAST_INSECURE_KDF",
    "MESSAGE_STORE_KEY",
    "MODERATE_KDF",
    "NEED_DATA",
    "ONION_SERVICE_KEY",
    "SIP_DOMAIN",
    "TOR_TIME_PERIODS",
    "Address",
    "BlindedKey",
    "ChannelBroken",
    "ChannelEvent",
    "ChannelState",
    "CloseReceived",
    "CorruptKeystore",
    "HandshakeComplete",
    "HandshakeError",
    "Identity",
    "InvalidAddress",
    "KdfParams",
    "Keystore",
    "KeystoreError",
    "Message",
    "NeedData",
    "RandomSource",
    "SafetyNumber",
    "SecureChannel",
    "TimePeriods",
    "WrongPassphrase",
    "blind_public_key",
    "ed25519_to_x25519_public",
    "record_key",
    "system_random",
    "verify_signature",
]
