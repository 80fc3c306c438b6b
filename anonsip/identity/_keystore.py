"""The keystore: one file holding many identities and a few named secrets.

Every secret is sealed on its own with XChaCha20-Poly1305 (libsodium's
``crypto_aead_xchacha20poly1305_ietf``) under a key derived from the
passphrase by Argon2id (RFC 9106, libsodium ``crypto_pwhash``).  The salt
and cost parameters live in the file.  Each identity is its own record with
its own random id and nonce; nothing is derived from one identity to
another and nothing about an identity (key, nickname) is stored in clear.
The record's kind and id are the AEAD associated data, so records cannot be
swapped or renamed without detection.

The file is msgpack, versioned, and validated strictly on load.  Writes are
atomic: a temporary file in the same directory, ``fsync``, ``rename`` over
the old file, ``fsync`` of the directory.  A crash at any point leaves
either the old file or the new one, never a mixture.
"""

import contextlib
import glob
import os
import pathlib
import re
import stat
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

import msgpack
import nacl.bindings
import nacl.exceptions

from anonsip.identity._errors import CorruptKeystore, KeystoreError, WrongPassphrase
from anonsip.identity._identity import Identity, RandomSource

FORMAT = "anonsip-keystore"
VERSION = 1
MAX_FILE_BYTES = 8 * 1024 * 1024
MAX_IDENTITIES = 256
MAX_SECRETS = 64
MAX_SECRET_BYTES = 16 * 1024
MAX_RECORD_BYTES = MAX_SECRET_BYTES + 256
_SECRET_NAME = re.compile(r"[a-z0-9][a-z0-9._-]{0,63}")
_KEY_BYTES = nacl.bindings.crypto_aead_xchacha20poly1305_ietf_KEYBYTES
_NONCE_BYTES = nacl.bindings.crypto_aead_xchacha20poly1305_ietf_NPUBBYTES
_SALT_BYTES = nacl.bindings.crypto_pwhash_SALTBYTES
_ID_BYTES = 16
_CHECK_PLAINTEXT = b"anonsip keystore passphrase check"

ONION_SERVICE_KEY = "onion-service-key"
DHT_NODE_KEY = "dht-node-key"
MESSAGE_STORE_KEY = "message-store-key"


@dataclass(frozen=True, slots=True)
class KdfParams:
    """Argon2id cost: ``opslimit`` passes over ``memlimit`` bytes."""

    opslimit: int
    memlimit: int

    MIN_OPS: ClassVar[int] = nacl.bindings.crypto_pwhash_argon2id_OPSLIMIT_MIN
    MIN_MEM: ClassVar[int] = nacl.bindings.crypto_pwhash_argon2id_MEMLIMIT_MIN
    MAX_OPS: ClassVar[int] = 4 * nacl.bindings.crypto_pwhash_argon2id_OPSLIMIT_SENSITIVE
    MAX_MEM: ClassVar[int] = nacl.bindings.crypto_pwhash_argon2id_MEMLIMIT_SENSITIVE

    def __post_init__(self) -> None:
        # Bounds also protect ``open`` from a file that asks for absurd costs.
        if not self.MIN_OPS <= self.opslimit <= self.MAX_OPS:
            raise KeystoreError(f"Argon2id opslimit must be in {self.MIN_OPS}..{self.MAX_OPS}")
        if not self.MIN_MEM <= self.memlimit <= self.MAX_MEM:
            raise KeystoreError(f"Argon2id memlimit must be in {self.MIN_MEM}..{self.MAX_MEM}")


MODERATE_KDF = KdfParams(
    opslimit=nacl.bindings.crypto_pwhash_argon2id_OPSLIMIT_MODERATE,
    memlimit=nacl.bindings.crypto_pwhash_argon2id_MEMLIMIT_MODERATE,
)
"""The default: libsodium's MODERATE (3 passes, 256 MiB), about a second."""

FAST_INSECURE_KDF = KdfParams(opslimit=KdfParams.MIN_OPS, memlimit=KdfParams.MIN_MEM)
"""Cheapest legal cost, for tests only: it offers no protection to a weak passphrase."""


def _passphrase_bytes(passphrase: str) -> bytes:
    if not isinstance(passphrase, str) or not passphrase:
        raise KeystoreError("the passphrase must be non-empty text")
    # NFC so the same typed passphrase unlocks on every keyboard/OS.
    return unicodedata.normalize("NFC", passphrase).encode("utf-8")


