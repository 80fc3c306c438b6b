"""SIP value types: headers, URIs, name-addr, Via, and generated round trips."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from anonsip.sip import (
    COMPACT_FORMS,
    CSeq,
    MediaType,
    MessageParser,
    NameAddr,
    Request,
    Response,
    SipParseError,
    SipUsageError,
    TokenWithParams,
    Uri,
    Via,
    canonical_name,
    make_response,
)

TOKEN = st.text(
    alphabet="abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-.!%*_+`'~",
    min_size=1,
    max_size=12,
)
USER = st.text(
    alphabet="abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.!~*'()&=+$,;?/",
    min_size=1,
    max_size=12,
)
HOST = st.from_regex(r"[a-z][a-z0-9]{0,8}(\.[a-z][a-z0-9]{0,8}){0,2}", fullmatch=True)
VALUE_QUOTED = st.text(alphabet='abc \\"\u00e9', max_size=8).map(
    lambda s: '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'
)
PARAMS = st.lists(
    st.tuples(
        st.from_regex(r"[a-z][a-z0-9-]{0,6}", fullmatch=True),
        st.none() | st.from_regex(r"[A-Za-z0-9\-_.!~*'()\[\]/:&+$]{1,8}", fullmatch=True),
    ),
    max_size=3,
)
HPARAMS = st.lists(
    st.tuples(TOKEN, st.none() | TOKEN | VALUE_QUOTED),
    max_size=3,
)
URIS = st.builds(
    lambda user, host, port, params: Uri(user=user, host=host, port=port, params=tuple(params)),
    st.none() | USER,
    HOST,
    st.none() | st.integers(0, 65535),
    PARAMS,
)
# Header values: printable Unicode without controls, no surrounding spaces.
VALUE = st.text(
    alphabet=st.characters(blacklist_categories=("Cc", "Cs"), blacklist_characters="\x7f"),
    max_size=40,
).map(lambda s: s.strip(" \t"))
EXTRA_HEADERS = st.lists(
    st.tuples(st.from_regex(r"X-[A-Za-z0-9-]{1,10}", fullmatch=True), VALUE), max_size=5
)


def _base(method: str, tag: str) -> tuple[tuple[str, str], ...]:
    return (
        ("Via", "SIP/2.0/TCP anonsip.invalid;branch=z9hG4bKgen"),
        ("Max-Forwards", "70"),
        ("From", f"<sip:alice@anonsip.invalid>;tag={tag}"),
        ("To", "<sip:bob@anonsip.invalid>"),
        ("Call-ID", "gen-call"),
        ("CSeq", f"7 {method}"),
    )


@st.composite
def messages(draw: st.DrawFn) -> Request | Response:
    method = draw(TOKEN)
    headers = _base(method, draw(TOKEN)) + tuple(draw(EXTRA_HEADERS))
    body = draw(st.binary(max_size=200))
    if body:
        headers = (*headers, ("Content-Type", "application/octet-stream"))
    if draw(st.booleans()):
        return Request(method=method, uri=draw(URIS), headers=headers, body=body)
    return Response(
        status_code=draw(st.integers(100, 699)),
        reason=draw(VALUE),
        headers=headers,
        body=body,
    )


@settings(max_examples=200, deadline=None)
@given(messages(), st.integers(1, 50))
def test_generated_messages_round_trip(message: Request | Response, chunk: int) -> None:
    data = message.to_bytes()
    parser = MessageParser()
    got = []
    for i in range(0, len(data), chunk):
        parser.receive_data(data[i : i + chunk])
        while (m := parser.next_message()) is not None:
            got.append(m)
    assert got == [message]


@settings(max_examples=200, deadline=None)
@given(URIS)
def test_uri_round_trip(uri: Uri) -> None:
    assert Uri.parse(str(uri)) == uri


@settings(max_examples=200, deadline=None)
@given(URIS, st.none() | VALUE, HPARAMS)
def test_name_addr_round_trip(
    uri: Uri, display: str | None, params: list[tuple[str, str | None]]
) -> None:
    value = NameAddr(uri=uri, display_name=display, params=tuple(params))
    parsed = NameAddr.parse(str(value))
    assert parsed.uri == uri
    assert parsed.params == tuple(params)
    assert parsed.display_name == display


def test_compact_forms_expand() -> None:
    assert canonical_name("v") == "Via"
    assert canonical_name("I") == "Call-ID"
    assert canonical_name("o") == "Event"
    assert canonical_name("r") == "Refer-To"
    assert canonical_name("cseq") == "CSeq"
    assert canonical_name("X-Own") == "X-Own"
    assert set(COMPACT_FORMS) >= set("imelcftvkso" + "urb")


def test_uri_forms() -> None:
    uri = Uri.parse("sip:alice:secret@[2001:db8::1]:5061;transport=tcp;lr?subject=x&h=y")
    assert (uri.user, uri.password, uri.host, uri.port) == (
        "alice",
        "secret",
        "[2001:db8::1]",
        5061,
    )
    assert uri.param("TRANSPORT") == "tcp"
    assert uri.param("lr") is None
    assert uri.headers == "subject=x&h=y"
    assert uri.aor() == Uri(user="alice", host="[2001:db8::1]")
    for bad in (
        "http://x",
        "sip:",
        "sip:a@",
        "sip:a@b:99999",
        "sip:a@b;=x",
        "sip:a%zz@b",
        "<sip:a>",
    ):
        with pytest.raises(SipParseError):
            Uri.parse(bad)
    with pytest.raises(SipParseError) as info:
        Uri.parse("tel:+1-555")
    assert info.value.status_code == 416


def test_name_addr_forms() -> None:
    bare = NameAddr.parse("sip:bob@example.com;tag=abc")
    assert bare.uri.params == ()
    assert bare.tag == "abc"
    token_name = NameAddr.parse("Bob  Smith <sip:bob@example.com;lr>;tag=1")
    assert token_name.display_name == "Bob Smith"
    assert token_name.uri.param("lr") is None
    assert token_name.uri.params == (("lr", None),)
    assert str(token_name.with_tag("2")) == '"Bob Smith" <sip:bob@example.com;lr>;tag=2'
    for bad in ('"open <sip:a@b>', "<sip:a@b", "Bob <sip:a@b> junk", "B@d <sip:a@b>"):
        with pytest.raises(SipParseError):
            NameAddr.parse(bad)


def test_via_cseq_and_friends() -> None:
    via = Via.parse("SIP / 2.0 / tcp  host.example:5060 ; branch = z9hG4bKx ;received=[::1]")
    assert (via.transport, via.host, via.port, via.branch) == (
        "TCP",
        "host.example",
        5060,
        "z9hG4bKx",
    )
    assert via.params[1] == ("received", "[::1]")
    assert str(Via(host="anonsip.invalid", params=(("branch", "z9hG4bK1"),))) == (
        "SIP/2.0/TCP anonsip.invalid;branch=z9hG4bK1"
    )
    with pytest.raises(SipParseError):
        Via.parse("SIP/3.0/TCP host")
    assert CSeq.parse("0009\t INVITE") == CSeq(number=9, method="INVITE")
    for bad in ("1", "x INVITE", "2147483648 INVITE", "1 INVITE extra"):
        with pytest.raises(SipParseError):
            CSeq.parse(bad)
    event = TokenWithParams.parse("presence ; id=7")
    assert (event.value, event.param("id")) == ("presence", "7")
    ctype = MediaType.parse('Text/Plain; charset="utf-8"')
    assert (ctype.essence, ctype.param("charset")) == ("text/plain", "utf-8")


def test_message_accessors_and_edits() -> None:
    req = Request(
        method="SUBSCRIBE",
        uri=Uri(user="bob", host="anonsip.invalid"),
        headers=(
            *_base("SUBSCRIBE", "a1"),
            ("Event", "presence"),
            ("Expires", "600"),
            ("Contact", "<sip:alice@anonsip.invalid>, <sip:alt@anonsip.invalid>"),
            ("Refer-To", "<sip:carol@anonsip.invalid>"),
            ("Subscription-State", "active;expires=60"),
        ),
    )
    assert req.expires == 600
    assert req.event is not None
    assert req.event.value == "presence"
    assert [c.uri.user for c in req.contact] == ["alice", "alt"]
    assert req.refer_to is not None
    assert req.refer_to.uri.user == "carol"
    state = req.subscription_state
    assert state is not None
    assert state.param("expires") == "60"
    edited = req.with_replaced("Expires", "0").with_header("X-Note", "hi")
    assert edited.expires == 0
    assert edited.get("x-note") == "hi"
    assert edited.with_replaced("Expires", None).expires is None
    response = make_response(req, 202, to_tag="t9", headers=(("Expires", "600"),))
    assert response.to.tag == "t9"
    assert response.reason == "Accepted"
    assert response.get("Call-ID") == "gen-call"
    assert response.get("Event") is None


def test_local_mistakes_raise_usage_error() -> None:
    uri = Uri(host="h")
    with pytest.raises(SipUsageError):
        Request(method="BAD METHOD", uri=uri)
    with pytest.raises(SipUsageError):
        Request(method="X", uri=uri, headers=(("Content-Length", "3"),))
    with pytest.raises(SipUsageError):
        Request(method="X", uri=uri, headers=(("Subject", "a\r\nInjected: 1"),))
    with pytest.raises(SipUsageError):
        Request(method="X", uri=uri, headers=(("v", "compact names are spelt out"),))
    with pytest.raises(SipUsageError):
        Response(status_code=700)
    with pytest.raises(SipUsageError):
        Uri(host="bad host")
