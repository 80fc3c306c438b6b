"""v3 onion addresses and ADD_ONION keys (rend-spec-v3 section 6)."""

from __future__ import annotations

import nacl.signing
import pytest
from hypothesis import given
from hypothesis import strategies as st

from onion import (
    InvalidOnionAddress,
    InvalidOnionKey,
    OnionKey,
    expanded_key_from_seed,
    normalize_onion_address,
    onion_address_from_public_key,
    public_key_from_onion_address,
)

# RFC 8032 test 1 key; the address is tor's own test vector (test_hs_common.c,
# test_build_address) and the blob is what ADD_ONION accepts for that seed.
SEED = bytes.fromhex("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60")
PUBLIC = bytes.fromhex("d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a")
ADDRESS = "25njqamcweflpvkl73j4szahhihoc4xt3ktcgjnpaingr5yhkenl5sid"
BLOB = (
    "ED25519-V3:MHyDhk8oM8tCei7xwAoBPP3/J2jZgMCjpSDwBpBN6U+bTwr+"
    "KAt0aneGhOdUQlAgV7dHOgPwj5b1o46Sh+Afjw=="
)


def test_known_address_vector() -> None:
    assert onion_address_from_public_key(PUBLIC) == ADDRESS
    assert public_key_from_onion_address(ADDRESS + ".onion") == PUBLIC


def test_known_key_vector() -> None:
    key = OnionKey.from_seed(SEED)
    assert key.blob == BLOB
    assert key.public_key == PUBLIC
    assert key.address == ADDRESS
    assert OnionKey.from_blob(BLOB) == key
    assert "MHyD" not in repr(key)


@given(st.binary(min_size=32, max_size=32))
def test_expanded_key_matches_libsodium_public_key(seed: bytes) -> None:
    key = OnionKey(expanded_key_from_seed(seed))
    assert key.public_key == bytes(nacl.signing.SigningKey(seed).verify_key)
    assert OnionKey.from_blob(key.blob) == key
    assert normalize_onion_address(key.address.upper() + ".onion") == key.address


@pytest.mark.parametrize(
    "bad",
    [
        "",
        ADDRESS[:-1],
        ADDRESS[:-1] + "a",  # checksum/version broken
        "25njqamcweflpvkl73j4szahhihoc4xt3ktcgjnpaingr5yhkenl5sie",
        "1" * 56,  # not base32
        "facebookcorewwwi.onion",  # v2
    ],
)
def test_bad_addresses_are_refused(bad: str) -> None:
    with pytest.raises(InvalidOnionAddress):
        public_key_from_onion_address(bad)


@pytest.mark.parametrize("blob", ["RSA1024:abc", "ED25519-V3:!!!", "ED25519-V3:AAAA", "nocolon"])
def test_bad_key_blobs_are_refused(blob: str) -> None:
    with pytest.raises(InvalidOnionKey):
        OnionKey.from_blob(blob)


def test_bad_lengths_are_refused() -> None:
    with pytest.raises(InvalidOnionKey):
        expanded_key_from_seed(b"short")
    with pytest.raises(InvalidOnionKey):
        onion_address_from_public_key(b"x" * 31)
