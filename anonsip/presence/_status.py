"""What a user publishes as presence: an availability and an optional note (RFC 3863 <note>).

``user_status`` checks what the control API was given; the same limits as
the PIDF codec (``anonsip.sip._pidf``) so a status we accept always encodes.
"""

from __future__ import annotations

from dataclasses import dataclass

from anonsip._errors import LocalError
from anonsip.sip import Availability

MAX_NOTE_LENGTH = 256  # characters, as the PIDF codec allows
SETTABLE = (Availability.AVAILABLE, Availability.AWAY, Availability.BUSY)


class PresenceError(LocalError):
    """A status or note the user asked for cannot be published."""


@dataclass(frozen=True, kw_only=True)
class Status:
    """Our presence as contacts see it; OFFLINE only ever in a goodbye NOTIFY."""

    availability: Availability = Availability.AVAILABLE
    note: str = ""


def user_status(status: str, note: str = "") -> Status:
    """The ``Status`` for ``presence.set``; ``PresenceError`` says what to fix."""
    try:
        availability = Availability(status)
    except ValueError:
        availability = None
    if availability not in SETTABLE:
        names = ", ".join(a.value for a in SETTABLE)
        raise PresenceError(f"presence is one of {names}, not {status!r}")
    assert availability is not None
    if len(note) > MAX_NOTE_LENGTH:
        raise PresenceError(f"a presence note is at most {MAX_NOTE_LENGTH} characters")
    if any(ord(c) < 0x20 and c not in "\t\n" for c in note):
        raise PresenceError("a presence note cannot hold control characters")
    return Status(availability=availability, note=note)
