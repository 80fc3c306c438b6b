"""Contact-request admission: proof of work plus rate limits for strangers."""

from anonsip.admission._bucket import TokenBucket
from anonsip.admission._effort import EffortController, EffortLimits
from anonsip.admission._gate import (
    GateLimits,
    GateStatistics,
    Proof,
    RequestGate,
    Verdict,
    prove,
)
from anonsip.admission._pow import (
    BUCKET_SECONDS,
    DOMAIN,
    MAX_DIFFICULTY,
    NONCE_SIZE,
    RESTING_EFFORT,
    challenge,
    leading_zero_bits,
    solve,
    time_bucket,
    verify,
    work,
)

__all__ = [
    "BUCKET_SECONDS",
    "DOMAIN",
    "MAX_DIFFICULTY",
    "NONCE_SIZE",
    "RESTING_EFFORT",
    "EffortController",
    "EffortLimits",
    "GateLimits",
    "GateStatistics",
    "Proof",
    "RequestGate",
    "TokenBucket",
    "Verdict",
    "challenge",
    "leading_zero_bits",
    "prove",
    "solve",
    "time_bucket",
    "verify",
    "work",
]
