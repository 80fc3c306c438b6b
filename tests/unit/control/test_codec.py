"""The control codec: round trips, partial input, strict validation, fuzzing."""

import struct

import msgpack
import pytest
from hypothesis import given
from hypothesis import strategies as st

from anonsip import LocalError, RemoteProtocolError
from anonsip.control import (
    MAX_FRAME,
    ControlCodec,
    ErrorInfo,
    Event,
    Frame,
    Reply,
    Request,
    Role,
    encode,
)

SAMPLES: list[tuple[Role, Frame]] = [
    (Role.SERVER, Request(id=1, op="status", args={})),
    (Role.SERVER, Request(id=7, op="send", args={"peer": "bob", "text": "héllo", "n": [1, b"\0"]})),
    (Role.CLIENT, Reply(id=1, ok=True, result={"a": [1, 2.5, None, True, b"x"]})),
    (Role.CLIENT, Reply(id=2, ok=True, result=None)),
    (Role.CLIENT, Reply(id=3, ok=False, error=ErrorInfo(kind="LocalError", message="no"))),
    (Role.CLIENT, Event(event="message", data={"peer": "bob", "text": "hi"})),
]


def raw(obj: object) -> bytes:
    payload = msgpack.packb(obj, use_bin_type=True)
    return struct.pack(">I", len(payload)) + payload


def decode_all(role: Role, data: bytes) -> list[Frame]:
    codec = ControlCodec(role)
    codec.receive_data(data)
    frames = []
    while (frame := codec.next_frame()) is not None:
        frames.append(frame)
    return frames


@pytest.mark.parametrize(("role", "frame"), SAMPLES)
def test_round_trip(role: Role, frame: Frame) -> None:
    assert decode_all(role, encode(frame)) == [frame]


@pytest.mark.parametrize(("role", "frame"), SAMPLES)
def test_byte_at_a_time(role: Role, frame: Frame) -> None:
    data = encode(frame) * 2
    codec = ControlCodec(role)
    frames = []
    for i in range(len(data)):
        codec.receive_data(data[i : i + 1])
        while (got := codec.next_frame()) is not None:
            frames.append(got)
    assert frames == [frame, frame]
    assert codec.buffered == 0


@pytest.mark.parametrize(("role", "frame"), SAMPLES)
def test_every_truncation_waits_then_fails_at_eof(role: Role, frame: Frame) -> None:
    data = encode(frame)
    for cut in range(1, len(data)):
        codec = ControlCodec(role)
        codec.receive_data(data[:cut])
        assert codec.next_frame() is None
        codec.receive_data(b"")
        with pytest.raises(RemoteProtocolError, match="middle of a frame"):
            codec.next_frame()


def test_clean_eof_is_not_an_error() -> None:
    codec = ControlCodec(Role.CLIENT)
    codec.receive_data(b"")
    assert codec.next_frame() is None
    with pytest.raises(LocalError):
        codec.receive_data(b"more")


def test_oversized_length_is_refused_before_the_payload_arrives() -> None:
    codec = ControlCodec(Role.SERVER)
    codec.receive_data(struct.pack(">I", MAX_FRAME + 1))
    with pytest.raises(RemoteProtocolError, match="exceeds"):
        codec.next_frame()
    # and it stays broken
    with pytest.raises(RemoteProtocolError):
        codec.next_frame()


def test_frame_of_exactly_max_size_is_accepted() -> None:
    args = {"t": b""}
    overhead = len(msgpack.packb({"id": 1, "op": "x", "args": args}, use_bin_type=True))
    # an empty bin8 is 2 bytes, a bin32 header 5: grow the blob to fill exactly
    blob = b"a" * (MAX_FRAME - overhead - 3)
    frame = Request(id=1, op="x", args={"t": blob})
    data = encode(frame)
    assert len(data) == 4 + MAX_FRAME
    assert decode_all(Role.SERVER, data) == [frame]
    with pytest.raises(LocalError, match="exceeds"):
        encode(Request(id=1, op="x", args={"t": blob + b"a"}))


def test_encode_refuses_values_msgpack_cannot_carry() -> None:
    with pytest.raises(LocalError):
        encode(Reply(id=1, ok=True, result=object()))


