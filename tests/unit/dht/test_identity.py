import dataclasses
import hashlib
import random
from typing import Any

import pytest

from anonsip._errors import RemoteProtocolError
from anonsip.dht import (
    DEFAULT_DIFFICULTY,
    Contact,
    DhtConfig,
    NodeId,
    NodeIdentity,
    onion_address_from_public_key,
    public_key_from_onion_address,
    puzzle_bits,
    puzzle_seed,
    satisfies_puzzle,
    verify_identity_proof,
)

from .helpers import contact, identity

# RFC 8032 test 1 public key; its onion address as tor computes it (tor's
# test_hs_common.c uses the same vector).
RFC8032_PUBLIC = bytes.fromhex("d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a")
RFC8032_ONION = "25njqamcweflpvkl73j4szahhihoc4xt3ktcgjnpaingr5yhkenl5sid"


def test_onion_address_of_a_known_key() -> None:
    assert onion_address_from_public_key(RFC8032_PUBLIC) == RFC8032_ONION
    assert public_key_from_onion_address(RFC8032_ONION) == RFC8032_PUBLIC
    assert public_key_from_onion_address(RFC8032_ONION + ".onion") == RFC8032_PUBLIC


@pytest.mark.parametrize(
    "address",
    [
        RFC8032_ONION[:-1] + "e",  # checksum/version broken
        RFC8032_ONION[:55],
        "1" * 56,  # not base32
        onion_address_from_public_key(RFC8032_PUBLIC)[:-2] + "ab",
    ],
)
def test_bad_onion_addresses_are_refused(address: str) -> None:
    with pytest.raises(RemoteProtocolError):
        public_key_from_onion_address(address)


def test_node_id_is_the_hash_of_the_key() -> None:
    c = contact(1)
    assert c.node_id.to_bytes() == hashlib.sha3_256(c.public_key).digest()
    assert len(c.onion_address) == 56


def test_a_contact_cannot_claim_an_id_or_address_not_derived_from_its_key() -> None:
    c = contact(1)
    with pytest.raises(ValueError, match="node id"):
        dataclasses.replace(c, node_id=contact(2).node_id)
    with pytest.raises(ValueError, match="onion address"):
        dataclasses.replace(c, onion_address=contact(2).onion_address)


def test_bucket_index_and_random_in_bucket() -> None:
    own = NodeId(0b1010 << 200)
    rng = random.Random(3)
    for index in (0, 1, 7, 200, 255):
        assert own.bucket_index(NodeId.random_in_bucket(own, index, rng)) == index
    assert own.bucket_index(own) == -1


def test_crypto_puzzle() -> None:
    rng = random.Random(5)
    ident = NodeIdentity.generate(rng, 9000, difficulty=6)
    assert puzzle_bits(ident.public_key) >= 6
    assert satisfies_puzzle(ident.public_key, 6)
    weak = next(
        i
        for i in (NodeIdentity.generate(rng, 9000) for _ in range(100))
        if puzzle_bits(i.public_key) == 0
    )
    assert not satisfies_puzzle(weak.public_key, 1)
    assert satisfies_puzzle(weak.public_key, 0)


def _proof_args(caller: NodeIdentity, callee: NodeIdentity, nonce: bytes) -> dict[str, Any]:
    return {
        "callee_public_key": callee.public_key,
        "nonce": nonce,
        "caller_public_key": caller.public_key,
        "caller_port": caller.port,
        "signature": caller.prove(callee.public_key, nonce),
    }


def test_identity_proof_verifies_and_yields_the_contact() -> None:
    caller, callee = identity(1, port=1234), identity(2)
    nonce = bytes(range(32))
    got = verify_identity_proof(**_proof_args(caller, callee, nonce))
    assert got == Contact.from_public_key(caller.public_key, 1234)


@pytest.mark.parametrize("field", ["nonce", "callee", "key", "port", "signature", "puzzle"])
def test_identity_proof_failures(field: str) -> None:
    caller, callee = identity(1), identity(2)
    nonce = bytes(32)
    args = _proof_args(caller, callee, nonce)
    difficulty = 0
    if field == "nonce":
        args["nonce"] = bytes([1]) * 32  # replay of a proof made for another nonce
    elif field == "callee":
        args["callee_public_key"] = identity(3).public_key  # relayed from elsewhere
    elif field == "key":
        args["caller_public_key"] = identity(3).public_key
    elif field == "port":
        args["caller_port"] = 9001
    elif field == "signature":
        args["signature"] = bytes(64)
    else:
        difficulty = puzzle_bits(caller.public_key) + 1
    with pytest.raises(RemoteProtocolError):
        verify_identity_proof(**args, difficulty=difficulty)


def test_puzzle_seed_keeps_a_good_seed_and_derives_the_same_one_every_time() -> None:
    rng = random.Random(11)
    good = next(
        s
        for s in (rng.randbytes(32) for _ in range(1000))
        if puzzle_bits(NodeIdentity.from_seed(s, 1).public_key) >= 4
    )
    assert puzzle_seed(good, 4) == good
    weak = next(
        s
        for s in (rng.randbytes(32) for _ in range(1000))
        if puzzle_bits(NodeIdentity.from_seed(s, 1).public_key) == 0
    )
    derived = puzzle_seed(weak, 8)
    assert derived != weak
    assert derived == puzzle_seed(weak, 8)  # no state: a restart finds the same node
    assert puzzle_bits(NodeIdentity.from_seed(derived, 1).public_key) >= 8
    assert puzzle_seed(weak, 0) == weak
    with pytest.raises(ValueError, match="32 bytes"):
        puzzle_seed(b"short", 1)


def test_the_default_difficulty_is_on_and_costs_work() -> None:
    assert DhtConfig().difficulty == DEFAULT_DIFFICULTY >= 16
