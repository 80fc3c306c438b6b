import contextlib

import msgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from anonsip._errors import RemoteProtocolError
from anonsip.dht import (
    MAX_DELETION_BYTES,
    MAX_DEPOSIT_BYTES,
    MAX_FRAME,
    MAX_PAGE,
    Anonymous,
    Challenge,
    Collect,
    Delete,
    DeleteResult,
    DepositResult,
    Deposits,
    DhtRecord,
    Envelope,
    Error,
    FindNode,
    FindValue,
    FrameDecoder,
    Message,
    Nodes,
    Ping,
    Pong,
    Proof,
    Store,
    StoreDeposit,
    StoreResult,
    Value,
    decode_message,
    encode_frame,
    encode_message,
)

from .helpers import contact, deletion, deposit, deposit_location, location, record

DEPOSIT = deposit(1, 0, expiry=10_000)
BIG_DEPOSIT = deposit(1, 1, expiry=10_000, text="x" * 8000)

SAMPLES: list[Message] = [
    Ping(),
    FindNode(target=contact(1).node_id),
    FindValue(key=location(record(0))),
    Store(location=location(record(0)), record=record(0)),
    Store(location=bytes(32), record=record(0, payload=b"x" * 1024, kind=255)),
    Pong(),
    Nodes(contacts=tuple(contact(n) for n in range(20))),
    Nodes(contacts=()),
    Value(record=record(1), contacts=(contact(3),)),
    StoreResult(outcome="stored"),
    Error(code="busy", reason="try later"),
    Challenge(nonce=bytes(range(32))),
    Proof(public_key=contact(1).public_key, port=65535, signature=bytes(64)),
    Anonymous(),
    StoreDeposit(location=deposit_location(DEPOSIT), deposit=DEPOSIT.encode()),
    StoreDeposit(location=bytes(32), deposit=BIG_DEPOSIT.encode()),
    StoreDeposit(location=bytes(32), deposit=b""),
    DepositResult(outcome="stored", work=14, floor=12),
    DepositResult(outcome="full", work=256, floor=0),
    Collect(location=deposit_location(DEPOSIT)),
    Collect(location=bytes(32), after=DEPOSIT.deposit_id),
    Deposits(deposits=(DEPOSIT.encode(),) * 3, more=True),
    Deposits(deposits=(), more=False),
    Deposits(deposits=(BIG_DEPOSIT.encode(),), more=False),
    Delete(
        location=deposit_location(DEPOSIT),
        deletion=deletion(1, (DEPOSIT,) * 64, 10_000).encode(),
    ),
    DeleteResult(outcome="deleted", removed=65535),
]


@pytest.mark.parametrize("message", SAMPLES, ids=lambda m: type(m).__name__)
def test_round_trip(message: Message) -> None:
    envelope = Envelope(request_id=4242, message=message)
    assert decode_message(encode_message(envelope)) == envelope


def test_frames_byte_at_a_time_and_truncated() -> None:
    wire = b"".join(encode_frame(Envelope(request_id=i, message=m)) for i, m in enumerate(SAMPLES))
    decoder = FrameDecoder()
    got = []
    for i in range(len(wire)):
        decoder.feed(wire[i : i + 1])
        while (envelope := decoder.next_message()) is not None:
            got.append(envelope.message)
    assert got == SAMPLES
    assert decoder.buffered == 0
    truncated = FrameDecoder()
    truncated.feed(wire[:-1])
    while truncated.next_message() is not None:
        pass
    assert truncated.buffered > 0  # the last message waits for its final byte


def test_oversized_frame_is_refused_from_its_header() -> None:
    decoder = FrameDecoder()
    with pytest.raises(RemoteProtocolError):
        decoder.feed((MAX_FRAME + 1).to_bytes(4, "big"))


def packed(obj: object) -> bytes:
    body: bytes = msgpack.packb(obj, use_bin_type=True)
    return body