def _derive_key(passphrase: str, salt: bytes, kdf: KdfParams) -> bytes:
    return nacl.bindings.crypto_pwhash_alg(
        _KEY_BYTES,
        _passphrase_bytes(passphrase),
        salt,
        kdf.opslimit,
        kdf.memlimit,
        nacl.bindings.crypto_pwhash_ALG_ARGON2ID13,
    )


def _ad(kind: str, record_id: bytes) -> bytes:
    return f"{FORMAT}/v{VERSION}/{kind}/".encode() + record_id


def _kdf_binding(kdf: dict[str, Any]) -> bytes:
    # The check is bound to the exact KDF fields: libsodium rounds memlimit to
    # KiB, so an edited cost could otherwise still derive the same key.
    packed: bytes = msgpack.packb([kdf["alg"], kdf["ops"], kdf["mem"], kdf["salt"]])
    return packed


def _check_secret_name(name: str) -> str:
    if not isinstance(name, str) or not _SECRET_NAME.fullmatch(name):
        raise KeystoreError(
            "a secret name is 1-64 characters of a-z, 0-9, '.', '_' or '-', starting "
            "with a letter or digit"
        )
    return name


class _Sealer:
    """Seals and opens records; ``key=None`` means the explicitly unencrypted mode."""

    def __init__(self, key: bytes | None, rng: RandomSource) -> None:
        self.key = key
        self._rng = rng

    def seal(self, kind: str, record_id: bytes, plaintext: bytes) -> bytes:
        if self.key is None:
            return plaintext
        nonce = self._rng(_NONCE_BYTES)
        box = nacl.bindings.crypto_aead_xchacha20poly1305_ietf_encrypt(
            plaintext, _ad(kind, record_id), nonce, self.key
        )
        return nonce + box

    def open(self, kind: str, record_id: bytes, sealed: bytes) -> bytes:
        if self.key is None:
            return sealed
        try:
            return nacl.bindings.crypto_aead_xchacha20poly1305_ietf_decrypt(
                sealed[_NONCE_BYTES:], _ad(kind, record_id), sealed[:_NONCE_BYTES], self.key
            )
        except nacl.exceptions.CryptoError as exc:
            raise CorruptKeystore(
                f"a {kind} record in the keystore is damaged and cannot be decrypted"
            ) from exc


def _encode_identity(identity: Identity) -> bytes:
    packed: bytes = msgpack.packb({"seed": identity.seed, "nickname": identity.nickname})
    return packed


def _decode_identity(plaintext: bytes) -> Identity:
    try:
        obj = msgpack.unpackb(plaintext, raw=False, strict_map_key=True)
    except (ValueError, msgpack.UnpackException) as exc:
        raise CorruptKeystore("an identity record in the keystore is malformed") from exc
    if (
        not isinstance(obj, dict)
        or set(obj) != {"seed", "nickname"}
        or not isinstance(obj["seed"], bytes)
        or not isinstance(obj["nickname"], str)
    ):
        raise CorruptKeystore("an identity record in the keystore is malformed")
    try:
        return Identity(seed=obj["seed"], nickname=obj["nickname"])
    except Exception as exc:
        raise CorruptKeystore("an identity record in the keystore is malformed") from exc


def _require(condition: bool, what: str) -> None:
    if not condition:
        raise CorruptKeystore(f"the keystore file is not valid: {what}")


