"""Benchmarks for the identity and cryptographic core.

Run: .venv/bin/python -m bench.crypto
Prints a table, then one JSON object with the figures as the last line.
"""

import json
import os
import statistics
import tempfile
import time
from collections.abc import Callable

from anonsip.identity import (
    MODERATE_KDF,
    NEED_DATA,
    BlindedKey,
    Identity,
    Keystore,
    SecureChannel,
    TimePeriods,
    verify_signature,
)
from anonsip.registration import (
    Contact,
    Presence,
    Registration,
    onion_address,
    open_record,
    seal,
)

ALICE = Identity.generate("alice", rng=os.urandom)
BOB = Identity.generate("bob", rng=os.urandom)


def _rate(fn: Callable[[], object], seconds: float = 1.0) -> float:
    """Calls per second of ``fn``, measured over about ``seconds``."""
    fn()
    count = 0
    start = time.perf_counter()
    while (elapsed := time.perf_counter() - start) < seconds:
        fn()
        count += 1
    return count / elapsed


def _drain(channel: SecureChannel) -> None:
    while channel.next_event() is not NEED_DATA:
        pass


def _handshake(pattern: str) -> tuple[SecureChannel, SecureChannel]:
    known = BOB.public_key if pattern == "IK" else None
    a = SecureChannel.initiate(ALICE, rng=os.urandom, remote_public_key=known)
    b = SecureChannel.respond(BOB, rng=os.urandom)
    b.receive_data(a.data_to_send())
    _drain(b)
    a.receive_data(b.data_to_send())
    _drain(a)
    if pattern == "XX":
        b.receive_data(a.data_to_send())
        _drain(b)
    return a, b


def _throughput(size: int, seconds: float = 1.0) -> float:
    a, b = _handshake("IK")
    payload = os.urandom(size)
    batch = max(1, 65536 // size)

    def round_trip() -> None:
        for _ in range(batch):
            a.send_message(payload)
        b.receive_data(a.data_to_send())
        _drain(b)

    calls = _rate(round_trip, seconds)
    return calls * batch * size / 1e6


def _blind_sign_verify() -> None:
    key = BlindedKey.for_identity(ALICE, 20000)
    sig = key.sign(b"registration")
    assert verify_signature(key.public_key, b"registration", sig)


RECORD = Registration(
    contacts=(Contact(onion=onion_address(bytes(32)), port=5060),),
    presence=Presence.AVAILABLE,
    expires=20001 * 86400,
    sequence=1,
)


DAILY = TimePeriods(length_minutes=1440, rotation_offset_minutes=0)


def _seal_open() -> None:
    periods = DAILY
    value = seal(ALICE, 20000, RECORD, rng=os.urandom, periods=periods)
    open_record(ALICE.public_key, 20000, value, 20000 * 86400 + 1, periods=periods)


def _unlock_seconds(runs: int = 3) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "keys")
        store = Keystore.create(path, "bench passphrase", rng=os.urandom, kdf=MODERATE_KDF)
        store.add_identity(ALICE)
        times = []
        for _ in range(runs):
            start = time.perf_counter()
            Keystore.open(path, "bench passphrase", rng=os.urandom)
            times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    figures = {
        "ik_handshakes_per_s": _rate(lambda: _handshake("IK")),
        "xx_handshakes_per_s": _rate(lambda: _handshake("XX")),
        "frame_60B_MB_per_s": _throughput(60),
        "frame_16KiB_MB_per_s": _throughput(16 * 1024),
        "blind_sign_verify_per_s": _rate(_blind_sign_verify),
        "record_seal_open_per_s": _rate(_seal_open),
        "argon2id_unlock_s": _unlock_seconds(),
        "argon2id_opslimit": MODERATE_KDF.opslimit,
        "argon2id_memlimit_MiB": MODERATE_KDF.memlimit // (1024 * 1024),
    }
    rows = [
        ("IK handshakes (both ends)", f"{figures['ik_handshakes_per_s']:.0f} /s"),
        ("XX handshakes (both ends)", f"{figures['xx_handshakes_per_s']:.0f} /s"),
        ("60-byte frames seal+open", f"{figures['frame_60B_MB_per_s']:.2f} MB/s"),
        ("16 KiB frames seal+open", f"{figures['frame_16KiB_MB_per_s']:.1f} MB/s"),
        ("blind + sign + verify", f"{figures['blind_sign_verify_per_s']:.0f} /s"),
        ("registration seal + open", f"{figures['record_seal_open_per_s']:.0f} /s"),
        (
            f"Argon2id unlock (ops={MODERATE_KDF.opslimit}, "
            f"mem={figures['argon2id_memlimit_MiB']} MiB)",
            f"{figures['argon2id_unlock_s']:.2f} s",
        ),
    ]
    width = max(len(name) for name, _ in rows)
    print(f"{'measure':<{width}}  value")
    print(f"{'-' * width}  {'-' * 12}")
    for name, value in rows:
        print(f"{name:<{width}}  {value}")
    print(json.dumps({k: round(v, 3) for k, v in figures.items()}))


if __name__ == "__main__":
    main()
