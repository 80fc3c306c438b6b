import os
import struct

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from nacl.bindings import crypto_aead_xchacha20poly1305_ietf_encrypt

from anonsip import LocalError, RemoteProtocolError
from anonsip.media._frame import (
    MAX_FRAME,
    MediaFrame,
    MediaReceiver,
    MediaSealer,
    derive_media_keys,
)
from anonsip.media._opus import OpusEncoder

SECRET = bytes(range(32))


def pair(call_id: str = "call-1") -> tuple[MediaSealer, MediaReceiver]:
    caller = derive_media_keys(SECRET, call_id, caller=True)
    callee = derive_media_keys(SECRET, call_id, caller=False)
    return MediaSealer(caller.send), MediaReceiver(callee.receive)


def frames_of(receiver: MediaReceiver) -> list[MediaFrame]:
    out = []
    while (frame := receiver.next_frame()) is not None:
        out.append(frame)
    return out


def drain_to_eof(receiver: MediaReceiver) -> list[MediaFrame]:
    got = frames_of(receiver)
    receiver.receive_eof()
    return got


def test_keys_per_direction_and_call() -> None:
    a = derive_media_keys(SECRET, "c1", caller=True)
    b = derive_media_keys(SECRET, "c1", caller=False)
    c = derive_media_keys(SECRET, "c2", caller=True)
    assert a.send == b.receive
    assert a.receive == b.send
    assert a.send.key != a.receive.key
    assert a.send.key != c.send.key
    assert a.send.salt != a.receive.salt
    assert "secret" in repr(a.send)
    assert a.send.key.hex() not in repr(a)
    with pytest.raises(LocalError):
        derive_media_keys(b"short", "c1", caller=True)


def test_roundtrip_and_fields() -> None:
    sealer, receiver = pair()
    wire = sealer.seal(seq=0, timestamp_ms=0, packets=[b"a" * 60], speech=True, echo_ms=7)
    wire += sealer.seal(seq=1, timestamp_ms=20, packets=[b"b" * 60, b"c" * 60], echo_hold_ms=3)
    wire += sealer.seal(seq=3, timestamp_ms=60, packets=[b"d" * 60], held=True)
    wire += sealer.seal_end(seq=4, timestamp_ms=80)
    receiver.receive_data(wire)
    got = frames_of(receiver)
    assert got == [
        MediaFrame(seq=0, timestamp_ms=0, packets=(b"a" * 60,), speech=True, echo_ms=7),
        MediaFrame(seq=1, timestamp_ms=20, packets=(b"b" * 60, b"c" * 60), echo_hold_ms=3),
        MediaFrame(seq=3, timestamp_ms=60, packets=(b"d" * 60,), held=True),
        MediaFrame(seq=4, timestamp_ms=80, packets=(), end=True),
    ]
    assert receiver.ended
    receiver.receive_eof()


def test_byte_at_a_time() -> None:
    sealer, receiver = pair()
    wire = b"".join(
        sealer.seal(seq=i, timestamp_ms=20 * i, packets=[bytes([i]) * 60]) for i in range(5)
    )
    got = []
    for i in range(len(wire)):
        receiver.receive_data(wire[i : i + 1])
        got += frames_of(receiver)
    assert [f.seq for f in got] == [0, 1, 2, 3, 4]


def test_truncation_at_every_point() -> None:
    sealer, _ = pair()
    wire = sealer.seal(seq=0, timestamp_ms=0, packets=[b"x" * 60])
    for cut in range(1, len(wire)):
        _, receiver = pair()
        receiver.receive_data(wire[:cut])
        assert receiver.next_frame() is None
        with pytest.raises(RemoteProtocolError, match="middle of a frame"):
            receiver.receive_eof()


def test_any_flipped_bit_is_rejected() -> None:
    sealer, _ = pair()
    wire = sealer.seal(seq=5, timestamp_ms=100, packets=[b"x" * 60])
    for i in range(len(wire)):
        _, receiver = pair()
        bad = bytearray(wire)
        bad[i] ^= 0x01
        receiver.receive_data(bytes(bad))
        with pytest.raises(RemoteProtocolError):
            drain_to_eof(receiver)


def test_replay_and_reorder_rejected() -> None:
    sealer, receiver = pair()
    f0 = sealer.seal(seq=0, timestamp_ms=0, packets=[b"x"])
    f1 = sealer.seal(seq=1, timestamp_ms=20, packets=[b"y"])
    receiver.receive_data(f0 + f0)
    assert receiver.next_frame() is not None
    with pytest.raises(RemoteProtocolError, match="authentication"):
        receiver.next_frame()
    # Once broken it stays broken.
    with pytest.raises(RemoteProtocolError):
        receiver.next_frame()
    _, receiver = pair()
    receiver.receive_data(f1 + f0)
    with pytest.raises(RemoteProtocolError):
        receiver.next_frame()


