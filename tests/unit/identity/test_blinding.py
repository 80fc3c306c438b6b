"""Key blinding against Tor's published vectors, time periods, derived keys."""

import datetime
import hashlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from anonsip.dht import record_key as dht_key
from anonsip.identity import Identity, verify_signature
from anonsip.identity._blinding import (
    TOR_TIME_PERIODS,
    BlindedKey,
    TimePeriods,
    blind_expanded_secret_key,
    blind_public_key,
    blind_public_key_with_param,
    blinding_param,
    record_key,
    sign_with_expanded_key,
)
from tests.unit.identity._helpers import load_vectors

VECTORS = load_vectors("tor_ed25519_blinding.json")
EXTS = VECTORS["ed25519_exts"]
MSG = b"This is extremely silly. But it is also incredibly serious business!"


def _unix(text: str) -> int:
    return int(datetime.datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp())


@pytest.mark.parametrize("case", EXTS, ids=range(len(EXTS)))
def test_tor_ed25519_expansion_and_curve25519(case: dict[str, str]) -> None:
    ident = Identity(seed=bytes.fromhex(case["secret_key_seed"]))
    assert ident.expanded_secret_key.hex() == case["expanded_secret_key"]
    assert ident.public_key.hex() == case["public_key"]
    assert ident.x25519_public_key.hex() == case["curve25519_public_key"]
    assert ident.sign(ident.public_key).hex() == case["self_signature"]
    # Signing from the expanded key gives the same RFC 8032 signature.
    expanded = bytes.fromhex(case["expanded_secret_key"])
    assert sign_with_expanded_key(expanded, ident.public_key, ident.public_key) == ident.sign(
        ident.public_key
    )


@pytest.mark.parametrize("case", EXTS, ids=range(len(EXTS)))
def test_tor_blinding_vectors(case: dict[str, str]) -> None:
    param = bytes.fromhex(case["blinding_param"])
    public = bytes.fromhex(case["public_key"])
    expanded = bytes.fromhex(case["expanded_secret_key"])
    blinded_public = blind_public_key_with_param(public, param)
    blinded_secret = blind_expanded_secret_key(expanded, param)
    assert blinded_public.hex() == case["blinded_public_key"]
    assert blinded_secret.hex() == case["blinded_secret_key"]
    signature = sign_with_expanded_key(blinded_secret, blinded_public, MSG)
    assert verify_signature(blinded_public, MSG, signature)
    assert not verify_signature(blinded_public, MSG * 2, signature)
    assert not verify_signature(public, MSG, signature)


LEGACY = VECTORS["ed25519_exts_legacy"]["cases"]


@pytest.mark.parametrize("case", LEGACY, ids=range(len(LEGACY)))
def test_tor_legacy_blinding_vectors(case: dict[str, str]) -> None:
    # The 2014 generation hashed the parameter first; feeding that hash to the
    # same core must reproduce Tor's older published keys too.
    param = hashlib.sha512(
        b"Derive temporary signing key" + bytes.fromhex(case["blinding_param"])
    ).digest()[:32]
    public = bytes.fromhex(case["public_key"])
    assert blind_public_key_with_param(public, param).hex() == case["blinded_public_key"]
    expanded = bytes.fromhex(case["expanded_secret_key"])
    assert blind_expanded_secret_key(expanded, param).hex() == case["blinded_secret_key"]


def test_tor_hs_blinding_basics() -> None:
    hs = VECTORS["hs_blinding"]
    instant = datetime.datetime(1973, 5, 20, 1, 50, 33, tzinfo=datetime.UTC).timestamp()
    assert TOR_TIME_PERIODS.number_at(instant) == hs["time_period"]
    public = bytes.fromhex(hs["public_key"])
    period = hs["time_period"]
    param = blinding_param(public, period, TimePeriods(length_minutes=hs["period_length_minutes"]))
    assert param.hex().upper() == hs["blinding_param"]
    assert blind_public_key(public, period).hex().upper() == hs["blinded_public_key"]
    blinded_secret = blind_expanded_secret_key(bytes.fromhex(hs["expanded_secret_key"]), param)
    assert blinded_secret.hex().upper() == hs["blinded_secret_key"]


def test_tor_time_periods() -> None:
    tp = VECTORS["time_periods"]
    periods = TimePeriods(tp["period_length_minutes"], tp["rotation_offset_minutes"])
    for case in tp["cases"]:
        assert periods.number_at(_unix(case["time"])) == case["period"]
    for case in tp["next_period_start"]:
        now = _unix(case["time"])
        assert periods.end_of(periods.number_at(now)) == _unix(case["start"])


@given(st.integers(min_value=720 * 60, max_value=2**40), st.integers(1, 5000), st.integers(0, 5000))
def test_period_bounds_contain_the_instant(now: int, length: int, offset: int) -> None:
    periods = TimePeriods(length_minutes=length, rotation_offset_minutes=offset)
    if now < offset * 60:
        return
    n = periods.number_at(now)
    assert periods.start_of(n) <= now < periods.end_of(n)
    assert periods.number_at(periods.end_of(n)) == n + 1
    assert periods.number_at(periods.end_of(n) - 1) == n


@settings(max_examples=30)
@given(st.binary(min_size=32, max_size=32), st.integers(0, 2**32), st.binary(max_size=200))
def test_blinded_key_pair_signs_for_its_public_key(seed: bytes, period: int, msg: bytes) -> None:
    ident = Identity(seed=seed)
    key = BlindedKey.for_identity(ident, period)
    assert key.public_key == blind_public_key(ident.public_key, period)
    assert key.public_key != ident.public_key
    sig = key.sign(msg)
    assert key.verify(msg, sig)
    assert not verify_signature(ident.public_key, msg, sig)
    other = BlindedKey.for_identity(ident, period + 1)
    assert other.public_key != key.public_key
    assert not other.verify(msg, sig)


def test_derived_keys_depend_on_period_and_identity() -> None:
    a = Identity(seed=bytes(32))
    b = Identity(seed=bytes([1]) * 32)
    keys = {record_key(i.public_key, p) for i in (a, b) for p in (10, 11)}
    assert len(keys) == 4
    assert all(len(k) == 32 for k in keys)
    dht = {dht_key(blind_public_key(i.public_key, p)) for i in (a, b) for p in (10, 11)}
    assert len(dht) == 4
    # A changed period length changes everything.
    assert record_key(a.public_key, 10, TimePeriods(60)) != record_key(a.public_key, 10)
    assert blind_public_key(a.public_key, 10, TimePeriods(60)) != blind_public_key(a.public_key, 10)
    assert "secret" not in repr(BlindedKey.for_identity(a, 10))
