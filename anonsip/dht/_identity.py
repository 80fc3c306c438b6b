"""Node identities that cannot be chosen freely (S/Kademlia, Baumgart & Mies 2007, 4.1-4.2).

A node is an onion service. Its ``NodeId`` is SHA3-256 of the service's
Ed25519 public key, and its onion address is derived from the same key
(rend-spec-v3), so a node can neither pick its position in the key space
nor claim an address it cannot answer on. S/Kademlia's static crypto puzzle
is on by default (``DhtConfig.difficulty``): a key is only accepted if
SHA3-256(SHA3-256(pubkey)) starts with ``c`` zero bits, which makes minting
many identities (a Sybil attack) cost ``2**c`` key generations each.
``puzzle_seed`` turns any stored seed into one that meets the puzzle,
deterministically, so a node keeps its id across restarts without storing
anything new (and homes made before the puzzle existed migrate by
themselves).

Proof of identity on a new connection: the dialled node (callee) sends a
fresh nonce; the caller signs ``label | callee public key | nonce | caller
public key | caller port`` with its onion-service key. The callee checks the
signature and derives id and address from the key. Binding the callee's own
key stops a node from relaying a challenge it got elsewhere (the caller
would sign for the wrong callee). The caller needs no proof from the callee:
Tor already authenticates the onion service it dialled.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from random import Random

import nacl.bindings
import nacl.exceptions
import nacl.signing

from anonsip._errors import RemoteProtocolError
from anonsip.dht._onionaddr import onion_address_from_public_key

__all__ = [
    "IDENTITY_PROOF_LABEL",
    "ID_BITS",
    "Contact",
    "NodeId",
    "NodeIdentity",
    "identity_proof_message",
    "puzzle_bits",
    "puzzle_seed",
    "satisfies_puzzle",
    "verify_identity_proof",
]

ID_BITS = 256
IDENTITY_PROOF_LABEL = b"anonsip-dht-identity-proof-v1\x00"
PUZZLE_SEED_LABEL = b"anonsip-dht-puzzle-seed-v1\x00"

Signer = Callable[[bytes], bytes]


@dataclass(frozen=True, slots=True, order=True)
class NodeId:
    """A 256-bit Kademlia identifier; distances are XOR of the integer values."""

    value: int

    def __post_init__(self) -> None:
        if not 0 <= self.value < (1 << ID_BITS):
            raise ValueError("a NodeId is a 256-bit unsigned integer")

    @classmethod
    def from_bytes(cls, raw: bytes) -> NodeId:
        if len(raw) != ID_BITS // 8:
            raise ValueError("a NodeId is 32 bytes")
        return cls(int.from_bytes(raw, "big"))

    @classmethod
    def from_public_key(cls, public_key: bytes) -> NodeId:
        return cls.from_bytes(hashlib.sha3_256(public_key).digest())

    @classmethod
    def random(cls, rng: Random) -> NodeId:
        return cls(rng.getrandbits(ID_BITS))

    @classmethod
    def random_in_bucket(cls, own: NodeId, index: int, rng: Random) -> NodeId:
        """A random id whose XOR distance to ``own`` has bit length ``index + 1``."""
        low = rng.getrandbits(index) if index else 0
        return cls(own.value ^ ((1 << index) | low))

    def to_bytes(self) -> bytes:
        return self.value.to_bytes(ID_BITS // 8, "big")

    def distance(self, other: NodeId) -> int:
        return self.value ^ other.value

    def bucket_index(self, other: NodeId) -> int:
        """Index of the k-bucket ``other`` falls in, seen from ``self`` (-1 for itself)."""
        return (self.value ^ other.value).bit_length() - 1

    def __str__(self) -> str:
        return f"{self.value:064x}"[:16]


def puzzle_bits(public_key: bytes) -> int:
    """Leading zero bits of SHA3-256(SHA3-256(pubkey)): S/Kademlia's static puzzle."""
    digest = hashlib.sha3_256(hashlib.sha3_256(public_key).digest()).digest()
    return ID_BITS - int.from_bytes(digest, "big").bit_length()


def satisfies_puzzle(public_key: bytes, difficulty: int) -> bool:
    return difficulty <= 0 or puzzle_bits(public_key) >= difficulty


