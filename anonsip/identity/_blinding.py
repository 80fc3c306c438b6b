"""Per-time-period key blinding, exactly as Tor's rend-spec-v3 appendix A.2.

For each time period (rend-spec-v3 [TIME-PERIODS]) an identity's Ed25519
key ``A`` is blinded to ``A' = h*A`` with::

    h = SHA3-256("Derive temporary signing key" | 0x00 | A | B | N)   then clamped
    B = "(1511...2202, 4631...5960)"      (the base point, as text)
    N = "key-blind" | INT_8(period number) | INT_8(period length in minutes)

Anyone who knows ``A`` can compute ``A'``; nobody who sees only ``A'`` can
link it to ``A`` or to another period's key.  The owner blinds the expanded
secret key ``(a, RH)`` to ``(h*a mod l, SHA-512("Derive temporary signing
key hash input" | RH)[:32])`` and signs ordinary Ed25519 signatures that
verify under ``A'``.

On top of Tor's construction this module derives, per period, the record
encryption key (from ``A`` itself, so only people who know the address can
read a registration) and the DHT storage key (a hash of ``A'``).
"""

import hashlib
from dataclasses import dataclass

import nacl.bindings
import nacl.exceptions

from anonsip._errors import LocalError
from anonsip.identity._identity import Identity, verify_signature

BLIND_STRING = b"Derive temporary signing key\x00"
RH_BLIND_STRING = b"Derive temporary signing key hash input"
KEYBLIND_NONCE_PREFIX = b"key-blind"
ED25519_BASEPOINT = (
    b"(15112221349535400772501151409588531511454012693041857206046113283949847762202, "
    b"46316835694926478169428394003475163141307993866256225615783033603165251855960)"
)
_RECORD_KEY_PERSON = b"asip-record-key"


