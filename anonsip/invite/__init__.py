"""Invites: an address plus a few DHT contacts and an expiry, as one checksummed line."""

from anonsip.invite._invite import (
    HRP,
    MAX_CONTACTS,
    DhtSeed,
    InvalidInvite,
    Invite,
    looks_like_invite,
)

__all__ = ["HRP", "MAX_CONTACTS", "DhtSeed", "InvalidInvite", "Invite", "looks_like_invite"]
