"""Errors of the message store; each message tells the user what to do."""

from __future__ import annotations

from anonsip._errors import LocalError

__all__ = [
    "StoreCorruptError",
    "StoreError",
    "StoreFullError",
    "StoreKeyError",
    "StoreLimitError",
    "StoreLockedError",
]


class StoreError(LocalError):
    """Root of the message store's errors."""


class StoreFullError(StoreError):
    """The disk (or the store's size quota) is full; the failed write was not made."""


class StoreCorruptError(StoreError):
    """The store file is damaged or not a store at all."""


class StoreKeyError(StoreError):
    """The store was written with a different key."""


class StoreLimitError(StoreError):
    """A bound was reached: message too long, too many queued messages or requests."""


class StoreLockedError(StoreError):
    """Another process holds the store (a second node in the same home)."""
