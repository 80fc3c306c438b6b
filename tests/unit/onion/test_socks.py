"""SOCKS5 client core: captured tor exchanges, byte-at-a-time, truncation, fuzz."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from onion._errors import (
    OnionAuthRequired,
    OnionBadAddress,
    OnionLocalError,
    OnionNotFound,
    OnionRemoteError,
    OnionTimeout,
    OnionUnreachable,
    SocksProtocolError,
)
from onion._socks import SocksClient, SocksState

HOST = "25njqamcweflpvkl73j4szahhihoc4xt3ktcgjnpaingr5yhkenl5sid.onion"
METHOD_NONE = b"\x05\x00"
METHOD_USERPASS = b"\x05\x02"
AUTH_OK = b"\x01\x00"
# What tor 0.4.9 answers to a successful CONNECT: IPv4 0.0.0.0:0.
CONNECT_OK = b"\x05\x00\x00\x01\x00\x00\x00\x00\x00\x00"


def run(client: SocksClient, server_bytes: list[bytes], chunk: int | None = None) -> list[bytes]:
    """Feed the scripted server replies; return what the client sent."""
    sent = [client.start()]
    for reply in server_bytes:
        step = chunk or len(reply)
        for i in range(0, len(reply), step):
            out = client.receive_data(reply[i : i + step])
            if out:
                sent.append(out)
    return sent


def test_no_auth_connect() -> None:
    client = SocksClient(HOST, 5060)
    sent = run(client, [METHOD_NONE, CONNECT_OK])
    assert sent[0] == b"\x05\x01\x00"
    assert sent[1] == b"\x05\x01\x00\x03\x3e" + HOST.encode() + b"\x13\xc4"
    assert client.state is SocksState.CONNECTED
    assert client.bytes_needed == 0


def test_username_password_for_isolation() -> None:
    client = SocksClient(HOST, 80, username="peer-a", password="peer-a")
    sent = run(client, [METHOD_USERPASS, AUTH_OK, CONNECT_OK])
    assert sent[0] == b"\x05\x01\x02"
    assert sent[1] == b"\x01\x06peer-a\x06peer-a"
    assert sent[2].startswith(b"\x05\x01\x00\x03")
    assert client.state is SocksState.CONNECTED


@pytest.mark.parametrize("auth", [False, True])
def test_byte_at_a_time_equals_whole(auth: bool) -> None:
    kw = {"username": "u", "password": "p"} if auth else {}
    replies = [METHOD_USERPASS, AUTH_OK, CONNECT_OK] if auth else [METHOD_NONE, CONNECT_OK]
    assert run(SocksClient(HOST, 80, **kw), replies, 1) == run(SocksClient(HOST, 80, **kw), replies)


def test_bytes_after_the_reply_belong_to_the_service() -> None:
    client = SocksClient(HOST, 80)
    run(client, [METHOD_NONE, CONNECT_OK + b"SIP/2.0"])
    assert client.state is SocksState.CONNECTED
    assert client.trailing_data == b"SIP/2.0"


def test_domain_and_ipv6_bound_addresses() -> None:
    for tail in (b"\x03\x04abcd\x00\x50", b"\x04" + b"\x00" * 16 + b"\x00\x50"):
        client = SocksClient(HOST, 80)
        run(client, [METHOD_NONE, b"\x05\x00\x00" + tail])
        assert client.state is SocksState.CONNECTED


@pytest.mark.parametrize(
    ("code", "kind"),
    [
        (0xF0, OnionNotFound),
        (0xF1, OnionUnreachable),
        (0xF2, OnionUnreachable),
        (0xF3, OnionUnreachable),
        (0xF4, OnionAuthRequired),
        (0xF5, OnionAuthRequired),
        (0xF6, OnionBadAddress),
        (0xF7, OnionTimeout),
        (0x06, OnionTimeout),
        (0x01, OnionUnreachable),
        (0x05, OnionUnreachable),
        (0x42, OnionUnreachable),
    ],
)
def test_reply_codes_map_to_clear_errors(code: int, kind: type[OnionUnreachable]) -> None:
    client = SocksClient(HOST, 80)
    with pytest.raises(kind) as info:
        run(client, [METHOD_NONE, bytes([5, code, 0, 1, 0])])
    assert type(info.value) is kind
    assert info.value.code == code
    assert HOST in str(info.value)
    assert client.state is SocksState.FAILED


@pytest.mark.parametrize(
    "replies",
    [
        [b"\x04\x00"],  # SOCKS4 server
        [b"\x05\xff"],  # no acceptable method
        [b"\x05\x02"],  # asked for auth we did not offer
        [METHOD_NONE, b"\x05\x00\x01\x01\x00"],  # reserved byte set
        [METHOD_NONE, b"\x05\x00\x00\x09\x00"],  # unknown address type
        [METHOD_NONE + b"\x05", CONNECT_OK],  # answered before asked
    ],
)
def test_garbage_is_a_remote_protocol_error(replies: list[bytes]) -> None:
    with pytest.raises(SocksProtocolError):
        run(SocksClient(HOST, 80), replies)


def test_refused_credentials_and_eof_are_remote_errors() -> None:
    with pytest.raises(SocksProtocolError):
        run(SocksClient(HOST, 80, username="u", password="p"), [METHOD_USERPASS, b"\x01\x01"])
    client = SocksClient(HOST, 80)
    client.start()
    with pytest.raises(SocksProtocolError):
        client.receive_data(b"")


@pytest.mark.parametrize("cut", range(1, len(CONNECT_OK)))
def test_truncated_reply_keeps_waiting(cut: int) -> None:
    client = SocksClient(HOST, 80)
    run(client, [METHOD_NONE, CONNECT_OK[:cut]])
    assert client.state is not SocksState.CONNECTED
    assert client.bytes_needed > 0
    client.receive_data(CONNECT_OK[cut:])
    assert client.state is SocksState.CONNECTED


def test_local_mistakes_are_local_errors() -> None:
    with pytest.raises(OnionLocalError):
        SocksClient("x" * 300, 80)
    with pytest.raises(OnionLocalError):
        SocksClient(HOST, 0)
    with pytest.raises(OnionLocalError):
        SocksClient(HOST, 80, username="only-user")


@given(st.binary(max_size=64), st.booleans())
def test_fuzz_raises_only_remote_errors(data: bytes, auth: bool) -> None:
    kw = {"username": "u", "password": "p"} if auth else {}
    client = SocksClient(HOST, 80, **kw)
    client.start()
    try:
        while data and client.bytes_needed:
            n = client.bytes_needed
            client.receive_data(data[:n])
            data = data[n:]
    except OnionRemoteError:
        assert client.state is SocksState.FAILED