BAD_BODIES = [
    b"",
    b"\xc1",  # never-used msgpack byte
    packed({"t": 1}),
    packed([1]),
    packed([99, 1]),
    packed([1, -1]),
    packed([1, 2**32]),
    packed([True, 1]),
    packed([1, 1, "extra"]),
    packed([2, 1, b"short"]),
    packed([3, 1, "not bytes" * 4]),
    packed([6, 1, [[contact(1).public_key, 0]]]),
    packed([6, 1, [[contact(1).public_key, 70000]]]),
    packed([6, 1, [[contact(1).public_key, 1]] * 33]),
    packed([6, 1, [[b"x" * 31, 1]]]),
    packed([4, 1, b"l" * 32, [1, b"k" * 32, 1, 1, b"p" * 1025, b"s" * 64]]),
    packed([4, 1, b"l" * 32, [1, b"k" * 32, -5, 1, b"", b"s" * 64]]),
    packed([4, 1, b"l" * 32, [1, b"k" * 32, 1, 1, b"", b"s" * 63]]),
    packed([4, 1, b"l" * 32, [256, b"k" * 32, 1, 1, b"", b"s" * 64]]),  # kind is one byte
    packed([4, 1, b"l" * 32, [-1, b"k" * 32, 1, 1, b"", b"s" * 64]]),
    packed([4, 1, b"l" * 32, [True, b"k" * 32, 1, 1, b"", b"s" * 64]]),
    packed([4, 1, b"k" * 32, 1, 1, b"", b"s" * 64]),  # a record without its kind (v1)
    packed([4, 1, [1, b"k" * 32, 1, 1, b"", b"s" * 64]]),  # STORE without its location
    packed([4, 1, b"l" * 31, [1, b"k" * 32, 1, 1, b"", b"s" * 64]]),
    packed([4, 1, "l" * 32, [1, b"k" * 32, 1, 1, b"", b"s" * 64]]),
    packed([7, 1, [b"k" * 32, 1, 1, b"", b"s" * 64], []]),  # VALUE with a v1 record
    packed([12, 0, b""]),  # ANONYMOUS takes no field
    packed([12, 0, None]),
    packed([12]),
    packed([8, 1, "x" * 300]),
    packed([11, 0, b"k" * 32, 0, b"s" * 64]),
    packed([1, 1]) + b"\x00",  # trailing data
    msgpack.packb(msgpack.ExtType(5, b"abc")),
    b"\x91" * 5000,  # deep nesting
    packed([13, 1, b"l" * 32, b"d" * (MAX_DEPOSIT_BYTES + 1)]),
    packed([13, 1, b"l" * 31, b"d"]),
    packed([13, 1, b"l" * 32, "d"]),
    packed([13, 1, b"l" * 32]),
    packed([14, 1, "stored", 257, 12]),
    packed([14, 1, "stored", 12, -1]),
    packed([14, 1, "stored", True, 12]),
    packed([14, 1, "stored", 12]),
    packed([15, 1, b"l" * 32, b"a" * 31]),  # a cursor is empty or a deposit id
    packed([15, 1, b"l" * 32, b"a" * 33]),
    packed([15, 1, b"l" * 32, None]),
    packed([15, 1, b"l" * 32]),
    packed([16, 1, [b"d"] * (MAX_PAGE + 1), False]),
    packed([16, 1, [b"d" * (MAX_DEPOSIT_BYTES + 1)], False]),
    packed([16, 1, [b"d"], 0]),  # more is a boolean, not a number
    packed([16, 1, ["d"], False]),
    packed([16, 1, b"d", False]),
    packed([17, 1, b"l" * 32, b"x" * (MAX_DELETION_BYTES + 1)]),
    packed([17, 1, b"l" * 32, None]),
    packed([18, 1, "deleted", 1 << 16]),
    packed([18, 1, "deleted", False]),
    packed([19, 1]),
]


@pytest.mark.parametrize("body", BAD_BODIES)
def test_malformed_bodies_raise_remote_protocol_error(body: bytes) -> None:
    with pytest.raises(RemoteProtocolError):
        decode_message(body)


@settings(max_examples=500)
@given(st.binary(max_size=200))
def test_random_bytes_raise_only_remote_protocol_error(data: bytes) -> None:
    with contextlib.suppress(RemoteProtocolError):
        decode_message(data)
    decoder = FrameDecoder()
    try:
        decoder.feed(data)
        while decoder.next_message() is not None:
            pass
    except RemoteProtocolError:
        pass


_leaves = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**64 - 1)
    | st.floats()
    | st.text(max_size=40)
    | st.binary(max_size=80)
    | st.sampled_from([bytes(32), bytes(64), contact(1).public_key])
)
_objects = st.recursive(
    _leaves,
    lambda inner: (
        st.lists(inner, max_size=6) | st.dictionaries(st.text(max_size=5), inner, max_size=4)
    ),
    max_leaves=25,
)


@settings(max_examples=1000)
@given(
    st.integers(min_value=0, max_value=19),
    st.integers(min_value=-1, max_value=2**32),
    st.lists(_objects, max_size=4),
)
def test_random_msgpack_objects_raise_only_remote_protocol_error(
    code: int, request_id: int, fields: list[object]
) -> None:
    with contextlib.suppress(RemoteProtocolError):
        decode_message(packed([code, request_id, *fields]))


