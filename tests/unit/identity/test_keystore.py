"""Keystore: round trips, wrong passphrase, corruption, crash safety, isolation."""

import os
import pathlib
import signal
import stat
import subprocess
import sys
import time

import pytest

from anonsip.identity import CorruptKeystore, Identity, KeystoreError, WrongPassphrase
from anonsip.identity._keystore import (
    DHT_NODE_KEY,
    FAST_INSECURE_KDF,
    ONION_SERVICE_KEY,
    Keystore,
)
from tests.unit.identity._helpers import CountingRandom

ROOT = pathlib.Path(__file__).resolve().parents[3]
PASS = "correct horse battery staple"


def _store(path: pathlib.Path, rng: CountingRandom | None = None) -> Keystore:
    return Keystore.create(path, PASS, rng=rng or CountingRandom(), kdf=FAST_INSECURE_KDF)


def _open(path: pathlib.Path, passphrase: str | None = PASS) -> Keystore:
    return Keystore.open(path, passphrase, rng=CountingRandom(b"open"))


def test_round_trip_identities_and_secrets(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "keys"
    rng = CountingRandom()
    store = _store(path, rng)
    alice = Identity.generate("alice", rng=rng)
    bob = Identity.generate("bob", rng=rng)
    a_id = store.add_identity(alice)
    b_id = store.add_identity(bob)
    store.set_secret(ONION_SERVICE_KEY, b"onion-secret")
    store.set_secret(DHT_NODE_KEY, b"dht-secret")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600

    again = _open(path)
    assert again.encrypted
    assert again.identities() == {a_id: alice, b_id: bob}
    assert again.secret(ONION_SERVICE_KEY) == b"onion-secret"
    assert again.secret_names() == sorted([ONION_SERVICE_KEY, DHT_NODE_KEY])

    again.rename_identity(a_id, "alice (work)")
    again.remove_identity(b_id)
    again.remove_secret(DHT_NODE_KEY)
    third = _open(path)
    assert third.identities() == {a_id: alice.with_nickname("alice (work)")}
    assert third.secret_names() == [ONION_SERVICE_KEY]
    with pytest.raises(KeystoreError, match="no secret"):
        third.secret(DHT_NODE_KEY)


def test_wrong_passphrase_is_clear_and_leaves_the_file_unchanged(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "keys"
    store = _store(path)
    store.add_identity(Identity.generate("alice", rng=CountingRandom(b"a")))
    before = path.read_bytes()
    mtime = path.stat().st_mtime_ns
    with pytest.raises(WrongPassphrase, match="passphrase is wrong"):
        _open(path, "Correct horse battery staple")
    with pytest.raises(WrongPassphrase, match="encrypted"):
        _open(path, None)
    assert path.read_bytes() == before
    assert path.stat().st_mtime_ns == mtime
    assert list(tmp_path.iterdir()) == [path]


def test_unencrypted_only_when_asked(tmp_path: pathlib.Path) -> None:
    with pytest.raises(KeystoreError, match="allow_unencrypted"):
        Keystore.create(tmp_path / "k", None, rng=CountingRandom())
    assert not (tmp_path / "k").exists()
    store = Keystore.create(tmp_path / "k", None, rng=CountingRandom(), allow_unencrypted=True)
    assert not store.encrypted
    store.set_secret("x", b"y")
    assert _open(tmp_path / "k", None).secret("x") == b"y"
    with pytest.raises(KeystoreError, match="not encrypted"):
        _open(tmp_path / "k", PASS)


def test_create_refuses_to_overwrite_and_open_refuses_loose_permissions(
    tmp_path: pathlib.Path,
) -> None:
    path = tmp_path / "keys"
    _store(path)
    with pytest.raises(KeystoreError, match="already exists"):
        _store(path)
    path.chmod(0o644)
    with pytest.raises(KeystoreError, match="chmod 600"):
        _open(path)
    with pytest.raises(KeystoreError, match="no keystore"):
        _open(tmp_path / "missing")


def test_change_passphrase(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "keys"
    store = _store(path)
    rid = store.add_identity(Identity.generate("a", rng=CountingRandom(b"a")))
    store.set_secret("s", b"v")
    store.change_passphrase("new passphrase", kdf=FAST_INSECURE_KDF)
    with pytest.raises(WrongPassphrase):
        _open(path)
    again = _open(path, "new passphrase")
    assert again.identity(rid).nickname == "a"
    assert again.secret("s") == b"v"


def _keystore_bytes(tmp_path: pathlib.Path) -> bytes:
    path = tmp_path / "orig"
    store = _store(path)
    store.add_identity(Identity.generate("a", rng=CountingRandom(b"a")))
    store.set_secret("s", b"secret value")
    return path.read_bytes()


def test_every_truncation_is_a_clear_corruption_error(tmp_path: pathlib.Path) -> None:
    raw = _keystore_bytes(tmp_path)
    path = tmp_path / "cut"
    for length in range(len(raw)):
        path.write_bytes(raw[:length])
        path.chmod(0o600)
        with pytest.raises(CorruptKeystore):
            _open(path)


def test_every_bit_flip_is_refused_with_a_keystore_error(tmp_path: pathlib.Path) -> None:
    raw = _keystore_bytes(tmp_path)
    path = tmp_path / "flip"
    for i in range(len(raw)):
        for bit in (0x01, 0x80):
            damaged = bytearray(raw)
            damaged[i] ^= bit
            path.write_bytes(bytes(damaged))
            path.chmod(0o600)
            with pytest.raises(KeystoreError):
                _open(path)


def test_records_cannot_be_swapped(tmp_path: pathlib.Path) -> None:
    import msgpack

    path = tmp_path / "keys"
    store = _store(path)
    store.add_identity(Identity.generate("a", rng=CountingRandom(b"a")))
    store.add_identity(Identity.generate("b", rng=CountingRandom(b"b")))
    obj = msgpack.unpackb(path.read_bytes())
    first, second = obj["identities"]
    first["data"], second["data"] = second["data"], first["data"]
    path.write_bytes(msgpack.packb(obj))
    with pytest.raises(CorruptKeystore, match="identity record"):
        _open(path)


def test_two_identities_share_nothing_observable(tmp_path: pathlib.Path) -> None:
    import msgpack

    path = tmp_path / "keys"
    rng = CountingRandom()
    store = _store(path, rng)
    alice = Identity.generate("alice", rng=rng)
    bob = Identity.generate("bob", rng=rng)
    store.add_identity(alice)
    record_a = msgpack.unpackb(path.read_bytes())["identities"][0]
    store.add_identity(bob)
    raw = path.read_bytes()
    records = msgpack.unpackb(raw)["identities"]
    # Adding bob did not touch alice's record.
    assert records[0] == record_a
    rec_a, rec_b = records
    assert rec_a["id"] != rec_b["id"]
    assert rec_a["data"][:24] != rec_b["data"][:24]  # independent nonces
    assert len(rec_a["data"]) - len("alice") == len(rec_b["data"]) - len("bob")
    # Nothing about either identity is in clear.
    for ident in (alice, bob):
        for needle in (
            ident.seed,
            ident.public_key,
            ident.nickname.encode(),
            ident.address.text.encode(),
            ident.x25519_public_key,
        ):
            assert needle not in raw
    assert alice.seed != bob.seed
    # Deleting one leaves the other's record byte-identical.
    store.remove_identity(rec_b["id"].hex())
    assert msgpack.unpackb(path.read_bytes())["identities"] == [record_a]


@pytest.mark.parametrize("failing", ["replace", "fsync", "write"])
def test_a_failed_write_leaves_the_old_file(
    tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch, failing: str
) -> None:
    path = tmp_path / "keys"
    store = _store(path)
    rid = store.add_identity(Identity.generate("a", rng=CountingRandom(b"a")))
    before = path.read_bytes()

    def boom(*args: object) -> None:
        raise OSError("simulated crash")

    monkeypatch.setattr(os, failing, boom)
    with pytest.raises(OSError, match="simulated crash"):
        store.set_secret("new", b"value")
    with pytest.raises(OSError, match="simulated crash"):
        store.remove_identity(rid)
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["keys"]  # no temp file left
    # Memory matches the disk again.
    assert store.secret_names() == []
    assert rid in store.identities()
    again = _open(path)
    assert again.identities() == store.identities()


WRITER = """
import sys
from anonsip.identity._keystore import Keystore
from tests.unit.identity._helpers import CountingRandom
store = Keystore.open(sys.argv[1], "pw", rng=CountingRandom(sys.argv[2].encode()))
n = int(store.secret("counter"))
print("ready", flush=True)
while True:
    n += 1
    store.set_secret("counter", str(n).encode())
    store.set_secret("padding", str(n).encode() * 500)
"""


def test_killed_mid_write_the_file_still_opens(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "keys"
    store = Keystore.create(path, "pw", rng=CountingRandom(), kdf=FAST_INSECURE_KDF)
    store.set_secret("counter", b"0")
    last = 0
    for round_ in range(6):
        with subprocess.Popen(
            [sys.executable, "-c", WRITER, str(path), str(round_)],
            cwd=ROOT,
            stdout=subprocess.PIPE,
        ) as proc:
            assert proc.stdout is not None
            assert proc.stdout.readline() == b"ready\n"
            # Let it write for a varying while, then kill it wherever it is.
            time.sleep(0.05 + 0.03 * round_)
            proc.send_signal(signal.SIGKILL)
            proc.wait()
        assert [p.name for p in tmp_path.iterdir() if not p.name.endswith(".tmp")] == ["keys"]
        reopened = Keystore.open(path, "pw", rng=CountingRandom(b"check"))
        counter = int(reopened.secret("counter"))
        assert counter >= last
        last = counter
    assert last > 0
    Keystore.open(path, "pw", rng=CountingRandom(b"last")).set_secret("done", b"")
    assert [p.name for p in tmp_path.iterdir()] == ["keys"]  # stale temp files swept