def test_wrong_direction_or_call_fails() -> None:
    sealer, _ = pair("call-1")
    _, other_call = pair("call-2")
    wire = sealer.seal(seq=0, timestamp_ms=0, packets=[b"x"])
    other_call.receive_data(wire)
    with pytest.raises(RemoteProtocolError):
        other_call.next_frame()
    echo = MediaReceiver(derive_media_keys(SECRET, "call-1", caller=True).receive)
    echo.receive_data(wire)
    with pytest.raises(RemoteProtocolError):
        echo.next_frame()


def test_non_increasing_sequence_from_a_keyed_peer_is_rejected() -> None:
    # A peer holding the key but sending seq 4 then seq 4 again: craft the
    # second frame by hand with the right counter nonce.
    keys = derive_media_keys(SECRET, "c", caller=True)
    sealer, receiver = (
        MediaSealer(keys.send),
        MediaReceiver(derive_media_keys(SECRET, "c", caller=False).receive),
    )
    first = sealer.seal(seq=4, timestamp_ms=0, packets=[b"x"])
    header = struct.pack(">BBII", 1, 0, 4, 20)
    body = struct.pack(">BIH", 0, 0, 0) + b"\x00\x01y"
    nonce = keys.send.salt + (1).to_bytes(8, "big")
    sealed = header + crypto_aead_xchacha20poly1305_ietf_encrypt(body, header, nonce, keys.send.key)
    receiver.receive_data(first + struct.pack(">H", len(sealed)) + sealed)
    assert receiver.next_frame() is not None
    with pytest.raises(RemoteProtocolError, match="went back"):
        receiver.next_frame()


def test_sealer_refuses_going_back_and_after_end() -> None:
    sealer, _ = pair()
    sealer.seal(seq=3, timestamp_ms=0, packets=[b"x", b"y"])
    with pytest.raises(LocalError):
        sealer.seal(seq=4, timestamp_ms=0, packets=[b"x"])
    sealer.seal_end(seq=5, timestamp_ms=0)
    with pytest.raises(LocalError):
        sealer.seal(seq=6, timestamp_ms=0, packets=[b"x"])
    with pytest.raises(LocalError):
        sealer.seal(seq=7, timestamp_ms=0, packets=[])
    with pytest.raises(LocalError):
        pair()[0].seal(seq=0, timestamp_ms=0, packets=[b"x" * MAX_FRAME])


def test_oversize_length_and_flood_rejected() -> None:
    _, receiver = pair()
    receiver.receive_data(struct.pack(">H", MAX_FRAME + 1))
    with pytest.raises(RemoteProtocolError, match="impossible length"):
        receiver.next_frame()
    _, receiver = pair()
    with pytest.raises(RemoteProtocolError, match="faster"):
        receiver.receive_data(os.urandom(300 * 1024))


def test_data_after_end_rejected() -> None:
    sealer, receiver = pair()
    wire = sealer.seal_end(seq=0, timestamp_ms=0)
    receiver.receive_data(wire + wire)
    assert receiver.next_frame() is not None
    with pytest.raises(RemoteProtocolError, match="after ending"):
        receiver.next_frame()


def test_constant_size_speech_vs_silence(speech_pcm: np.ndarray) -> None:
    enc = OpusEncoder(bitrate=24000)
    sealer, _ = pair()
    silence = np.zeros(16000, dtype="<i2")
    pcm = np.concatenate([speech_pcm, silence])
    sizes = set()
    for i, start in enumerate(range(0, len(pcm) - 320, 320)):
        frame = pcm[start : start + 320]
        speech = bool(np.abs(frame).max() > 500)
        sizes.add(
            len(
                sealer.seal(
                    seq=i,
                    timestamp_ms=20 * i,
                    packets=[enc.encode(frame.tobytes())],
                    speech=speech,
                    held=i < 100,  # a start backlog is not told apart on the wire either
                    echo_ms=i * 7,
                    echo_hold_ms=i % 50,
                )
            )
        )
    assert sizes == {2 + 10 + 16 + 7 + 2 + 60}


@settings(max_examples=300)
@given(st.binary(max_size=600), st.integers(min_value=1, max_value=50))
def test_hostile_bytes_raise_only_remote_errors(data: bytes, chunk: int) -> None:
    _, receiver = pair()
    try:
        for i in range(0, len(data), chunk):
            receiver.receive_data(data[i : i + chunk])
            frames_of(receiver)
        receiver.receive_eof()
    except RemoteProtocolError:
        pass
