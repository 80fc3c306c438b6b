"""The root of every exception anonsip raises on purpose.

As in h11, errors split into two kinds: ``LocalError`` for a mistake made
here (bad argument, wrong passphrase, using a closed object) and
``RemoteProtocolError`` for a peer or the network sending something we
refuse. A parser fed network bytes raises only ``RemoteProtocolError``.
"""


class AnonsipError(Exception):
    """Root of all anonsip errors; ``str()`` is a message a user can act on."""


class LocalError(AnonsipError):
    """Something on this side was used wrongly or is misconfigured."""


class RemoteProtocolError(AnonsipError):
    """A peer or the network sent bytes we refuse (malformed, forged, too big)."""