def puzzle_seed(seed: bytes, difficulty: int) -> bytes:
    """``seed`` if its key solves the puzzle, else the first ``SHA3-256(label | seed | INT_8(i))``
    that does: about ``2**difficulty`` key generations, the same answer every time."""
    if len(seed) != 32:
        raise ValueError("a node seed is 32 bytes")
    candidate = seed
    counter = 0
    while not satisfies_puzzle(_public_key_of(candidate), difficulty):
        candidate = hashlib.sha3_256(PUZZLE_SEED_LABEL + seed + counter.to_bytes(8, "big")).digest()
        counter += 1
    return candidate


def _public_key_of(seed: bytes) -> bytes:
    public_key, _ = nacl.bindings.crypto_sign_seed_keypair(seed)
    return bytes(public_key)


@dataclass(frozen=True, slots=True)
class Contact:
    """How to reach a DHT node: its id, onion address (56 chars, no ".onion"), port, key.

    Build one with ``Contact.from_public_key``; ``__post_init__`` refuses a
    contact whose id or address does not derive from its key, so every
    ``Contact`` in memory is self-consistent.
    """

    node_id: NodeId
    onion_address: str
    port: int
    public_key: bytes

    def __post_init__(self) -> None:
        if len(self.public_key) != 32:
            raise ValueError("a contact's public key is 32 bytes")
        if not 1 <= self.port <= 65535:
            raise ValueError("a contact's port is 1-65535")
        if self.node_id != NodeId.from_public_key(self.public_key):
            raise ValueError("a contact's node id must be SHA3-256 of its public key")
        if self.onion_address != onion_address_from_public_key(self.public_key):
            raise ValueError("a contact's onion address must derive from its public key")

    @classmethod
    def from_public_key(cls, public_key: bytes, port: int) -> Contact:
        return cls(
            node_id=NodeId.from_public_key(public_key),
            onion_address=onion_address_from_public_key(public_key),
            port=port,
            public_key=public_key,
        )

    def __repr__(self) -> str:
        return f"Contact({self.node_id}, {self.onion_address[:8]}…:{self.port})"


@dataclass(frozen=True, slots=True)
class NodeIdentity:
    """This node's onion-service public key and a way to sign with its private key.

    ``sign`` is a callable so that keys nacl cannot load as a seed (tor's
    expanded ``ED25519-V3`` keys) can be used as well; ``from_seed`` covers
    the common case.
    """

    public_key: bytes
    sign: Signer
    port: int

    @classmethod
    def from_seed(cls, seed: bytes, port: int) -> NodeIdentity:
        key = nacl.signing.SigningKey(seed)

        def sign(message: bytes) -> bytes:
            return bytes(key.sign(message).signature)

        return cls(public_key=bytes(key.verify_key), sign=sign, port=port)

    @classmethod
    def generate(cls, rng: Random, port: int, difficulty: int = 0) -> NodeIdentity:
        """A new identity meeting the puzzle; a seeded ``rng`` is for tests and simulation only."""
        while True:
            identity = cls.from_seed(rng.randbytes(32), port)
            if satisfies_puzzle(identity.public_key, difficulty):
                return identity

    @property
    def contact(self) -> Contact:
        return Contact.from_public_key(self.public_key, self.port)

    def prove(self, callee_public_key: bytes, nonce: bytes) -> bytes:
        """The signature answering a callee's identity challenge."""
        return self.sign(
            identity_proof_message(callee_public_key, nonce, self.public_key, self.port)
        )


def identity_proof_message(
    callee_public_key: bytes, nonce: bytes, caller_public_key: bytes, caller_port: int
) -> bytes:
    return (
        IDENTITY_PROOF_LABEL
        + callee_public_key
        + nonce
        + caller_public_key
        + caller_port.to_bytes(2, "big")
    )


def verify_identity_proof(
    *,
    callee_public_key: bytes,
    nonce: bytes,
    caller_public_key: bytes,
    caller_port: int,
    signature: bytes,
    difficulty: int = 0,
) -> Contact:
    """The caller's verified ``Contact``; raises RemoteProtocolError if the proof fails."""
    try:
        contact = Contact.from_public_key(caller_public_key, caller_port)
    except ValueError as exc:
        raise RemoteProtocolError(f"identity proof: {exc}") from exc
    if not satisfies_puzzle(caller_public_key, difficulty):
        raise RemoteProtocolError("identity proof: the key does not solve the crypto puzzle")
    message = identity_proof_message(callee_public_key, nonce, caller_public_key, caller_port)
    try:
        nacl.signing.VerifyKey(caller_public_key).verify(message, signature)
    except (nacl.exceptions.CryptoError, ValueError, TypeError) as exc:
        raise RemoteProtocolError("identity proof: the signature does not verify") from exc
    return contact
