"""The DHT wire format: msgpack arrays in length-prefixed frames. The only msgpack boundary.

Frame:   u32 big-endian length | msgpack body   (length <= MAX_FRAME)
Body:    [type, request_id, fields...] with

    1 PING          []                        5 PONG          []
    2 FIND_NODE     [target: bin32]           6 NODES         [contacts]
    3 FIND_VALUE    [location: bin32]         7 VALUE         [record, contacts]
    4 STORE         [location: bin32, record] 8 STORE_RESULT  [outcome: str]
    9 ERROR         [code: str, reason: str]
   10 CHALLENGE     [nonce: bin32]           11 PROOF         [public_key: bin32, port, sig: bin64]
   12 ANONYMOUS     []
   13 DEPOSIT       [location: bin32, deposit: bin<=8548]
   14 DEPOSIT_RESULT [outcome: str, work: 0..256, floor: 0..256]
   15 COLLECT       [location: bin32, after: bin0 or bin32]
   16 DEPOSITS      [deposits: [bin<=8548] <= 32, more: bool]
   17 DELETE        [location: bin32, deletion: bin<=2149]
   18 DELETE_RESULT [outcome: str, removed: u16]

    contact = [public_key: bin32, port: uint16]   (id and onion address are derived)
    record  = [kind: u8, public_key: bin32, seq: u64, expiry: u64, payload: bin<=1024,
               signature: bin64]

Decoding is strict (exact types, lengths, list bounds, no extra elements):
any malformed input raises ``RemoteProtocolError`` and nothing else.
"""

from __future__ import annotations

from typing import Any

import msgpack

from anonsip._errors import RemoteProtocolError
from anonsip.dht._deposits import MAX_DELETION_BYTES, MAX_DEPOSIT_BYTES
from anonsip.dht._identity import Contact, NodeId
from anonsip.dht._messages import (
    Anonymous,
    Challenge,
    Collect,
    Delete,
    DeleteResult,
    DepositResult,
    Deposits,
    Envelope,
    Error,
    FindNode,
    FindValue,
    Message,
    Nodes,
    Ping,
    Pong,
    Proof,
    Store,
    StoreDeposit,
    StoreResult,
    Value,
)
from anonsip.dht._record import MAX_PAYLOAD, DhtRecord

__all__ = [
    "MAX_CONTACTS",
    "MAX_FRAME",
    "MAX_PAGE",
    "FrameDecoder",
    "decode_message",
    "encode_frame",
    "encode_message",
]

MAX_FRAME = 16384
MAX_CONTACTS = 32
MAX_PAGE = 32  # deposits in one DEPOSITS reply (the frame bounds their bytes)
MAX_REQUEST_ID = (1 << 32) - 1
_MAX_TEXT = 256
_U64 = 1 << 64

_PING, _FIND_NODE, _FIND_VALUE, _STORE = 1, 2, 3, 4
_PONG, _NODES, _VALUE, _STORE_RESULT, _ERROR = 5, 6, 7, 8, 9
_CHALLENGE, _PROOF, _ANONYMOUS = 10, 11, 12
_DEPOSIT, _DEPOSIT_RESULT, _COLLECT, _DEPOSITS, _DELETE, _DELETE_RESULT = 13, 14, 15, 16, 17, 18


def _contact(c: Contact) -> list[Any]:
    return [c.public_key, c.port]


def _record(r: DhtRecord) -> list[Any]:
    return [r.kind, r.public_key, r.seq, r.expiry, r.payload, r.signature]


def encode_message(envelope: Envelope) -> bytes:
    """The msgpack body of ``envelope`` (no frame header)."""
    m = envelope.message
    head: list[Any] = [envelope.request_id]
    fields: list[Any]
    match m:
        case Ping():
            code, fields = _PING, []
        case FindNode(target=target):
            code, fields = _FIND_NODE, [target.to_bytes()]
        case FindValue(key=key):
            code, fields = _FIND_VALUE, [key]
        case Store(location=location, record=record):
            code, fields = _STORE, [location, _record(record)]
        case Pong():
            code, fields = _PONG, []
        case Nodes(contacts=contacts):
            code, fields = _NODES, [[_contact(c) for c in contacts]]
        case Value(record=record, contacts=contacts):
            code, fields = _VALUE, [_record(record), [_contact(c) for c in contacts]]
        case StoreResult(outcome=outcome):
            code, fields = _STORE_RESULT, [outcome]
        case Error(code=error_code, reason=reason):
            code, fields = _ERROR, [error_code, reason[:_MAX_TEXT]]
        case Challenge(nonce=nonce):
            code, fields = _CHALLENGE, [nonce]
        case Proof(public_key=public_key, port=port, signature=signature):
            code, fields = _PROOF, [public_key, port, signature]
        case Anonymous():
            code, fields = _ANONYMOUS, []
        case StoreDeposit(location=location, deposit=deposit):
            code, fields = _DEPOSIT, [location, deposit]
        case DepositResult(outcome=outcome, work=work, floor=floor):
            code, fields = _DEPOSIT_RESULT, [outcome, work, floor]
        case Collect(location=location, after=after):
            code, fields = _COLLECT, [location, after]
        case Deposits(deposits=deposits, more=more):
            code, fields = _DEPOSITS, [list(deposits), more]
        case Delete(location=location, deletion=deletion):
            code, fields = _DELETE, [location, deletion]
        case DeleteResult(outcome=outcome, removed=removed):
            code, fields = _DELETE_RESULT, [outcome, removed]
        case _:
            raise TypeError(f"not a DHT message: {m!r}")
    body: bytes = msgpack.packb([code, *head, *fields], use_bin_type=True)
    return body


