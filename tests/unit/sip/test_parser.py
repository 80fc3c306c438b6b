"""The SIP message parser against RFC 3261 / RFC 4475 samples, truncation, and Hypothesis."""

from __future__ import annotations

import pathlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from anonsip._errors import RemoteProtocolError
from anonsip.sip import (
    MessageParser,
    ParserLimits,
    Request,
    Response,
    SipParseError,
    make_error_response,
)

SAMPLES = pathlib.Path(__file__).parent / "samples"
VALID = sorted(p.name for p in SAMPLES.glob("valid_*.sip"))
INVALID = sorted(p.name for p in SAMPLES.glob("invalid_*.sip"))
FATAL = sorted(p.name for p in SAMPLES.glob("fatal_*.sip"))


def sample(name: str) -> bytes:
    return (SAMPLES / name).read_bytes()


def parse_one(data: bytes, limits: ParserLimits | None = None) -> Request | Response:
    parser = MessageParser(limits)
    parser.receive_data(data)
    message = parser.next_message()
    assert message is not None
    assert parser.buffered == 0
    assert parser.next_message() is None
    return message


def expected(name: str) -> tuple[int | None, bool]:
    kind, code = name.split("_")[:2]
    return (None if code == "none" else int(code)), kind == "fatal"


def test_samples_present() -> None:
    assert len(VALID) >= 8
    assert len(INVALID) + len(FATAL) >= 20


@pytest.mark.parametrize("name", VALID)
def test_valid_sample_round_trips(name: str) -> None:
    message = parse_one(sample(name))
    again = parse_one(message.to_bytes())
    assert again == message


def test_tortuous_invite() -> None:
    """RFC 4475 3.1.1.1: folding, odd spacing, compact forms, unknown headers."""
    msg = parse_one(sample("valid_wsinv.sip"))
    assert isinstance(msg, Request)
    assert msg.method == "INVITE"
    assert msg.uri.user == "vivekg"
    assert msg.uri.host == "chair-dnrc.example.com"
    assert msg.uri.params == (("unknownparam", None),)
    assert msg.to.tag == "1918181833n"
    assert msg.from_.tag == "98asjd8"
    assert msg.from_.display_name == 'J Rosenberg \\"'
    assert msg.max_forwards == 68
    assert msg.call_id == "wsinv.ndaksdj@192.0.2.1"
    assert (msg.cseq.number, msg.cseq.method) == (9, "INVITE")
    vias = msg.via
    assert [v.transport for v in vias] == ["UDP", "TCP", "UDP"]
    assert [v.branch for v in vias] == ["390skdjuw", "z9hG4bK9ikj8", "z9hG4bK30239"]
    assert msg.get("Subject") == ""
    assert msg.get("newfangledheader") == "newfangled value continued newfangled value"
    assert msg.get("UnknownHeaderWithUnusualValue") == ";;,,;;,;"
    (contact,) = msg.contact
    assert contact.display_name == 'Quoted string ""'
    assert contact.params == (("newparam", "newvalue"), ("secondparam", None), ("q", "0.33"))
    assert msg.content_type is not None
    assert msg.content_type.essence == "application/sdp"
    assert len(msg.body) == 150


def test_wide_range_of_characters() -> None:
    msg = parse_one(sample("valid_intmeth.sip"))
    assert isinstance(msg, Request)
    assert msg.method == "!interesting-Method0123456789_*+`.%indeed'~"
    assert msg.uri.password == "&it+has=1,weird!*pas$wo~d_too.(doesn't-it)"
    assert msg.to.display_name == "Watson, Thomas"
    assert msg.from_.display_name == "token1~` token2'+_ token3*%!.-"
    assert msg.from_.tag == "_token~1'+`*%!-."
    assert msg.get("extensionHeader-!.%*+_`'~") == "\ufeff\u5927\u505c\u96fb"


def test_escapes_and_compact_forms() -> None:
    msg = parse_one(sample("valid_esc01.sip"))
    assert isinstance(msg, Request)
    assert msg.uri.user == "sips%3Auser%40example.com"
    assert msg.call_id == "esc01.239409asdfakjkn23onasd0-3234"
    (contact,) = msg.contact
    assert contact.uri.params == (("%6C%72", None), ("n%61me", "v%61lue%25%34%31"))
    message = parse_one(sample("valid_compact_message.sip"))
    assert message.get("i") == message.get("Call-ID") == "asd88asd77a@anonsip.invalid"
    assert [name for name, _ in message.headers][:4] == ["Via", "Max-Forwards", "From", "To"]
    assert message.get("s") == "greeting"
    assert message.get("Supported") == "path"
    assert message.body == b"Watson, come here.\r\n"


def test_response_sample() -> None:
    msg = parse_one(sample("valid_response_180.sip"))
    assert isinstance(msg, Response)
    assert (msg.status_code, msg.reason) == (180, "Ringing")
    assert len(msg.via) == 3
    assert len(msg.get_all("Via")) == 2
    assert msg.top_via.branch == "z9hG4bKnashds8"
    empty = parse_one(sample("valid_response_empty_reason.sip"))
    assert isinstance(empty, Response)
    assert empty.reason == ""