@dataclass(frozen=True, slots=True)
class TimePeriods:
    """rend-spec-v3 [TIME-PERIODS]: numbered periods of ``length_minutes``,
    shifted by ``rotation_offset_minutes`` so they start at 12:00 UTC by default.
    """

    length_minutes: int = 1440
    rotation_offset_minutes: int = 720

    def __post_init__(self) -> None:
        if not 1 <= self.length_minutes <= 60 * 24 * 366:
            raise LocalError("a time period is between one minute and one year")
        if not 0 <= self.rotation_offset_minutes < 60 * 24 * 366:
            raise LocalError("the rotation offset is between zero and one year")

    def number_at(self, unix_seconds: float) -> int:
        minutes = int(unix_seconds // 60) - self.rotation_offset_minutes
        if minutes < 0:
            raise LocalError("times before the first time period have no period number")
        return minutes // self.length_minutes

    def start_of(self, period: int) -> int:
        """Unix time (seconds) at which ``period`` begins."""
        return (period * self.length_minutes + self.rotation_offset_minutes) * 60

    def end_of(self, period: int) -> int:
        """Unix time (seconds) at which ``period`` ends (the next one begins)."""
        return self.start_of(period + 1)


TOR_TIME_PERIODS = TimePeriods()


def _clamp(param: bytes) -> bytes:
    h = bytearray(param)
    h[0] &= 248
    h[31] &= 63
    h[31] |= 64
    return bytes(h)


def _reduce(value: bytes) -> bytes:
    return nacl.bindings.crypto_core_ed25519_scalar_reduce(value + bytes(64 - len(value)))


def blinding_param(
    public_key: bytes,
    period: int,
    periods: TimePeriods = TOR_TIME_PERIODS,
    *,
    purpose: bytes = KEYBLIND_NONCE_PREFIX,
) -> bytes:
    """The unclamped blinding factor ``h`` (tor's ``build_blinded_key_param``, no secret).

    ``purpose`` replaces Tor's ``key-blind`` label for a key blinded for
    something else (a mailbox): the same identity and period then give a
    blinded key nobody can link to the registration's without the address.
    """
    if len(public_key) != 32:
        raise LocalError("an Ed25519 public key is 32 bytes")
    nonce = purpose + period.to_bytes(8, "big") + periods.length_minutes.to_bytes(8, "big")
    return hashlib.sha3_256(BLIND_STRING + public_key + ED25519_BASEPOINT + nonce).digest()


def blind_public_key_with_param(public_key: bytes, param: bytes) -> bytes:
    """``A' = clamp(param) * A``."""
    try:
        return nacl.bindings.crypto_scalarmult_ed25519_noclamp(_clamp(param), public_key)
    except nacl.exceptions.RuntimeError as exc:
        raise LocalError("this is not a valid Ed25519 public key to blind") from exc


def blind_public_key(
    public_key: bytes,
    period: int,
    periods: TimePeriods = TOR_TIME_PERIODS,
    *,
    purpose: bytes = KEYBLIND_NONCE_PREFIX,
) -> bytes:
    """The period's blinded public key, computed from the public key alone."""
    param = blinding_param(public_key, period, periods, purpose=purpose)
    return blind_public_key_with_param(public_key, param)


def blind_expanded_secret_key(expanded: bytes, param: bytes) -> bytes:
    """Blind an RFC 8032 expanded secret key ``a | RH`` (64 bytes) with ``param``."""
    if len(expanded) != 64:
        raise LocalError("an expanded Ed25519 secret key is 64 bytes")
    scalar = nacl.bindings.crypto_core_ed25519_scalar_mul(
        _reduce(_clamp(param)), _reduce(expanded[:32])
    )
    prefix = hashlib.sha512(RH_BLIND_STRING + expanded[32:]).digest()[:32]
    return scalar + prefix


def sign_with_expanded_key(expanded: bytes, public_key: bytes, message: bytes) -> bytes:
    """An RFC 8032 Ed25519 signature made from an expanded secret key."""
    scalar, prefix = expanded[:32], expanded[32:]
    r = _reduce(hashlib.sha512(prefix + message).digest())
    big_r = nacl.bindings.crypto_scalarmult_ed25519_base_noclamp(r)
    k = _reduce(hashlib.sha512(big_r + public_key + message).digest())
    s = nacl.bindings.crypto_core_ed25519_scalar_add(
        nacl.bindings.crypto_core_ed25519_scalar_mul(k, _reduce(scalar)), r
    )
    return big_r + s


@dataclass(frozen=True, slots=True, repr=False)
class BlindedKey:
    """An identity's blinded key pair for one time period."""

    period: int
    public_key: bytes
    _expanded: bytes

    @classmethod
    def for_identity(
        cls,
        identity: Identity,
        period: int,
        periods: TimePeriods = TOR_TIME_PERIODS,
        *,
        purpose: bytes = KEYBLIND_NONCE_PREFIX,
    ) -> "BlindedKey":
        param = blinding_param(identity.public_key, period, periods, purpose=purpose)
        return cls(
            period=period,
            public_key=blind_public_key_with_param(identity.public_key, param),
            _expanded=blind_expanded_secret_key(identity.expanded_secret_key, param),
        )

    def sign(self, message: bytes) -> bytes:
        return sign_with_expanded_key(self._expanded, self.public_key, message)

    def verify(self, message: bytes, signature: bytes) -> bool:
        return verify_signature(self.public_key, message, signature)

    def __repr__(self) -> str:
        return f"BlindedKey(period={self.period}, public_key={self.public_key.hex()})"


def record_key(public_key: bytes, period: int, periods: TimePeriods = TOR_TIME_PERIODS) -> bytes:
    """The key that encrypts registration records for (identity, period).

    Keyed BLAKE2b with the identity's *unblinded* public key as the key: anyone
    with the address can compute it, a DHT node holding only ``A'`` cannot.
    """
    if len(public_key) != 32:
        raise LocalError("an Ed25519 public key is 32 bytes")
    data = period.to_bytes(8, "big") + periods.length_minutes.to_bytes(8, "big")
    return hashlib.blake2b(data, key=public_key, digest_size=32, person=_RECORD_KEY_PERSON).digest()
