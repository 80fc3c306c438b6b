"""SecureChannel: pairs joined in memory, split delivery, tampering, truncation."""

from collections.abc import Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from anonsip import RemoteProtocolError
from anonsip.identity import ChannelBroken, Identity
from anonsip.identity._channel import (
    NEED_DATA,
    ChannelEvent,
    ChannelState,
    CloseReceived,
    HandshakeComplete,
    Message,
    SecureChannel,
    _prologue,
)
from anonsip.identity._noise import HandshakeState
from tests.unit.identity._helpers import CountingRandom

ALICE = Identity(seed=bytes([1]) * 32, nickname="alice")
BOB = Identity(seed=bytes([2]) * 32, nickname="bob")
MALLORY = Identity(seed=bytes([3]) * 32, nickname="mallory")


def _events(channel: SecureChannel) -> list[ChannelEvent]:
    out = []
    while (event := channel.next_event()) is not NEED_DATA:
        assert isinstance(event, ChannelEvent)
        out.append(event)
    return out


def _deliver(data: bytes, to: SecureChannel, chunk: int | None = None) -> list[ChannelEvent]:
    events: list[ChannelEvent] = []
    step = chunk or max(1, len(data))
    for i in range(0, len(data), step):
        to.receive_data(data[i : i + step])
        events += _events(to)
    return events


def _feed_all(channel: SecureChannel, frames: list[bytes], *, eof: bool = False) -> None:
    for f in frames:
        channel.receive_data(f)
        _events(channel)
    if eof:
        channel.receive_data(b"")
        _events(channel)


def _pair(
    pattern: str, *, chunk: int | None = None, **kwargs: int
) -> tuple[SecureChannel, SecureChannel]:
    rng = CountingRandom(pattern.encode())
    known = BOB.public_key if pattern == "IK" else None
    a = SecureChannel.initiate(ALICE, rng=rng, remote_public_key=known, prologue=b"v1", **kwargs)
    b = SecureChannel.respond(BOB, rng=rng, prologue=b"v1", **kwargs)
    events_b = _deliver(a.data_to_send(), b, chunk)
    events_a = _deliver(b.data_to_send(), a, chunk)
    events_b += _deliver(a.data_to_send(), b, chunk)
    assert [type(e) for e in events_a] == [HandshakeComplete]
    assert [type(e) for e in events_b] == [HandshakeComplete]
    done_a, done_b = events_a[0], events_b[0]
    assert isinstance(done_a, HandshakeComplete)
    assert isinstance(done_b, HandshakeComplete)
    assert done_a.remote_public_key == BOB.public_key
    assert done_b.remote_public_key == ALICE.public_key
    assert done_b.remote_address == ALICE.address
    assert done_a.pattern == done_b.pattern == pattern
    assert done_a.handshake_hash == done_b.handshake_hash == a.handshake_hash
    assert a.state is b.state is ChannelState.OPEN
    return a, b


@pytest.mark.parametrize("pattern", ["IK", "XX"])
@pytest.mark.parametrize("chunk", [None, 1, 7])
def test_handshake_and_messages_both_ways(pattern: str, chunk: int | None) -> None:
    a, b = _pair(pattern, chunk=chunk)
    for i in range(5):
        a.send_message(f"from alice {i}".encode())
        b.send_message(f"from bob {i}".encode())
    assert _deliver(a.data_to_send(), b, chunk) == [
        Message(data=f"from alice {i}".encode()) for i in range(5)
    ]
    assert _deliver(b.data_to_send(), a, chunk) == [
        Message(data=f"from bob {i}".encode()) for i in range(5)
    ]


@pytest.mark.parametrize("pattern", ["IK", "XX"])
def test_export_key_agrees_and_depends_on_label(pattern: str) -> None:
    a, b = _pair(pattern)
    assert a.export_key(b"media call 1") == b.export_key(b"media call 1")
    assert a.export_key(b"media call 1") != a.export_key(b"media call 2")
    assert len(a.export_key(b"x", 64)) == 64
    c, _ = _pair(pattern)  # same rng seed, fresh objects: same transcript
    assert c.export_key(b"media call 1") == a.export_key(b"media call 1")


