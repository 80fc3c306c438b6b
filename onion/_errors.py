"""The exceptions the onion package raises on purpose.

As in h11, they split into local mistakes (``OnionLocalError``: bad
argument, tor missing or misconfigured, used after close) and remote
misbehaviour (``OnionRemoteError``: tor or a SOCKS peer sent bytes we
refuse, or the network could not reach an onion). Parsers fed bytes from a
socket raise only ``OnionRemoteError`` subclasses.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator


class OnionError(Exception):
    """Root of all onion errors; ``str()`` is a message a user can act on."""


class OnionLocalError(OnionError):
    """Something on this side is wrong: an argument, the tor install, the config."""


class OnionRemoteError(OnionError):
    """tor or the Tor network answered with something we refuse or cannot use."""


# --- control protocol -------------------------------------------------------


class ControlProtocolError(OnionRemoteError):
    """tor's control port sent bytes that are not control-spec replies."""


class ControlCommandError(OnionRemoteError):
    """tor refused a control command with a 4xx/5xx status."""

    def __init__(self, code: int, message: str, command: str = "") -> None:
        what = f" to {command}" if command else ""
        super().__init__(f"tor answered {code}{what}: {message}")
        self.code = code
        self.message = message


class AuthenticationFailed(OnionLocalError):
    """We could not authenticate to tor's control port."""


class ControlUnreachable(OnionLocalError):
    """Nothing answers on the control port or socket we were told to use."""


class ControlClosed(OnionRemoteError):
    """tor closed the control connection (it exited or dropped us)."""


# --- the tor process ----------------------------------------------------------


class TorNotFound(OnionLocalError):
    """The ``tor`` executable is not installed or not on PATH."""


class TorTooOld(OnionLocalError):
    """The installed tor is older than the version we need."""


class TorExited(OnionLocalError):
    """Our tor process exited before it was ready; the message shows its log."""


class TorDied(OnionLocalError):
    """Our tor process ended after it was ready, without being asked to.

    Raised out of ``async with launch_tor(...)`` in place of whatever the
    body saw because tor vanished (``ControlClosed``, refused streams).
    Everything tor held is gone with it (circuits, ephemeral onion
    services): launch tor again and publish again. ``returncode`` is the
    exit status (negative: the signal that ended it).
    """

    def __init__(self, message: str, *, returncode: int | None, log_tail: list[str]) -> None:
        super().__init__(message)
        self.returncode = returncode
        self.log_tail = log_tail


class PortInUse(TorExited):
    """tor could not bind a port it was told to use."""


class BootstrapStuck(OnionRemoteError):
    """tor did not finish bootstrapping within the deadline.

    ``unreachable``: it never even got to talk to a first relay or bridge
    (what a network that blocks Tor, or a dead bridge, looks like).
    """

    def __init__(self, message: str, *, unreachable: bool = False) -> None:
        super().__init__(message)
        self.unreachable = unreachable


# --- bridges and pluggable transports ---------------------------------------------


class InvalidBridgeLine(OnionLocalError):
    """A bridge line that is not one; ``field`` names the part that is wrong."""

    def __init__(self, message: str, *, field: str) -> None:
        super().__init__(message)
        self.field = field


class TransportNotFound(OnionLocalError):
    """The program for a pluggable transport is not installed; the message says which package."""

    def __init__(self, message: str, *, transport: str, package: str) -> None:
        super().__init__(message)
        self.transport = transport
        self.package = package


# --- SOCKS and onion streams ----------------------------------------------------


class SocksProtocolError(OnionRemoteError):
    """The SOCKS server sent a reply that is not SOCKS5."""


class OnionUnreachable(OnionRemoteError):
    """tor could not open a stream to the onion service."""

    def __init__(self, message: str, *, code: int | None = None) -> None:
        super().__init__(message)
        self.code = code


class OnionNotFound(OnionUnreachable):
    """No descriptor for that onion address is published (peer offline or unknown)."""


class OnionAuthRequired(OnionUnreachable):
    """The onion service needs client authorisation we lack or got wrong."""


class OnionBadAddress(OnionUnreachable):
    """The address is not a well-formed v3 onion address."""


class OnionTimeout(OnionUnreachable):
    """Reaching the onion service took longer than the deadline."""


# --- private network --------------------------------------------------------------


class DirectoryError(OnionRemoteError):
    """A directory authority could not be reached or sent something we refuse."""


class TestnetError(OnionLocalError):
    """The private Tor network could not be started, found or stopped."""

    __test__ = False  # not a pytest test class despite the name


class InvalidJoinCode(TestnetError):
    """A join code that was mistyped, cut short or made by something else."""


class InvalidOnionAddress(OnionLocalError):
    """A string given as a v3 onion address is not one (length, alphabet, checksum)."""


class InvalidOnionKey(OnionLocalError):
    """A key blob given for an onion service is not an ED25519-V3 expanded secret key."""


@contextlib.contextmanager
def unwrapped_errors() -> Iterator[None]:
    """Re-raise a lone exception out of a nursery's ExceptionGroup.

    Our nurseries are an implementation detail: a caller should be able to
    write ``except OnionNotFound`` around ``open_stream``. Groups of two or
    more stay groups.
    """
    try:
        yield
    except BaseExceptionGroup as group:
        while isinstance(group, BaseExceptionGroup) and len(group.exceptions) == 1:
            inner = group.exceptions[0]
            if not isinstance(inner, BaseExceptionGroup):
                raise inner from inner.__cause__
            group = inner
        raise
