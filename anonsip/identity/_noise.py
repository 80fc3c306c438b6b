"""The Noise Protocol Framework (revision 34), sans-IO, for the suite
``25519_ChaChaPoly_BLAKE2b`` and the interactive patterns NN, NK, XK, IK, XX.

``CipherState``, ``SymmetricState`` and ``HandshakeState`` follow sections 5.1
to 5.3 of the spec: HKDF over HMAC-BLAKE2b (HASHLEN 64), ChaCha20-Poly1305
with the nonce ``4 zero bytes || little-endian 64-bit counter``, and REKEY as
``ENCRYPT(k, 2^64-1, "", zeros)[:32]``.  No I/O: messages in, messages out.
"""

import enum
import hashlib
import hmac

import nacl.bindings
import nacl.exceptions

from anonsip._errors import LocalError
from anonsip.identity._errors import HandshakeError
from anonsip.identity._identity import RandomSource

DHLEN = 32
HASHLEN = 64
TAGLEN = 16
MAX_MESSAGE = 65535
MAX_NONCE = 2**64 - 1
SUITE = "25519_ChaChaPoly_BLAKE2b"

# Each pattern: (pre-message tokens for initiator, for responder), message lines.
PATTERNS: dict[str, tuple[tuple[str, ...], tuple[str, ...], tuple[tuple[str, ...], ...]]] = {
    "NN": ((), (), (("e",), ("e", "ee"))),
    "NK": ((), ("s",), (("e", "es"), ("e", "ee"))),
    "XK": ((), ("s",), (("e", "es"), ("e", "ee"), ("s", "se"))),
    "IK": ((), ("s",), (("e", "es", "s", "ss"), ("e", "ee", "se"))),
    "XX": ((), (), (("e",), ("e", "ee", "s", "es"), ("s", "se"))),
}


def _hash(data: bytes) -> bytes:
    return hashlib.blake2b(data).digest()


def _hmac(key: bytes, data: bytes) -> bytes:
    return hmac.new(key, data, hashlib.blake2b).digest()


def hkdf(chaining_key: bytes, input_key_material: bytes, outputs: int) -> list[bytes]:
    """Noise section 4.3 HKDF with HMAC-BLAKE2b."""
    temp = _hmac(chaining_key, input_key_material)
    out: list[bytes] = []
    previous = b""
    for i in range(1, outputs + 1):
        previous = _hmac(temp, previous + bytes([i]))
        out.append(previous)
    return out


def dh(private_key: bytes, public_key: bytes) -> bytes:
    """X25519; a peer key that yields the all-zero secret is refused."""
    try:
        return nacl.bindings.crypto_scalarmult(private_key, public_key)
    except (nacl.exceptions.RuntimeError, nacl.exceptions.ValueError) as exc:
        raise HandshakeError("the peer sent an unusable Curve25519 public key") from exc


def x25519_public(private_key: bytes) -> bytes:
    return nacl.bindings.crypto_scalarmult_base(private_key)


def _nonce(n: int) -> bytes:
    return b"\0\0\0\0" + n.to_bytes(8, "little")


class CipherState:
    """Noise section 5.1: a key ``k`` (or none) and a 64-bit nonce ``n``."""

    __slots__ = ("k", "n")

    def __init__(self, key: bytes | None = None) -> None:
        self.k = key
        self.n = 0

    def has_key(self) -> bool:
        return self.k is not None

    def encrypt_with_ad(self, ad: bytes, plaintext: bytes) -> bytes:
        if self.k is None:
            return plaintext
        if self.n >= MAX_NONCE:
            raise LocalError("this cipher has used all its nonces; rekey or start a new session")
        ciphertext = nacl.bindings.crypto_aead_chacha20poly1305_ietf_encrypt(
            plaintext, ad, _nonce(self.n), self.k
        )
        self.n += 1
        return ciphertext

    def decrypt_with_ad(self, ad: bytes, ciphertext: bytes) -> bytes:
        """Decrypt; on failure raise ``HandshakeError`` and leave ``n`` unchanged."""
        if self.k is None:
            return ciphertext
        if self.n >= MAX_NONCE:
            raise LocalError("this cipher has used all its nonces; rekey or start a new session")
        if len(ciphertext) < TAGLEN:
            raise HandshakeError("a message is too short to be authentic")
        try:
            plaintext = nacl.bindings.crypto_aead_chacha20poly1305_ietf_decrypt(
                ciphertext, ad, _nonce(self.n), self.k
            )
        except (nacl.exceptions.CryptoError, nacl.exceptions.ValueError) as exc:
            raise HandshakeError("a message failed authentication") from exc
        self.n += 1
        return plaintext

    def rekey(self) -> None:
        if self.k is None:
            raise LocalError("cannot rekey a cipher that has no key")
        self.k = nacl.bindings.crypto_aead_chacha20poly1305_ietf_encrypt(
            bytes(32), b"", _nonce(MAX_NONCE), self.k
        )[:32]