@settings(max_examples=300)
@given(st.sampled_from(SAMPLES), st.data())
def test_mutated_valid_messages_raise_only_remote_protocol_error(
    message: Message, data: st.DataObject
) -> None:
    body = bytearray(encode_message(Envelope(request_id=7, message=message)))
    for _ in range(data.draw(st.integers(1, 4))):
        i = data.draw(st.integers(0, len(body) - 1))
        body[i] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(0, len(body)))
    with contextlib.suppress(RemoteProtocolError):
        decode_message(bytes(body[:cut]))


def test_anonymous_on_the_wire_is_three_bytes_and_names_nobody() -> None:
    body = encode_message(Envelope(request_id=0, message=Anonymous()))
    assert body == packed([12, 0])
    assert decode_message(body) == Envelope(request_id=0, message=Anonymous())
    for cut in range(len(body)):
        with pytest.raises(RemoteProtocolError):
            decode_message(body[:cut])


def test_every_truncation_of_every_sample_is_refused() -> None:
    for message in SAMPLES:
        body = encode_message(Envelope(request_id=9, message=message))
        for cut in range(len(body)):
            with pytest.raises(RemoteProtocolError):
                decode_message(body[:cut])


_records = st.builds(
    lambda kind, seq, expiry, payload: record(
        0, seq=seq, expiry=expiry, payload=payload, kind=kind
    ),
    st.integers(0, 255),
    st.integers(1, 5),
    st.integers(4000, 7000),
    st.binary(max_size=64),
)


@settings(max_examples=100, deadline=None)
@given(
    st.integers(0, 2**32 - 1),
    st.binary(min_size=32, max_size=32),
    _records,
    st.sampled_from(["store", "value", "anonymous"]),
)
def test_new_messages_round_trip_whole_and_byte_at_a_time(
    request_id: int, where: bytes, rec: DhtRecord, which: str
) -> None:
    message: Message
    if which == "store":
        message = Store(location=where, record=rec)
    elif which == "value":
        message = Value(record=rec)
    else:
        message = Anonymous()
    envelope = Envelope(request_id=request_id, message=message)
    assert decode_message(encode_message(envelope)) == envelope
    decoder = FrameDecoder()
    got = []
    for byte in encode_frame(envelope):
        decoder.feed(bytes([byte]))
        if (done := decoder.next_message()) is not None:
            got.append(done)
    assert got == [envelope]


@settings(max_examples=100, deadline=None)
@given(
    st.integers(0, 2**32 - 1),
    st.binary(min_size=32, max_size=32),
    st.lists(st.binary(max_size=700), max_size=MAX_PAGE),
    st.booleans(),
    st.integers(0, 256),
    st.integers(0, 256),
    st.sampled_from(["deposit", "result", "collect", "deposits", "delete", "deleted"]),
)
def test_mailbox_messages_round_trip_whole_and_byte_at_a_time(
    request_id: int,
    where: bytes,
    blobs: list[bytes],
    more: bool,
    work: int,
    floor: int,
    which: str,
) -> None:
    messages: dict[str, Message] = {
        "deposit": StoreDeposit(location=where, deposit=b"".join(blobs)[:MAX_DEPOSIT_BYTES]),
        "result": DepositResult(outcome="full", work=work, floor=floor),
        "collect": Collect(location=where, after=where if more else b""),
        "deposits": Deposits(deposits=tuple(blobs[:16]), more=more),
        "delete": Delete(location=where, deletion=b"".join(blobs)[:MAX_DELETION_BYTES]),
        "deleted": DeleteResult(outcome="deleted", removed=work),
    }
    envelope = Envelope(request_id=request_id, message=messages[which])
    assert decode_message(encode_message(envelope)) == envelope
    body = encode_message(envelope)
    for cut in range(0, len(body), max(1, len(body) // 50)):
        with pytest.raises(RemoteProtocolError):
            decode_message(body[:cut])
    decoder = FrameDecoder()
    got = []
    for byte in encode_frame(envelope):
        decoder.feed(bytes([byte]))
        if (done := decoder.next_message()) is not None:
            got.append(done)
    assert got == [envelope]


def test_a_page_of_the_largest_deposits_fits_a_frame() -> None:
    # The store fills a page up to MAX_FRAME - 1024 bytes; one largest deposit always fits.
    one = Envelope(
        request_id=2**32 - 1, message=Deposits(deposits=(BIG_DEPOSIT.encode(),), more=True)
    )
    assert len(encode_frame(one)) <= MAX_FRAME
    assert len(BIG_DEPOSIT.encode()) == MAX_DEPOSIT_BYTES