def _parse_file(raw: bytes) -> dict[str, Any]:
    """Strictly validate the outer structure; return the decoded map."""
    try:
        obj = msgpack.unpackb(
            raw,
            raw=False,
            strict_map_key=True,
            max_bin_len=MAX_RECORD_BYTES,
            max_str_len=1024,
            max_array_len=max(MAX_IDENTITIES, MAX_SECRETS),
            max_map_len=16,
        )
    except (ValueError, msgpack.UnpackException) as exc:
        raise CorruptKeystore(
            "the keystore file is truncated or damaged (it is not readable msgpack)"
        ) from exc
    _require(isinstance(obj, dict), "the top level is not a map")
    _require(obj.get("format") == FORMAT, "this is not an anonsip keystore")
    version = obj.get("version")
    if isinstance(version, int) and version > VERSION:
        raise KeystoreError(
            f"this keystore has format version {version}; this anonsip reads version {VERSION}"
        )
    _require(version == VERSION, "unknown format version")
    _require(
        set(obj) == {"format", "version", "kdf", "check", "identities", "secrets"},
        "unexpected or missing fields",
    )
    kdf = obj["kdf"]
    if kdf is None:
        _require(obj["check"] is None, "an unencrypted keystore has a passphrase check")
    else:
        _require(isinstance(kdf, dict), "kdf is not a map")
        _require(set(kdf) == {"alg", "ops", "mem", "salt"}, "kdf fields")
        _require(kdf["alg"] == "argon2id13", "unknown key derivation algorithm")
        _require(isinstance(kdf["ops"], int) and isinstance(kdf["mem"], int), "kdf costs")
        _require(isinstance(kdf["salt"], bytes) and len(kdf["salt"]) == _SALT_BYTES, "salt")
        _require(isinstance(obj["check"], bytes), "passphrase check")
    min_sealed = 0 if kdf is None else _NONCE_BYTES + 16
    for field, limit in (("identities", MAX_IDENTITIES), ("secrets", MAX_SECRETS)):
        records = obj[field]
        _require(isinstance(records, list) and len(records) <= limit, f"{field} list")
        seen: set[object] = set()
        for record in records:
            _require(isinstance(record, dict) and set(record) == {"id", "data"}, f"{field} item")
            _require(isinstance(record["data"], bytes), f"{field} data")
            _require(len(record["data"]) >= min_sealed, f"{field} data is truncated")
            rid = record["id"]
            if field == "identities":
                _require(isinstance(rid, bytes) and len(rid) == _ID_BYTES, "identity id")
            else:
                _require(isinstance(rid, str) and bool(_SECRET_NAME.fullmatch(rid)), "name")
            _require(rid not in seen, f"duplicate {field} entry")
            seen.add(rid)
    result: dict[str, Any] = obj
    return result


def _atomic_write(path: pathlib.Path, data: bytes, rng: RandomSource) -> None:
    """Replace ``path`` with ``data`` so that a crash leaves the old or the new file."""
    directory = path.parent
    tmp = directory / f".{path.name}.{rng(8).hex()}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC | os.O_NOFOLLOW, 0o600)
    try:
        try:
            os.fchmod(fd, 0o600)
            view = memoryview(data)
            while view:
                written = os.write(fd, view)
                view = view[written:]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise
    # A writer killed earlier may have left a temp file holding an older,
    # perhaps differently-protected copy: remove it now the new file is in place.
    for stale in directory.glob(f".{glob.escape(path.name)}.*.tmp"):
        with contextlib.suppress(FileNotFoundError):
            stale.unlink()
    dir_fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


