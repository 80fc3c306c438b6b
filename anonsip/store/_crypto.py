"""Field encryption for the message store.

Every value that would tell a finder of the laptop who the user talks to or
what they said is sealed with XChaCha20-Poly1305 (libsodium's IETF AEAD via
PyNaCl). The associated data names the table, the column and the row's
identity, so a ciphertext moved to another row or column fails to open.
Addresses are looked up through a keyed BLAKE2b hash, never stored in clear.
Both subkeys are derived from the 32-byte store key with BLAKE2b personalisation.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Final

from nacl.bindings import (
    crypto_aead_xchacha20poly1305_ietf_decrypt,
    crypto_aead_xchacha20poly1305_ietf_encrypt,
)
from nacl.exceptions import CryptoError

from anonsip.store._errors import StoreCorruptError, StoreKeyError

__all__ = ["KEY_SIZE", "FieldCipher"]

KEY_SIZE: Final = 32
NONCE_SIZE: Final = 24


def _subkey(key: bytes, purpose: bytes) -> bytes:
    return hashlib.blake2b(key, digest_size=KEY_SIZE, person=purpose).digest()


class FieldCipher:
    """Seals and opens column values; computes the lookup hash of an address."""

    def __init__(self, key: bytes, rng: Callable[[int], bytes]) -> None:
        if len(key) != KEY_SIZE:
            raise StoreKeyError(f"the store key must be {KEY_SIZE} bytes")
        self._seal_key = _subkey(key, b"asip-store-seal")
        self._index_key = _subkey(key, b"asip-store-idx")
        self._rng = rng

    def peer_hash(self, address: str) -> bytes:
        """The row identity of a peer: keyed, so the file does not reveal the address."""
        return hashlib.blake2b(
            address.encode(), key=self._index_key, digest_size=32, person=b"asip-peer"
        ).digest()

    @staticmethod
    def _aad(where: str, row: bytes) -> bytes:
        label = where.encode()
        return len(label).to_bytes(2, "big") + label + row

    def seal(self, where: str, row: bytes, plaintext: bytes) -> bytes:
        nonce = self._rng(NONCE_SIZE)
        sealed = crypto_aead_xchacha20poly1305_ietf_encrypt(
            plaintext, self._aad(where, row), nonce, self._seal_key
        )
        return nonce + sealed

    def open(self, where: str, row: bytes, sealed: bytes) -> bytes:
        """Decrypt or raise ``StoreCorruptError`` (tampered, moved, or another key)."""
        try:
            return crypto_aead_xchacha20poly1305_ietf_decrypt(
                sealed[NONCE_SIZE:], self._aad(where, row), sealed[:NONCE_SIZE], self._seal_key
            )
        except CryptoError as exc:
            raise StoreCorruptError(
                f"a stored {where} failed its integrity check; the store file was altered"
            ) from exc

    def seal_text(self, where: str, row: bytes, text: str) -> bytes:
        return self.seal(where, row, text.encode())

    def open_text(self, where: str, row: bytes, sealed: bytes) -> str:
        return self.open(where, row, sealed).decode()