@settings(max_examples=50, deadline=None)
@given(
    st.lists(st.binary(max_size=300), min_size=1, max_size=8),
    st.data(),
)
def test_frames_split_at_any_byte(messages: list[bytes], data: st.DataObject) -> None:
    a, b = _pair("XX")
    for m in messages:
        a.send_message(m)
    wire = a.data_to_send()
    cuts = sorted(data.draw(st.lists(st.integers(0, len(wire)), max_size=10)))
    got: list[ChannelEvent] = []
    start = 0
    for cut in [*cuts, len(wire)]:
        if cut > start:
            b.receive_data(wire[start:cut])
            got += _events(b)
            start = cut
    assert got == [Message(data=m) for m in messages]


@settings(max_examples=100, deadline=None)
@given(st.integers(0, 2), st.data())
def test_flipping_any_bit_of_any_frame_breaks_the_channel(frame: int, data: st.DataObject) -> None:
    a, b = _pair("IK")
    frames = []
    for i in range(3):
        a.send_message(b"message %d" % i)
        frames.append(a.data_to_send())
    bit = data.draw(st.integers(0, len(frames[frame]) * 8 - 1))
    bad = bytearray(frames[frame])
    bad[bit // 8] ^= 1 << (bit % 8)
    frames[frame] = bytes(bad)
    with pytest.raises(RemoteProtocolError):
        _feed_all(b, frames, eof=True)
    assert b.state is ChannelState.BROKEN
    with pytest.raises(ChannelBroken):
        b.next_event()
    with pytest.raises(ChannelBroken):
        b.send_message(b"x")


def _frames(a: SecureChannel, count: int) -> list[bytes]:
    out = []
    for i in range(count):
        a.send_message(b"m%d" % i)
        out.append(a.data_to_send())
    return out


@pytest.mark.parametrize(
    "arrange",
    [
        pytest.param(lambda f: [f[0], f[0]], id="replayed"),
        pytest.param(lambda f: [f[1], f[0]], id="reordered"),
        pytest.param(lambda f: [f[0], f[2]], id="dropped"),
    ],
)
def test_replay_reorder_and_loss_are_refused(
    arrange: Callable[[list[bytes]], list[bytes]],
) -> None:
    a, b = _pair("XX")
    with pytest.raises(RemoteProtocolError, match="authentication"):
        _feed_all(b, arrange(_frames(a, 3)))
    assert b.state is ChannelState.BROKEN


def test_truncation_is_detected() -> None:
    a, b = _pair("XX")
    (frame,) = _frames(a, 1)
    b.receive_data(frame[:-1])
    assert b.next_event() is NEED_DATA
    b.receive_data(b"")
    with pytest.raises(RemoteProtocolError, match="middle of a frame"):
        b.next_event()
    a, b = _pair("XX")
    b.receive_data(_frames(a, 1)[0])
    assert _events(b) == [Message(data=b"m0")]
    b.receive_data(b"")
    with pytest.raises(RemoteProtocolError, match="without a CLOSE"):
        b.next_event()


def test_clean_close() -> None:
    a, b = _pair("IK")
    a.send_message(b"bye")
    a.close()
    assert a.state is ChannelState.LOCAL_CLOSED
    with pytest.raises(Exception, match="cannot send"):
        a.send_message(b"more")
    assert _deliver(a.data_to_send(), b) == [Message(data=b"bye"), CloseReceived()]
    assert b.state is ChannelState.REMOTE_CLOSED
    b.send_message(b"last words")
    b.close()
    assert b.state is ChannelState.CLOSED
    assert _deliver(b.data_to_send(), a) == [Message(data=b"last words"), CloseReceived()]
    assert a.state is ChannelState.CLOSED
    b.receive_data(b"")
    assert b.next_event() is NEED_DATA


def test_rekeying_every_n_frames_and_on_request() -> None:
    a, b = _pair("XX", rekey_interval=3)
    for i in range(10):
        a.send_message(b"%d" % i)
        if i == 4:
            a.request_rekey()
    assert _deliver(a.data_to_send(), b, 5) == [Message(data=b"%d" % i) for i in range(10)]
    # A receiver that does not rekey at the same point cannot read on: proof keys changed.
    a, b = _pair("XX", rekey_interval=3)
    b.rekey_interval = 1000
    with pytest.raises(RemoteProtocolError):
        _deliver(b"".join(_frames(a, 4)), b)


def test_ik_to_the_wrong_peer_fails() -> None:
    rng = CountingRandom()
    a = SecureChannel.initiate(ALICE, rng=rng, remote_public_key=MALLORY.public_key)
    b = SecureChannel.respond(BOB, rng=rng)
    b.receive_data(a.data_to_send())
    with pytest.raises(RemoteProtocolError):
        b.next_event()


def test_a_peer_claiming_someone_elses_identity_is_refused() -> None:
    """Mallory runs XX with her own static key but claims Alice's Ed25519 key."""
    rng = CountingRandom()
    b = SecureChannel.respond(BOB, rng=rng)
    forger = HandshakeState(
        "XX", initiator=True, rng=rng, prologue=_prologue(0x02, b""), s=MALLORY.x25519_private_key
    )
    msg1 = b"\x02" + forger.write_message(b"")
    b.receive_data(len(msg1).to_bytes(2, "big") + msg1)
    assert b.next_event() is NEED_DATA
    reply = b.data_to_send()
    forger.read_message(reply[2:])
    msg3 = forger.write_message(ALICE.public_key)
    b.receive_data(len(msg3).to_bytes(2, "big") + msg3)
    with pytest.raises(RemoteProtocolError, match="does not match"):
        b.next_event()


def test_wrong_prologue_fails() -> None:
    rng = CountingRandom()
    a = SecureChannel.initiate(ALICE, rng=rng, remote_public_key=BOB.public_key, prologue=b"1")
    b = SecureChannel.respond(BOB, rng=rng, prologue=b"2")
    b.receive_data(a.data_to_send())
    with pytest.raises(RemoteProtocolError):
        b.next_event()


@pytest.mark.parametrize("header", [b"\x00\x00", b"\xff\xff"])
def test_bad_frame_lengths_are_refused(header: bytes) -> None:
    _, b = _pair("XX", max_frame=1000)
    b.receive_data(header)
    with pytest.raises(RemoteProtocolError, match="frame of"):
        b.next_event()


def test_oversized_message_is_a_local_error() -> None:
    a, _ = _pair("IK", max_frame=256)
    a.send_message(b"x" * a.max_message)
    with pytest.raises(Exception, match="at most"):
        a.send_message(b"x" * (a.max_message + 1))


@settings(max_examples=50, deadline=None)
@given(st.binary(max_size=200))
def test_garbage_to_a_responder_raises_only_remote_errors(junk: bytes) -> None:
    b = SecureChannel.respond(BOB, rng=CountingRandom())
    b.receive_data(junk or b"\x00")
    try:
        _events(b)
        b.receive_data(b"")
        _events(b)
    except RemoteProtocolError:
        assert b.state is ChannelState.BROKEN


def test_an_ik_only_responder_refuses_xx_without_saying_who_it_is() -> None:
    """A stranger who does not know our key learns nothing: XX would make us send it."""
    rng = CountingRandom(b"ik-only")
    caller = SecureChannel.initiate(MALLORY, rng=rng, prologue=b"v1")  # XX: no key known
    answerer = SecureChannel.respond(BOB, rng=rng, prologue=b"v1", ik_only=True)
    answerer.receive_data(caller.data_to_send())
    with pytest.raises(RemoteProtocolError, match="IK"):
        _events(answerer)
    assert answerer.state is ChannelState.BROKEN
    assert BOB.public_key not in answerer.data_to_send()  # nothing about Bob goes out
    # A caller that knows Bob's key (IK) is answered as before.
    ik = SecureChannel.initiate(ALICE, rng=rng, remote_public_key=BOB.public_key, prologue=b"v1")
    answerer = SecureChannel.respond(BOB, rng=rng, prologue=b"v1", ik_only=True)
    assert [type(e) for e in _deliver(ik.data_to_send(), answerer)] == [HandshakeComplete]
