"""Safety numbers: what two people compare, aloud or by QR code, to know that
the address each holds for the other is the right one.

Modelled on Signal's numeric fingerprints: each side's key is hashed
(BLAKE2b-512, personalised, iterated ``ITERATIONS`` times to make a key
with a look-alike fingerprint expensive to search for) into 30 digits; the
two halves are put in key order so both people see the same 60 digits.
"""

import base64
import hashlib
from dataclasses import dataclass

from anonsip._errors import LocalError

ITERATIONS = 5200
VERSION = 1
_PERSON = b"asip-safetynum"  # BLAKE2b personalisation is at most 16 bytes
_HALF_DIGITS = 30
COMPACT_PREFIX = "ASIPSN1:"


def _fingerprint(public_key: bytes) -> bytes:
    digest = VERSION.to_bytes(2, "big") + public_key
    for _ in range(ITERATIONS):
        digest = hashlib.blake2b(digest + public_key, person=_PERSON).digest()
    return digest[:30]


def _digits(fingerprint: bytes) -> str:
    chunks = (fingerprint[i : i + 5] for i in range(0, 30, 5))
    return "".join(f"{int.from_bytes(chunk, 'big') % 100000:05d}" for chunk in chunks)


@dataclass(frozen=True, slots=True)
class SafetyNumber:
    """The 60-digit safety number of two public keys (order does not matter)."""

    digits: str
    compact: str

    @classmethod
    def between(cls, key_a: bytes, key_b: bytes) -> "SafetyNumber":
        if len(key_a) != 32 or len(key_b) != 32:
            raise LocalError("a safety number is computed from two 32-byte public keys")
        first, second = sorted((key_a, key_b))
        fp1, fp2 = _fingerprint(first), _fingerprint(second)
        digits = _digits(fp1) + _digits(fp2)
        # Upper-case base32 without '=' fits the QR alphanumeric mode.
        encoded = base64.b32encode(bytes([VERSION]) + fp1 + fp2).decode("ascii").rstrip("=")
        compact = COMPACT_PREFIX + encoded
        return cls(digits=digits, compact=compact)

    def groups(self) -> list[str]:
        """Twelve groups of five digits, the way people read them aloud."""
        return [self.digits[i : i + 5] for i in range(0, len(self.digits), 5)]

    def __str__(self) -> str:
        return " ".join(self.groups())

    def matches(self, text: str) -> bool:
        """True if ``text`` (digits typed with any spacing, or the compact form) matches."""
        cleaned = "".join(text.split())
        if cleaned.upper().startswith(COMPACT_PREFIX):
            return cleaned.upper() == self.compact
        return cleaned == self.digits