class Keystore:
    """An open keystore.  Every change is written to disk atomically before returning."""

    def __init__(
        self,
        path: pathlib.Path,
        *,
        sealer: _Sealer,
        kdf: dict[str, Any] | None,
        check: bytes | None,
        identity_records: dict[bytes, bytes],
        secret_records: dict[str, bytes],
        rng: RandomSource,
    ) -> None:
        # Use Keystore.create or Keystore.open.
        self.path = path
        self._sealer = sealer
        self._kdf = kdf
        self._check = check
        self._identity_records = identity_records
        self._secret_records = secret_records
        self._rng = rng
        self._identities = {
            rid: _decode_identity(sealer.open("identity", rid, data))
            for rid, data in identity_records.items()
        }

    # -- opening -------------------------------------------------------------

    @classmethod
    def create(
        cls,
        path: str | os.PathLike[str],
        passphrase: str | None,
        *,
        rng: RandomSource,
        allow_unencrypted: bool = False,
        kdf: KdfParams = MODERATE_KDF,
    ) -> "Keystore":
        """Create a new, empty keystore file; refuses to overwrite an existing one."""
        target = pathlib.Path(path)
        if target.exists():
            raise KeystoreError(f"{target} already exists; open it instead of creating it")
        store = cls._fresh(
            target, passphrase, rng=rng, allow_unencrypted=allow_unencrypted, kdf=kdf
        )
        store._save()
        return store

    @classmethod
    def _fresh(
        cls,
        target: pathlib.Path,
        passphrase: str | None,
        *,
        rng: RandomSource,
        allow_unencrypted: bool,
        kdf: KdfParams,
    ) -> "Keystore":
        if passphrase is None:
            if not allow_unencrypted:
                raise KeystoreError(
                    "a passphrase is required; an unencrypted keystore must be asked for "
                    "explicitly (allow_unencrypted=True)"
                )
            return cls(
                target,
                sealer=_Sealer(None, rng),
                kdf=None,
                check=None,
                identity_records={},
                secret_records={},
                rng=rng,
            )
        salt = rng(_SALT_BYTES)
        sealer = _Sealer(_derive_key(passphrase, salt, kdf), rng)
        kdf_obj = {"alg": "argon2id13", "ops": kdf.opslimit, "mem": kdf.memlimit, "salt": salt}
        return cls(
            target,
            sealer=sealer,
            kdf=kdf_obj,
            check=sealer.seal("check", _kdf_binding(kdf_obj), _CHECK_PLAINTEXT),
            identity_records={},
            secret_records={},
            rng=rng,
        )

    @classmethod
    def open(
        cls, path: str | os.PathLike[str], passphrase: str | None, *, rng: RandomSource
    ) -> "Keystore":
        """Open and decrypt an existing keystore.

        Raises ``WrongPassphrase`` (file untouched), ``CorruptKeystore`` for a
        damaged or truncated file, ``KeystoreError`` for anything else.
        """
        target = pathlib.Path(path)
        try:
            fd = os.open(target, os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW)
        except FileNotFoundError:
            raise KeystoreError(f"there is no keystore at {target}") from None
        with os.fdopen(fd, "rb") as handle:
            mode = os.fstat(handle.fileno()).st_mode
            if not stat.S_ISREG(mode):
                raise KeystoreError(f"{target} is not a regular file")
            if mode & 0o077:
                raise KeystoreError(
                    f"{target} can be read by other users; run 'chmod 600 {target}' first"
                )
            raw = handle.read(MAX_FILE_BYTES + 1)
        if len(raw) > MAX_FILE_BYTES:
            raise CorruptKeystore(f"{target} is too large to be a keystore")
        obj = _parse_file(raw)
        kdf_obj = obj["kdf"]
        if kdf_obj is None:
            if passphrase is not None:
                raise KeystoreError(
                    "this keystore is not encrypted; open it without a passphrase "
                    "(and consider protecting it with one)"
                )
            sealer = _Sealer(None, rng)
        else:
            if passphrase is None:
                raise WrongPassphrase("this keystore is encrypted; a passphrase is needed")
            params = KdfParams(opslimit=kdf_obj["ops"], memlimit=kdf_obj["mem"])
            sealer = _Sealer(_derive_key(passphrase, kdf_obj["salt"], params), rng)
            try:
                check = sealer.open("check", _kdf_binding(kdf_obj), obj["check"])
            except CorruptKeystore:
                raise WrongPassphrase(
                    "the passphrase is wrong (or the keystore file was altered)"
                ) from None
            if check != _CHECK_PLAINTEXT:
                raise CorruptKeystore("the keystore passphrase check is damaged")
        secret_records = {r["id"]: r["data"] for r in obj["secrets"]}
        for name, data in secret_records.items():
            sealer.open("secret", name.encode(), data)  # authenticate every record now
        return cls(
            target,
            sealer=sealer,
            kdf=kdf_obj,
            check=obj["check"],
            identity_records={r["id"]: r["data"] for r in obj["identities"]},
            secret_records=secret_records,
            rng=rng,
        )

    @property
    def encrypted(self) -> bool:
        return self._sealer.key is not None

    # -- identities ----------------------------------------------------------

    def identities(self) -> dict[str, Identity]:
        """All identities, by record id (a random hex string, stable across saves)."""
        return {rid.hex(): ident for rid, ident in self._identities.items()}

    def identity(self, record_id: str) -> Identity:
        try:
            return self._identities[bytes.fromhex(record_id)]
        except (KeyError, ValueError):
            raise KeystoreError(f"no identity with id {record_id!r} in this keystore") from None

    def add_identity(self, identity: Identity) -> str:
        """Store ``identity`` as a new record; returns its record id."""
        if len(self._identities) >= MAX_IDENTITIES:
            raise KeystoreError(f"a keystore holds at most {MAX_IDENTITIES} identities")
        if any(i.public_key == identity.public_key for i in self._identities.values()):
            raise KeystoreError("this identity is already in the keystore")
        rid = self._rng(_ID_BYTES)
        self._identity_records[rid] = self._sealer.seal("identity", rid, _encode_identity(identity))
        self._identities[rid] = identity
        self._save_or_undo(lambda: self._forget_identity(rid))
        return rid.hex()

    def rename_identity(self, record_id: str, nickname: str) -> Identity:
        old = self.identity(record_id)
        new = old.with_nickname(nickname)
        rid = bytes.fromhex(record_id)
        old_record = self._identity_records[rid]
        self._identity_records[rid] = self._sealer.seal("identity", rid, _encode_identity(new))
        self._identities[rid] = new

        def undo() -> None:
            self._identity_records[rid] = old_record
            self._identities[rid] = old

        self._save_or_undo(undo)
        return new

    def remove_identity(self, record_id: str) -> None:
        old = self.identity(record_id)
        rid = bytes.fromhex(record_id)
        old_record = self._identity_records[rid]
        self._forget_identity(rid)

        def undo() -> None:
            self._identity_records[rid] = old_record
            self._identities[rid] = old

        self._save_or_undo(undo)

    def _forget_identity(self, rid: bytes) -> None:
        del self._identity_records[rid]
        del self._identities[rid]

    # -- named secrets -------------------------------------------------------

    def secret_names(self) -> list[str]:
        return sorted(self._secret_records)

    def secret(self, name: str) -> bytes:
        _check_secret_name(name)
        try:
            sealed = self._secret_records[name]
        except KeyError:
            raise KeystoreError(f"no secret named {name!r} in this keystore") from None
        return self._sealer.open("secret", name.encode(), sealed)

    def set_secret(self, name: str, value: bytes) -> None:
        _check_secret_name(name)
        if not isinstance(value, bytes) or len(value) > MAX_SECRET_BYTES:
            raise KeystoreError(f"a secret is at most {MAX_SECRET_BYTES} bytes")
        if name not in self._secret_records and len(self._secret_records) >= MAX_SECRETS:
            raise KeystoreError(f"a keystore holds at most {MAX_SECRETS} secrets")
        old = self._secret_records.get(name)
        self._secret_records[name] = self._sealer.seal("secret", name.encode(), value)

        def undo() -> None:
            if old is None:
                del self._secret_records[name]
            else:
                self._secret_records[name] = old

        self._save_or_undo(undo)

    def remove_secret(self, name: str) -> None:
        self.secret(name)
        old = self._secret_records.pop(name)
        self._save_or_undo(lambda: self._secret_records.__setitem__(name, old))

    # -- passphrase ----------------------------------------------------------

    def change_passphrase(
        self,
        passphrase: str | None,
        *,
        allow_unencrypted: bool = False,
        kdf: KdfParams = MODERATE_KDF,
    ) -> None:
        """Re-encrypt every record under a new passphrase (new salt, new nonces)."""
        fresh = Keystore._fresh(
            self.path, passphrase, rng=self._rng, allow_unencrypted=allow_unencrypted, kdf=kdf
        )
        for rid, ident in self._identities.items():
            fresh._identity_records[rid] = fresh._sealer.seal(
                "identity", rid, _encode_identity(ident)
            )
            fresh._identities[rid] = ident
        for name in self._secret_records:
            fresh._secret_records[name] = fresh._sealer.seal(
                "secret", name.encode(), self.secret(name)
            )
        fresh._save()
        self.__dict__.update(fresh.__dict__)

    # -- writing -------------------------------------------------------------

    def _serialise(self) -> bytes:
        packed: bytes = msgpack.packb(
            {
                "format": FORMAT,
                "version": VERSION,
                "kdf": self._kdf,
                "check": self._check,
                "identities": [
                    {"id": rid, "data": data} for rid, data in self._identity_records.items()
                ],
                "secrets": [
                    {"id": name, "data": data} for name, data in self._secret_records.items()
                ],
            }
        )
        return packed

    def _save(self) -> None:
        _atomic_write(self.path, self._serialise(), self._rng)

    def _save_or_undo(self, undo: Callable[[], None]) -> None:
        # If the disk write fails, memory goes back to matching the disk.
        try:
            self._save()
        except BaseException:
            undo()
            raise