BAD = [
    pytest.param(Role.SERVER, [1, 2], id="not-a-map"),
    pytest.param(Role.SERVER, {"id": True, "op": "x", "args": {}}, id="bool-id"),
    pytest.param(Role.SERVER, {"id": -1, "op": "x", "args": {}}, id="negative-id"),
    pytest.param(Role.SERVER, {"id": 1.0, "op": "x", "args": {}}, id="float-id"),
    pytest.param(Role.SERVER, {"id": 1, "op": 5, "args": {}}, id="int-op"),
    pytest.param(Role.SERVER, {"id": 1, "op": "", "args": {}}, id="empty-op"),
    pytest.param(Role.SERVER, {"id": 1, "op": "x"}, id="no-args"),
    pytest.param(Role.SERVER, {"id": 1, "op": "x", "args": []}, id="list-args"),
    pytest.param(Role.SERVER, {"id": 1, "op": "x", "args": {}, "z": 1}, id="extra-key"),
    pytest.param(Role.SERVER, {"id": 1, "op": "x", "args": {1: 2}}, id="int-key"),
    pytest.param(Role.SERVER, {"id": 1, "op": "x", "args": {b"k": 2}}, id="bytes-key"),
    pytest.param(Role.SERVER, {"id": 1, "op": "x", "args": {"f": float("nan")}}, id="nan"),
    pytest.param(Role.SERVER, {"id": 1, "ok": True, "result": 1}, id="reply-to-server"),
    pytest.param(Role.CLIENT, {"id": 1, "op": "x", "args": {}}, id="request-to-client"),
    pytest.param(Role.CLIENT, {"id": 1, "ok": False, "result": 1}, id="result-not-ok"),
    pytest.param(Role.CLIENT, {"id": 1, "ok": 1, "result": 1}, id="int-ok"),
    pytest.param(Role.CLIENT, {"id": 1, "ok": True, "error": {}}, id="error-ok"),
    pytest.param(Role.CLIENT, {"id": 1, "ok": False, "error": {"kind": "x"}}, id="error-short"),
    pytest.param(
        Role.CLIENT, {"id": 1, "ok": False, "error": {"kind": 1, "message": "m"}}, id="kind-int"
    ),
    pytest.param(Role.CLIENT, {"event": "x", "data": "s"}, id="event-data-str"),
    pytest.param(Role.CLIENT, {"event": "x"}, id="event-no-data"),
    pytest.param(Role.CLIENT, {"event": "x", "data": {}, "id": 1}, id="event-extra"),
]


@pytest.mark.parametrize(("role", "obj"), BAD)
def test_malformed_frames_raise_remote_error(role: Role, obj: object) -> None:
    with pytest.raises(RemoteProtocolError):
        decode_all(role, raw(obj))


def test_ext_types_and_bad_utf8_and_deep_nesting_are_refused() -> None:
    ext = msgpack.packb({"id": 1, "op": "x", "args": {"e": msgpack.ExtType(5, b"zz")}})
    bad_utf8 = b"\x83\xa2id\x01\xa2op\xa2\xff\xfe\xa4args\x80"
    deep: object = {}
    for _ in range(40):
        deep = [deep]
    nested = msgpack.packb({"id": 1, "op": "x", "args": {"d": deep}})
    for payload in (ext, bad_utf8, nested, b"", b"\xc1", msgpack.packb(1) + b"\x00"):
        codec = ControlCodec(Role.SERVER)
        codec.receive_data(struct.pack(">I", len(payload)) + payload)
        with pytest.raises(RemoteProtocolError):
            codec.next_frame()


@given(st.binary(max_size=300), st.sampled_from(list(Role)))
def test_arbitrary_bytes_only_ever_raise_remote_error(data: bytes, role: Role) -> None:
    codec = ControlCodec(role)
    codec.receive_data(data)
    codec.receive_data(b"")
    try:
        while codec.next_frame() is not None:
            pass
    except RemoteProtocolError:
        pass


msgpack_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**64), 2**64)
    | st.floats()
    | st.text()
    | st.binary(),
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(st.text() | st.integers(), children, max_size=4)
    ),
    max_leaves=20,
)


@given(
    st.dictionaries(
        st.sampled_from(["id", "op", "args", "ok", "result", "error", "event", "data", "x"]),
        msgpack_values,
        max_size=5,
    ),
    st.sampled_from(list(Role)),
)
def test_arbitrary_msgpack_maps_only_ever_raise_remote_error(obj: dict, role: Role) -> None:
    try:
        data = raw(obj)
    except (OverflowError, ValueError):
        return  # not representable in msgpack at all
    try:
        frames = decode_all(role, data)
    except RemoteProtocolError:
        return
    assert len(frames) == 1
    assert decode_all(role, encode(frames[0])) == frames
