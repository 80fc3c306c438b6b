"""Addresses: Bech32m vectors, typo detection, round trips, SIP URIs, safety numbers."""

import contextlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from anonsip.identity import Address, Identity, InvalidAddress, SafetyNumber, _bech32m
from tests.unit.identity._helpers import CountingRandom, load_vectors

BIP350 = load_vectors("bip350_bech32m.json")


@pytest.mark.parametrize("text", BIP350["valid"])
def test_bip350_valid_vectors_decode_and_reencode(text: str) -> None:
    hrp, data = _bech32m.decode(text)
    assert _bech32m.encode(hrp, data) == text.lower()


@pytest.mark.parametrize(("text", "reason"), BIP350["invalid"])
def test_bip350_invalid_vectors_are_rejected(text: str, reason: str) -> None:
    with pytest.raises(InvalidAddress):
        _bech32m.decode(text)


@pytest.mark.parametrize("text", BIP350["bech32_not_bech32m"]["strings"])
def test_bech32_strings_are_not_bech32m(text: str) -> None:
    with pytest.raises(InvalidAddress, match="checksum"):
        _bech32m.decode(text)


def _identity(label: bytes = b"addr") -> Identity:
    return Identity.generate("alice", rng=CountingRandom(label))


def test_address_shape_and_round_trip() -> None:
    ident = _identity()
    text = ident.address.text
    assert text.startswith("asip1q")
    assert len(text) == 64
    assert Address.parse(text) == ident.address
    assert Address.parse(text.upper()) == ident.address
    assert Address.parse(f"  {text}\n") == ident.address


def test_every_single_character_substitution_is_rejected() -> None:
    text = _identity(b"typo").address.text
    alphabet = sorted(set(_bech32m.CHARSET + "asip1bioASIPQ"))
    tried = 0
    for i, original in enumerate(text):
        for replacement in alphabet:
            if replacement == original:
                continue
            typo = text[:i] + replacement + text[i + 1 :]
            with pytest.raises(InvalidAddress) as excinfo:
                Address.parse(typo)
            assert "address" in str(excinfo.value)
            tried += 1
    assert tried > 64 * 32


def test_dropped_and_swapped_characters_are_rejected() -> None:
    text = _identity(b"drop").address.text
    for i in range(len(text)):
        with pytest.raises(InvalidAddress):
            Address.parse(text[:i] + text[i + 1 :])
    for i in range(len(text) - 1):
        swapped = text[:i] + text[i + 1] + text[i] + text[i + 2 :]
        if swapped != text:
            with pytest.raises(InvalidAddress):
                Address.parse(swapped)


def test_error_messages_say_what_is_wrong() -> None:
    text = _identity().address.text
    with pytest.raises(InvalidAddress, match="asip1"):
        Address.parse("bc1" + text[5:])
    with pytest.raises(InvalidAddress, match="mixes upper and lower"):
        Address.parse(text[:10] + text[10:].upper())
    with pytest.raises(InvalidAddress, match="checksum"):
        Address.parse(text[:-1] + ("q" if text[-1] != "q" else "p"))
    with pytest.raises(InvalidAddress, match="empty"):
        Address.parse("   ")
    future = _bech32m.encode("asip", [1, *_bech32m.convert_bits(bytes(32), 8, 5, pad=True)])
    with pytest.raises(InvalidAddress, match="version 1"):
        Address.parse(future)


def test_address_rejects_keys_that_are_not_curve_points() -> None:
    bad = bytes([2]) + bytes(31)  # y = 2 is not on edwards25519
    with pytest.raises(InvalidAddress):
        Address(bad)
    data = [0, *_bech32m.convert_bits(bad, 8, 5, pad=True)]
    with pytest.raises(InvalidAddress):
        Address.parse(_bech32m.encode("asip", data))


@given(st.binary(min_size=32, max_size=32))
def test_any_identity_address_round_trips(seed: bytes) -> None:
    ident = Identity(seed=seed)
    assert Address.parse(ident.address.text).public_key == ident.public_key
    assert Address.from_sip_uri(ident.address.sip_uri) == ident.address


@given(st.text(max_size=100))
def test_parse_raises_only_invalid_address(text: str) -> None:
    with contextlib.suppress(InvalidAddress):
        Address.parse(text)


def test_sip_uri_form() -> None:
    addr = _identity().address
    uri = addr.sip_uri
    assert uri == f"sip:{addr.text}@anonsip.invalid"
    assert Address.from_sip_uri(uri) == addr
    assert Address.from_sip_uri(f"SIP:{addr.text.upper()}@AnonSIP.invalid") == addr
    for bad in (
        f"sips:{addr.text}@anonsip.invalid",
        f"sip:{addr.text}@example.com",
        f"sip:{addr.text}",
        "sip:@anonsip.invalid",
    ):
        with pytest.raises(InvalidAddress):
            Address.from_sip_uri(bad)


def test_identity_repr_hides_the_secret() -> None:
    ident = _identity()
    assert ident.seed.hex() not in repr(ident)
    assert ident.address.text in repr(ident)


def test_identity_x25519_conversion_agrees() -> None:
    import nacl.bindings

    ident = _identity()
    assert nacl.bindings.crypto_scalarmult_base(ident.x25519_private_key) == (
        ident.x25519_public_key
    )


def test_safety_number_is_symmetric_and_60_digits() -> None:
    a, b, c = _identity(b"a"), _identity(b"b"), _identity(b"c")
    ab = SafetyNumber.between(a.public_key, b.public_key)
    assert ab == SafetyNumber.between(b.public_key, a.public_key)
    assert len(ab.digits) == 60
    assert ab.digits.isdigit()
    assert len(ab.groups()) == 12
    assert all(len(g) == 5 for g in ab.groups())
    assert ab.matches(str(ab))
    assert ab.matches(ab.compact.lower())
    assert ab.compact.startswith("ASIPSN1:")
    assert set(ab.compact) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZ234567:SN1")
    ac = SafetyNumber.between(a.public_key, c.public_key)
    assert ac.digits != ab.digits
    assert not ab.matches(ac.compact)
    # Each half belongs to one key: the shared key's half is common to both.
    halves_ab = {ab.digits[:30], ab.digits[30:]}
    halves_ac = {ac.digits[:30], ac.digits[30:]}
    assert len(halves_ab & halves_ac) == 1


def test_safety_number_known_answer_repeats() -> None:
    a = Identity(seed=bytes(range(32)))
    b = Identity(seed=bytes(range(32, 64)))
    # Pinned on first implementation, to catch accidental format changes.
    assert a.address.text == "asip1qqwss00lnecgtu8tsm5vwwj7qn9n7f43snwjs6hcamjrxgyj4xxuqgsaewq"
    number = SafetyNumber.between(a.public_key, b.public_key)
    assert str(number) == (
        "25613 16805 65694 52180 81262 99638 15258 43010 80300 99845 99730 03811"
    )
    assert number.compact.startswith("ASIPSN1:AG7DXB4NVUN4XFDE")