@pytest.mark.parametrize("name", INVALID + FATAL)
def test_invalid_sample(name: str) -> None:
    code, fatal = expected(name)
    parser = MessageParser(ParserLimits(max_body_size=4096))
    parser.receive_data(sample(name))
    with pytest.raises(SipParseError) as info:
        parser.next_message()
    exc = info.value
    assert isinstance(exc, RemoteProtocolError)
    assert exc.status_code == code
    assert exc.fatal is fatal
    if code is not None:
        assert exc.request is not None
        # The answer copies what was sent, malformed or not (RFC 3261 8.2.6.2).
        response = make_error_response(exc.request, code, to_tag="t1")
        assert response.to_bytes().startswith(f"SIP/2.0 {code} ".encode())
        assert response.status_code == code
        assert response.get("CSeq") == exc.request.get("CSeq")
        assert response.top_via.branch == exc.request.top_via.branch
    if fatal:
        parser.receive_data(sample("valid_notify.sip"))
        with pytest.raises(SipParseError):
            parser.next_message()


@pytest.mark.parametrize("name", INVALID)
def test_parser_goes_on_after_a_non_fatal_error(name: str) -> None:
    parser = MessageParser()
    parser.receive_data(sample(name) + sample("valid_notify.sip"))
    with pytest.raises(SipParseError):
        parser.next_message()
    message = parser.next_message()
    assert isinstance(message, Request)
    assert message.method == "NOTIFY"


@pytest.mark.parametrize("name", VALID)
def test_every_truncation_waits(name: str) -> None:
    data = sample(name)
    whole = parse_one(data)
    for cut in range(len(data)):
        parser = MessageParser()
        parser.receive_data(data[:cut])
        assert parser.next_message() is None
        parser.receive_data(data[cut:])
        assert parser.next_message() == whole


@pytest.mark.parametrize("name", VALID)
def test_byte_at_a_time(name: str) -> None:
    data = sample(name) + sample("valid_response_180.sip")
    parser = MessageParser()
    got: list[Request | Response] = []
    for i in range(len(data)):
        parser.receive_data(data[i : i + 1])
        while (message := parser.next_message()) is not None:
            got.append(message)
    assert got == [parse_one(sample(name)), parse_one(sample("valid_response_180.sip"))]


def _headers_block(extra: str) -> bytes:
    return (
        "OPTIONS sip:bob@anonsip.invalid SIP/2.0\r\n"
        "Via: SIP/2.0/TCP anonsip.invalid;branch=z9hG4bKlim\r\n"
        "Max-Forwards: 70\r\nFrom: <sip:alice@anonsip.invalid>;tag=1\r\n"
        "To: <sip:bob@anonsip.invalid>\r\nCall-ID: lim\r\nCSeq: 1 OPTIONS\r\n" + extra
    ).encode()


def test_bounds() -> None:
    limits = ParserLimits(
        max_message_size=2048, max_header_count=10, max_line_length=200, max_body_size=100
    )
    cases = {
        "X-A: 1\r\n" * 10 + "Content-Length: 0\r\n\r\n": 513,
        "X-Long: " + "a" * 300 + "\r\nContent-Length: 0\r\n\r\n": 513,
        "X-Fold: a\r\n" + " b\r\n" * 100 + "Content-Length: 0\r\n\r\n": 513,
        "Content-Type: text/plain\r\nContent-Length: 101\r\n\r\n": 413,
        "X-A: 1\r\n" * 5 + "Content-Type: text/plain\r\nContent-Length: 100\r\n\r\n": 413,
    }
    small = ParserLimits(
        max_message_size=400, max_header_count=20, max_line_length=200, max_body_size=100
    )
    for extra, code in cases.items():
        parser = MessageParser(limits if code == 513 else small)
        parser.receive_data(_headers_block(extra))
        with pytest.raises(SipParseError) as info:
            parser.next_message()
        assert info.value.status_code == code, extra[:30]
        assert info.value.fatal


def test_unbounded_head_is_refused_before_it_ends() -> None:
    parser = MessageParser(ParserLimits(max_message_size=1000, max_line_length=100))
    parser.receive_data(b"A" * 101)
    with pytest.raises(SipParseError):
        parser.next_message()
    parser = MessageParser(ParserLimits(max_message_size=1000, max_line_length=100))
    parser.receive_data(_headers_block("X-A: 1\r\n" * 200))
    with pytest.raises(SipParseError) as info:
        parser.next_message()
    assert info.value.status_code == 513


def test_leading_crlf_keepalives_are_skipped() -> None:
    parser = MessageParser()
    parser.receive_data(b"\r\n" * 50)
    assert parser.next_message() is None
    assert parser.buffered == 0


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=600))
def test_random_bytes_raise_only_sip_parse_error(data: bytes) -> None:
    parser = MessageParser(ParserLimits(max_message_size=500, max_line_length=200))
    parser.receive_data(data)
    try:
        while parser.next_message() is not None:
            pass
    except SipParseError:
        pass


@settings(max_examples=300, deadline=None)
@given(
    st.sampled_from(VALID),
    st.lists(st.tuples(st.integers(0, 2000), st.integers(0, 255)), min_size=1, max_size=6),
)
def test_mutated_samples_raise_only_sip_parse_error(
    name: str, edits: list[tuple[int, int]]
) -> None:
    data = bytearray(sample(name))
    for position, value in edits:
        data[position % len(data)] = value
    parser = MessageParser()
    parser.receive_data(bytes(data))
    try:
        while (message := parser.next_message()) is not None:
            # Whatever parses must also survive its own typed accessors.
            assert parse_one(message.to_bytes()) == message
    except SipParseError:
        pass
