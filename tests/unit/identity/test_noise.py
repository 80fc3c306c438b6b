"""Noise handshakes replayed against the cacophony vectors, plus failure cases."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from anonsip.identity import HandshakeError
from anonsip.identity._noise import CipherState, HandshakeState, hkdf, x25519_public
from tests.unit.identity._helpers import CountingRandom, load_vectors

VECTORS = load_vectors("noise_cacophony.json")["vectors"]


def _never(n: int) -> bytes:
    raise AssertionError("a fixed-ephemeral handshake must not draw randomness")


def _pair(vector: dict[str, object]) -> tuple[HandshakeState, HandshakeState]:
    def h(key: str) -> bytes | None:
        value = vector.get(key)
        return bytes.fromhex(value) if isinstance(value, str) else None

    pattern = str(vector["name"]).split("_")[1]
    initiator = HandshakeState(
        pattern,
        initiator=True,
        rng=_never,
        prologue=h("init_prologue") or b"",
        s=h("init_static"),
        rs=h("init_remote_static"),
        e=h("init_ephemeral"),
    )
    resp_static = h("resp_static")
    responder = HandshakeState(
        pattern,
        initiator=False,
        rng=_never,
        prologue=h("resp_prologue") or b"",
        s=resp_static,
        e=h("resp_ephemeral"),
    )
    if vector.get("init_remote_static"):
        assert resp_static is not None
        assert x25519_public(resp_static) == h("init_remote_static")
    return initiator, responder


@pytest.mark.parametrize("vector", VECTORS, ids=[v["name"] for v in VECTORS])
def test_cacophony_vector(vector: dict[str, object]) -> None:
    initiator, responder = _pair(vector)
    transport: dict[bool, tuple[CipherState, CipherState]] = {}
    messages = vector["messages"]
    assert isinstance(messages, list)
    for i, message in enumerate(messages):
        payload = bytes.fromhex(message["payload"])
        expected = bytes.fromhex(message["ciphertext"])
        sender_is_initiator = i % 2 == 0
        sender, receiver = (initiator, responder) if sender_is_initiator else (responder, initiator)
        if not sender.is_complete:
            wire = sender.write_message(payload)
            assert wire.hex() == expected.hex()
            assert receiver.read_message(wire) == payload
            if sender.is_complete:
                assert receiver.is_complete
                assert initiator.handshake_hash == responder.handshake_hash
                transport[True] = initiator.split()
                transport[False] = responder.split()
        else:
            wire = transport[sender_is_initiator][0].encrypt_with_ad(b"", payload)
            assert wire.hex() == expected.hex()
            assert transport[not sender_is_initiator][1].decrypt_with_ad(b"", wire) == payload
    if vector.get("init_static"):
        assert responder.remote_static == x25519_public(bytes.fromhex(str(vector["init_static"])))


def test_hkdf_outputs_chain() -> None:
    one, two, three = hkdf(b"k" * 64, b"ikm", 3)
    assert hkdf(b"k" * 64, b"ikm", 2) == [one, two]
    assert len({one, two, three}) == 3


def _live_pair(pattern: str, rs_known: bool = True) -> tuple[HandshakeState, HandshakeState]:
    rng = CountingRandom(pattern.encode())
    s_i, s_r = rng(32), rng(32)
    init = HandshakeState(
        pattern,
        initiator=True,
        rng=rng,
        prologue=b"p",
        s=s_i,
        rs=x25519_public(s_r) if rs_known else None,
    )
    resp = HandshakeState(pattern, initiator=False, rng=rng, prologue=b"p", s=s_r)
    return init, resp


@pytest.mark.parametrize("pattern", ["IK", "XX", "XK"])
def test_every_bit_flip_of_every_handshake_message_is_refused(pattern: str) -> None:
    init, resp = _live_pair(pattern)
    transcript = []
    sender, receiver = init, resp
    while not (init.is_complete and resp.is_complete):
        wire = sender.write_message(b"hello")
        transcript.append(wire)
        receiver.read_message(wire)
        sender, receiver = receiver, sender
    for index, wire in enumerate(transcript):
        if pattern == "XX" and index == 0:
            continue  # XX's first message is a bare ephemeral key: tampering shows later
        for bit in range(len(wire) * 8):
            a, b = _live_pair(pattern)
            s, r = a, b
            for _earlier in range(index):
                r.read_message(s.write_message(b"hello"))
                s, r = r, s
            good = s.write_message(b"hello")
            assert good == wire
            bad = bytearray(good)
            bad[bit // 8] ^= 1 << (bit % 8)
            with pytest.raises(HandshakeError):
                r.read_message(bytes(bad))
            assert r.status.value == "failed"


def test_wrong_prologue_or_wrong_responder_key_fails() -> None:
    rng = CountingRandom(b"x")
    s_i, s_r, s_other = rng(32), rng(32), rng(32)
    init = HandshakeState("IK", initiator=True, rng=rng, s=s_i, rs=x25519_public(s_other))
    resp = HandshakeState("IK", initiator=False, rng=rng, s=s_r)
    with pytest.raises(HandshakeError):
        resp.read_message(init.write_message(b""))
    init = HandshakeState("XX", initiator=True, rng=rng, s=s_i, prologue=b"a")
    resp = HandshakeState("XX", initiator=False, rng=rng, s=s_r, prologue=b"b")
    resp.read_message(init.write_message(b""))
    with pytest.raises(HandshakeError):
        init.read_message(resp.write_message(b""))


@given(st.binary(max_size=64))
def test_truncated_handshake_messages_are_refused(junk: bytes) -> None:
    init, _resp = _live_pair("IK")
    wire = init.write_message(b"")
    for cut in range(len(wire)):
        _, fresh = _live_pair("IK")
        with pytest.raises(HandshakeError):
            fresh.read_message(wire[:cut])
    _, fresh = _live_pair("IK")
    with pytest.raises(HandshakeError):
        fresh.read_message(junk)


def test_rekey_changes_the_key_and_both_sides_agree() -> None:
    a, b = CipherState(bytes(32)), CipherState(bytes(32))
    a.rekey()
    b.rekey()
    assert a.k == b.k
    assert a.k != bytes(32)
    assert b.decrypt_with_ad(b"", a.encrypt_with_ad(b"", b"x")) == b"x"
