"""Errors raised by the identity and cryptographic core.

Each is a subclass of ``LocalError`` (a mistake or bad input on this side,
such as a mistyped address or a wrong passphrase) or ``RemoteProtocolError``
(bytes from the network that we refuse).
"""

from anonsip._errors import LocalError, RemoteProtocolError


class InvalidAddress(LocalError):
    """A typed or pasted address is not a valid anonsip address."""


class KeystoreError(LocalError):
    """The keystore file cannot be used as asked."""


class WrongPassphrase(KeystoreError):
    """The passphrase does not unlock this keystore."""


class CorruptKeystore(KeystoreError):
    """The keystore file is truncated, damaged or not a keystore at all."""


class HandshakeError(RemoteProtocolError):
    """The peer's Noise handshake message was refused."""


class ChannelBroken(LocalError):
    """The secure channel was already broken by an earlier error and is unusable."""
