"""Registrations: encrypted, blinded-key-signed records in the DHT that say
where (which onion contacts) and how (presence) a user can be reached.
"""

from anonsip.registration._record import (
    MAX_CONTACTS,
    MAX_EFFORT,
    MAX_VALUE_BYTES,
    BadSignature,
    Contact,
    MalformedRecord,
    OuterRecord,
    Presence,
    RecordError,
    RecordExpired,
    Registration,
    RolledBack,
    WrongKey,
    WrongPeriod,
    onion_address,
    onion_public_key,
    open_record,
    record_period,
    seal,
    verify_outer,
)

__all__ = [
    "MAX_CONTACTS",
    "MAX_EFFORT",
    "MAX_VALUE_BYTES",
    "BadSignature",
    "Contact",
    "MalformedRecord",
    "OuterRecord",
    "Presence",
    "RecordError",
    "RecordExpired",
    "Registration",
    "RolledBack",
    "WrongKey",
    "WrongPeriod",
    "onion_address",
    "onion_public_key",
    "open_record",
    "record_period",
    "seal",
    "verify_outer",
]