class SymmetricState:
    """Noise section 5.2: chaining key ``ck``, handshake hash ``h``, a CipherState."""

    def __init__(self, protocol_name: bytes) -> None:
        if len(protocol_name) <= HASHLEN:
            self.h = protocol_name + bytes(HASHLEN - len(protocol_name))
        else:
            self.h = _hash(protocol_name)
        self.ck = self.h
        self.cipher = CipherState()

    def mix_key(self, input_key_material: bytes) -> None:
        self.ck, temp_k = hkdf(self.ck, input_key_material, 2)
        self.cipher = CipherState(temp_k[:32])

    def mix_hash(self, data: bytes) -> None:
        self.h = _hash(self.h + data)

    def encrypt_and_hash(self, plaintext: bytes) -> bytes:
        ciphertext = self.cipher.encrypt_with_ad(self.h, plaintext)
        self.mix_hash(ciphertext)
        return ciphertext

    def decrypt_and_hash(self, ciphertext: bytes) -> bytes:
        plaintext = self.cipher.decrypt_with_ad(self.h, ciphertext)
        self.mix_hash(ciphertext)
        return plaintext

    def split(self) -> tuple[CipherState, CipherState]:
        temp_k1, temp_k2 = hkdf(self.ck, b"", 2)
        return CipherState(temp_k1[:32]), CipherState(temp_k2[:32])


class HandshakeStatus(enum.Enum):
    IN_PROGRESS = "in progress"
    COMPLETE = "complete"
    FAILED = "failed"