def encode_frame(envelope: Envelope) -> bytes:
    body = encode_message(envelope)
    if len(body) > MAX_FRAME:
        raise ValueError("message larger than the maximum frame")
    return len(body).to_bytes(4, "big") + body


# -- decoding ---------------------------------------------------------------


def _fail(what: str) -> RemoteProtocolError:
    return RemoteProtocolError(f"malformed DHT message: {what}")


def _bin(value: object, what: str, *, exact: int | None = None, most: int | None = None) -> bytes:
    if type(value) is not bytes:
        raise _fail(f"{what} must be binary")
    if exact is not None and len(value) != exact:
        raise _fail(f"{what} must be {exact} bytes")
    if most is not None and len(value) > most:
        raise _fail(f"{what} is longer than {most} bytes")
    return value


def _uint(value: object, what: str, bound: int) -> int:
    if type(value) is not int or not 0 <= value < bound:
        raise _fail(f"{what} must be an integer in [0, {bound})")
    return value


def _text(value: object, what: str) -> str:
    if type(value) is not str or len(value) > _MAX_TEXT:
        raise _fail(f"{what} must be text of at most {_MAX_TEXT} characters")
    return value


def _bool(value: object, what: str) -> bool:
    if type(value) is not bool:
        raise _fail(f"{what} must be true or false")
    return value


def _list(
    value: object, what: str, *, exact: int | None = None, most: int | None = None
) -> list[Any]:
    if type(value) is not list:
        raise _fail(f"{what} must be a list")
    if exact is not None and len(value) != exact:
        raise _fail(f"{what} must have {exact} elements")
    if most is not None and len(value) > most:
        raise _fail(f"{what} has more than {most} elements")
    return value


def _decode_contact(value: object) -> Contact:
    public_key, port = _list(value, "contact", exact=2)
    key = _bin(public_key, "contact key", exact=32)
    port_number = _uint(port, "contact port", 65536)
    if port_number == 0:
        raise _fail("contact port must not be 0")
    return Contact.from_public_key(key, port_number)


def _decode_contacts(value: object) -> tuple[Contact, ...]:
    return tuple(_decode_contact(c) for c in _list(value, "contacts", most=MAX_CONTACTS))


def _decode_record(value: object) -> DhtRecord:
    kind, public_key, seq, expiry, payload, signature = _list(value, "record", exact=6)
    return DhtRecord(
        kind=_uint(kind, "record kind", 256),
        public_key=_bin(public_key, "record key", exact=32),
        seq=_uint(seq, "record seq", _U64),
        expiry=_uint(expiry, "record expiry", _U64),
        payload=_bin(payload, "record payload", most=MAX_PAYLOAD),
        signature=_bin(signature, "record signature", exact=64),
    )


_ARITY = {
    _PING: 0,
    _FIND_NODE: 1,
    _FIND_VALUE: 1,
    _STORE: 2,
    _PONG: 0,
    _NODES: 1,
    _VALUE: 2,
    _STORE_RESULT: 1,
    _ERROR: 2,
    _CHALLENGE: 1,
    _PROOF: 3,
    _ANONYMOUS: 0,
    _DEPOSIT: 2,
    _DEPOSIT_RESULT: 3,
    _COLLECT: 2,
    _DEPOSITS: 2,
    _DELETE: 2,
    _DELETE_RESULT: 2,
}


