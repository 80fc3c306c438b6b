"""Mailboxes in the DHT, sans-IO: sealed letters, deposits with proof of work, deletions.

Mail for someone who is not online waits in their mailbox: sealed to them
(only they read it and learn who wrote it), padded to a few sizes, stored
under a key blinded per period and unlinkable to their registration, and
removable only by them. The node's mailbox service (``anonsip.node``)
deposits and collects through anonymous DHT requests.
"""

from anonsip.mailbox._deposit import (
    DEPOSIT_POW_BITS,
    MAILBOX_PURPOSE,
    MAX_DELETE,
    MAX_TTL,
    REQUEST_POW_BITS,
    Deletion,
    Deposit,
    DepositError,
    dht_key,
    mailbox_key,
    mailbox_keypair,
)
from anonsip.mailbox._letter import (
    BOX_SECRET,
    BUCKETS,
    MAX_TEXT,
    Letter,
    LetterError,
    LetterKind,
    open_letter,
    seal_letter,
    sealed_sizes,
)

__all__ = [
    "BOX_SECRET",
    "BUCKETS",
    "DEPOSIT_POW_BITS",
    "MAILBOX_PURPOSE",
    "MAX_DELETE",
    "MAX_TEXT",
    "MAX_TTL",
    "REQUEST_POW_BITS",
    "Deletion",
    "Deposit",
    "DepositError",
    "Letter",
    "LetterError",
    "LetterKind",
    "dht_key",
    "mailbox_key",
    "mailbox_keypair",
    "open_letter",
    "seal_letter",
    "sealed_sizes",
]