class HandshakeState:
    """Noise section 5.3 for one party.  Call ``write_message`` and
    ``read_message`` in the pattern's order; after the last message
    ``is_complete`` is true and ``split`` gives the transport ciphers.
    Any refused message moves the state to FAILED for good.
    """

    def __init__(
        self,
        pattern: str,
        *,
        initiator: bool,
        rng: RandomSource,
        prologue: bytes = b"",
        s: bytes | None = None,
        rs: bytes | None = None,
        e: bytes | None = None,
    ) -> None:
        """``s``/``e`` are X25519 private keys, ``rs`` the peer's X25519 public key.

        ``e`` fixes the ephemeral key; it exists for known-answer tests only.
        """
        if pattern not in PATTERNS:
            raise LocalError(f"unsupported Noise pattern {pattern!r}")
        pre_i, pre_r, lines = PATTERNS[pattern]
        self.pattern = pattern
        self.protocol_name = f"Noise_{pattern}_{SUITE}"
        self.initiator = initiator
        self._rng = rng
        self._lines = lines
        self._index = 0
        self.status = HandshakeStatus.IN_PROGRESS
        self._s = s
        self._s_pub = x25519_public(s) if s is not None else None
        self._e = e
        self._e_pub = x25519_public(e) if e is not None else None
        self._rs = rs
        self._re: bytes | None = None
        self._needs_s = any(
            "s" in line for i, line in enumerate(lines) if (i % 2 == 0) == initiator
        )
        if self._needs_s and s is None:
            raise LocalError(f"Noise {pattern} needs this side's static key")
        mine_pre, theirs_pre = (pre_i, pre_r) if initiator else (pre_r, pre_i)
        if "s" in mine_pre and s is None:
            raise LocalError(f"Noise {pattern} needs this side's static key")
        if "s" in theirs_pre and rs is None:
            raise LocalError(f"Noise {pattern} needs the peer's static public key in advance")
        self._sym = SymmetricState(self.protocol_name.encode("ascii"))
        self._sym.mix_hash(prologue)
        for tokens, is_initiator in ((pre_i, True), (pre_r, False)):
            for _step in tokens:
                key = self._s_pub if is_initiator == initiator else rs
                # The only pre-message step these patterns use is "s".
                assert key is not None
                self._sym.mix_hash(key)

    # -- queries -------------------------------------------------------------

    @property
    def is_complete(self) -> bool:
        return self.status is HandshakeStatus.COMPLETE

    @property
    def is_my_turn(self) -> bool:
        return self.status is HandshakeStatus.IN_PROGRESS and (self._index % 2 == 0) == (
            self.initiator
        )

    @property
    def handshake_hash(self) -> bytes:
        """``h``: unique to this session, public; use it for channel binding."""
        return self._sym.h

    @property
    def remote_static(self) -> bytes | None:
        return self._rs

    # -- messages ------------------------------------------------------------

    def write_message(self, payload: bytes = b"") -> bytes:
        if not self.is_my_turn:
            raise LocalError("it is not this side's turn to send a handshake message")
        out = bytearray()
        for step in self._lines[self._index]:
            if step == "e":
                if self._e is None:
                    self._e = self._rng(DHLEN)
                    self._e_pub = x25519_public(self._e)
                assert self._e_pub is not None
                out += self._e_pub
                self._sym.mix_hash(self._e_pub)
            elif step == "s":
                assert self._s_pub is not None
                out += self._sym.encrypt_and_hash(self._s_pub)
            else:
                self._sym.mix_key(self._dh(step))
        out += self._sym.encrypt_and_hash(payload)
        if len(out) > MAX_MESSAGE:
            raise LocalError(f"a Noise message is at most {MAX_MESSAGE} bytes")
        self._advance()
        return bytes(out)

    def read_message(self, message: bytes) -> bytes:
        if self.status is not HandshakeStatus.IN_PROGRESS or self.is_my_turn:
            raise LocalError("no handshake message is expected from the peer now")
        try:
            payload = self._read(message)
        except HandshakeError:
            self.status = HandshakeStatus.FAILED
            raise
        self._advance()
        return payload

    def _read(self, message: bytes) -> bytes:
        if len(message) > MAX_MESSAGE:
            raise HandshakeError("the handshake message is too long")
        view = memoryview(message)
        for step in self._lines[self._index]:
            if step == "e":
                if len(view) < DHLEN:
                    raise HandshakeError("the handshake message is truncated")
                self._re = bytes(view[:DHLEN])
                view = view[DHLEN:]
                self._sym.mix_hash(self._re)
            elif step == "s":
                size = DHLEN + (TAGLEN if self._sym.cipher.has_key() else 0)
                if len(view) < size:
                    raise HandshakeError("the handshake message is truncated")
                self._rs = self._sym.decrypt_and_hash(bytes(view[:size]))
                view = view[size:]
            else:
                self._sym.mix_key(self._dh(step))
        if self._sym.cipher.has_key() and len(view) < TAGLEN:
            raise HandshakeError("the handshake message is truncated")
        return self._sym.decrypt_and_hash(bytes(view))

    def _dh(self, step: str) -> bytes:
        # Token letters name (initiator's key, responder's key).
        mine, theirs = (step[0], step[1]) if self.initiator else (step[1], step[0])
        private = self._e if mine == "e" else self._s
        public = self._re if theirs == "e" else self._rs
        if private is None or public is None:
            raise LocalError(f"Noise step {step!r} has no key to use")
        return dh(private, public)

    def _advance(self) -> None:
        self._index += 1
        if self._index == len(self._lines):
            self.status = HandshakeStatus.COMPLETE

    def split(self) -> tuple[CipherState, CipherState]:
        """``(send, receive)`` ciphers for this party, once the handshake is complete."""
        if not self.is_complete:
            raise LocalError("the handshake is not complete yet")
        c1, c2 = self._sym.split()
        return (c1, c2) if self.initiator else (c2, c1)

    def exporter_secret(self) -> bytes:
        """A secret for deriving further session keys, bound to ``ck`` and ``h``.

        Not part of Noise rev 34 (which leaves this to the application): it is
        ``HMAC(HKDF(ck, "", 3)[2], h)``, independent of the transport keys.
        """
        if not self.is_complete:
            raise LocalError("the handshake is not complete yet")
        third = hkdf(self._sym.ck, b"", 3)[2]
        return _hmac(third, b"anonsip exporter" + self._sym.h)