def _decode_fields(code: int, f: list[Any]) -> Message:
    if code == _PING:
        return Ping()
    if code == _FIND_NODE:
        return FindNode(target=NodeId.from_bytes(_bin(f[0], "target", exact=32)))
    if code == _FIND_VALUE:
        return FindValue(key=_bin(f[0], "key", exact=32))
    if code == _STORE:
        return Store(location=_bin(f[0], "location", exact=32), record=_decode_record(f[1]))
    if code == _PONG:
        return Pong()
    if code == _NODES:
        return Nodes(contacts=_decode_contacts(f[0]))
    if code == _VALUE:
        return Value(record=_decode_record(f[0]), contacts=_decode_contacts(f[1]))
    if code == _STORE_RESULT:
        return StoreResult(outcome=_text(f[0], "outcome"))
    if code == _ERROR:
        return Error(code=_text(f[0], "error code"), reason=_text(f[1], "error reason"))
    if code == _CHALLENGE:
        return Challenge(nonce=_bin(f[0], "nonce", exact=32))
    if code == _ANONYMOUS:
        return Anonymous()
    if code in _MAILBOX:
        return _decode_mailbox(code, f)
    port = _uint(f[1], "port", 65536)
    if port == 0:
        raise _fail("port must not be 0")
    return Proof(
        public_key=_bin(f[0], "public key", exact=32),
        port=port,
        signature=_bin(f[2], "signature", exact=64),
    )


_MAILBOX = {_DEPOSIT, _DEPOSIT_RESULT, _COLLECT, _DEPOSITS, _DELETE, _DELETE_RESULT}


def _decode_mailbox(code: int, f: list[Any]) -> Message:
    if code == _DEPOSIT:
        return StoreDeposit(
            location=_bin(f[0], "location", exact=32),
            deposit=_bin(f[1], "deposit", most=MAX_DEPOSIT_BYTES),
        )
    if code == _DEPOSIT_RESULT:
        return DepositResult(
            outcome=_text(f[0], "outcome"),
            work=_uint(f[1], "work", 257),
            floor=_uint(f[2], "floor", 257),
        )
    if code == _COLLECT:
        after = _bin(f[1], "collect cursor", most=32)
        if len(after) not in (0, 32):
            raise _fail("a collect cursor is empty or a 32-byte deposit id")
        return Collect(location=_bin(f[0], "location", exact=32), after=after)
    if code == _DEPOSITS:
        deposits = tuple(
            _bin(d, "deposit", most=MAX_DEPOSIT_BYTES)
            for d in _list(f[0], "deposits", most=MAX_PAGE)
        )
        return Deposits(deposits=deposits, more=_bool(f[1], "more"))
    if code == _DELETE:
        return Delete(
            location=_bin(f[0], "location", exact=32),
            deletion=_bin(f[1], "deletion", most=MAX_DELETION_BYTES),
        )
    return DeleteResult(outcome=_text(f[0], "outcome"), removed=_uint(f[1], "removed", 1 << 16))


def decode_message(body: bytes) -> Envelope:
    """Parse one msgpack body; raises only RemoteProtocolError."""
    if len(body) > MAX_FRAME:
        raise _fail("larger than the maximum frame")
    try:
        obj = msgpack.unpackb(
            body,
            raw=False,
            use_list=True,
            strict_map_key=True,
            max_bin_len=MAX_FRAME,
            max_str_len=MAX_FRAME,
            max_array_len=256,
            max_map_len=0,
            max_ext_len=0,
        )
    except (ValueError, TypeError, OverflowError, msgpack.UnpackException) as exc:
        raise _fail("not valid msgpack") from exc
    items = _list(obj, "message", most=8)
    if len(items) < 2:
        raise _fail("too short")
    code = _uint(items[0], "message type", 256)
    if code not in _ARITY:
        raise _fail(f"unknown message type {code}")
    request_id = _uint(items[1], "request id", MAX_REQUEST_ID + 1)
    fields = items[2:]
    if len(fields) != _ARITY[code]:
        raise _fail(f"message type {code} takes {_ARITY[code]} fields")
    try:
        message = _decode_fields(code, fields)
    except ValueError as exc:  # a dataclass refusing a value the checks above let through
        raise _fail(str(exc)) from exc
    return Envelope(request_id=request_id, message=message)


class FrameDecoder:
    """Splits a byte stream into bodies; buffers at most one frame plus its header."""

    def __init__(self, max_frame: int = MAX_FRAME) -> None:
        self.max_frame = max_frame
        self._buffer = bytearray()

    def feed(self, data: bytes | bytearray) -> None:
        self._buffer += data
        if len(self._buffer) >= 4:
            length = int.from_bytes(self._buffer[:4], "big")
            if length > self.max_frame:
                raise RemoteProtocolError(
                    f"DHT frame of {length} bytes exceeds the maximum of {self.max_frame}"
                )

    def next_message(self) -> Envelope | None:
        """The next complete message, or None if more bytes are needed."""
        if len(self._buffer) < 4:
            return None
        length = int.from_bytes(self._buffer[:4], "big")
        if length > self.max_frame:
            raise RemoteProtocolError(
                f"DHT frame of {length} bytes exceeds the maximum of {self.max_frame}"
            )
        if len(self._buffer) < 4 + length:
            return None
        body = bytes(self._buffer[4 : 4 + length])
        del self._buffer[: 4 + length]
        return decode_message(body)

    @property
    def buffered(self) -> int:
        return len(self._buffer)
