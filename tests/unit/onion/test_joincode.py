"""The join code: round trip, every truncation and every one-character change refused."""

from __future__ import annotations

import base64
import struct
import zlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from onion._errors import InvalidJoinCode, TestnetError
from onion.testnet import DirAuthority, JoinCode, ServiceContact
from onion.testnet._joincode import MAX_AUTHORITIES, MAX_CONTACTS

ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"
OTHER_CHARS = "abcz0189-_=+/ .é\t"

AUTHORITIES = tuple(
    DirAuthority(
        nickname=f"auth{i}",
        address="10.77.0.1",
        or_port=40000 + 2 * i,
        dir_port=40001 + 2 * i,
        v3ident=f"{i:02X}" * 20,
        fingerprint=f"{i + 16:02X}" * 20,
    )
    for i in range(3)
)
CONTACTS = (ServiceContact(public_key=bytes(range(32)), port=7044),)
CODE = JoinCode(authorities=AUTHORITIES, contacts=CONTACTS)
# Pins the wire format: a change here breaks every code already handed out.
VECTOR = (
    "ANONSIP-NET1-ADDAGBLBOV2GQMAKJUAADHCATRAQAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
    "AABAEAQCAIBAEAQCAIBAEAQCAIBAEAQCAIAKYLVORUDCCSNAAAZYQU4IMAQCAIBAEAQCAI"
    "BAEAQCAIBAEAQCAIBAEIRCEIRCEIRCEIRCEIRCEIRCEIRCEIRCECWC5LUNAZAUTIAAGOEJ"
    "HCFAIBAEAQCAIBAEAQCAIBAEAQCAIBAEAQCCIJBEEQSCIJBEEQSCIJBEEQSCIJBEEQSAEA"
    "ACAQDAQCQMBYIBEFAWDANBYHRAEISCMKBKFQXDAMRUGY4DUPB6G4EPZVUBWI"
)

addresses = st.tuples(*[st.integers(1, 223)] + [st.integers(0, 255)] * 3).map(
    lambda t: ".".join(map(str, t))
)
hex40 = st.binary(min_size=20, max_size=20).map(lambda b: b.hex().upper())
authorities = st.builds(
    DirAuthority,
    nickname=st.from_regex(r"[A-Za-z0-9]{1,19}", fullmatch=True),
    address=addresses,
    or_port=st.integers(1, 65535),
    dir_port=st.integers(1, 65535),
    v3ident=hex40,
    fingerprint=hex40,
)
contacts = st.builds(
    ServiceContact, public_key=st.binary(min_size=32, max_size=32), port=st.integers(1, 65535)
)
codes = st.builds(
    JoinCode,
    authorities=st.lists(authorities, min_size=1, max_size=MAX_AUTHORITIES).map(tuple),
    contacts=st.lists(contacts, max_size=MAX_CONTACTS).map(tuple),
)


def test_round_trip_and_known_vector() -> None:
    text = CODE.encode()
    assert text == VECTOR
    assert JoinCode.decode(text) == CODE
    assert " " not in text
    assert "\n" not in text
    assert text.startswith("ANONSIP-NET1-")


@given(codes)
def test_round_trip(code: JoinCode) -> None:
    text = code.encode()
    assert JoinCode.decode(text) == code
    assert JoinCode.decode(text.lower()) == code
    assert JoinCode.decode(f"  {text}\n") == code  # as pasted from a terminal


def _rejected(text: str) -> str:
    with pytest.raises(InvalidJoinCode) as info:
        JoinCode.decode(text)
    return str(info.value)


def test_every_truncation_is_refused_as_cut_short() -> None:
    text = CODE.encode()
    for end in range(len(text)):
        message = _rejected(text[:end])
        if end > len("ANONSIP-NET1-") + 4:
            assert "cut short" in message, (end, message)


def test_every_single_character_change_is_refused() -> None:
    text = CODE.encode()
    for position, original in enumerate(text):
        for char in ALPHABET + OTHER_CHARS + original.lower():
            if char == original:
                continue
            changed = text[:position] + char + text[position + 1 :]
            _rejected(changed)


def test_messages_say_what_is_wrong() -> None:
    text = CODE.encode()
    assert "empty" in _rejected("   ")
    assert "not an anonsip join code" in _rejected("asip1qqqq")
    assert "mixes upper and lower case" in _rejected(text[:-1] + text[-1].lower())
    assert "version 2" in _rejected(text.replace("NET1", "NET2"))
    bad = text[:20] + "1" + text[21:]
    assert "character 21" in _rejected(bad)
    assert "longer than it says" in _rejected(text + "A")
    flipped = "B" if text[30] != "B" else "C"
    assert "checksum" in _rejected(text[:30] + flipped + text[31:])


@settings(max_examples=200)
@given(codes, st.data())
def test_any_truncation_or_change_is_refused(code: JoinCode, data: st.DataObject) -> None:
    text = code.encode()
    end = data.draw(st.integers(0, len(text) - 1))
    _rejected(text[:end])
    position = data.draw(st.integers(0, len(text) - 1))
    char = data.draw(st.sampled_from(ALPHABET + OTHER_CHARS).filter(lambda c: c != text[position]))
    _rejected(text[:position] + char + text[position + 1 :])


@given(st.text(max_size=600))
def test_arbitrary_text_raises_only_invalid_join_code(text: str) -> None:
    with pytest.raises(InvalidJoinCode):
        JoinCode.decode(text)


@given(st.binary(max_size=400))
def test_arbitrary_payload_with_a_valid_checksum_raises_only_invalid_join_code(
    fields: bytes,
) -> None:
    # A code with a good checksum may still come from a hostile or buggy program.
    body = struct.pack(">H", len(fields)) + fields
    payload = body + zlib.crc32(body).to_bytes(4, "little")
    text = "ANONSIP-NET1-" + base64.b32encode(payload).decode().rstrip("=")
    try:
        code = JoinCode.decode(text)
    except InvalidJoinCode as exc:
        message = str(exc)
    else:
        message = "not valid" if code.encode() == text else "decoded to another code"
    assert "not valid" in message


def test_too_many_contacts_or_authorities_are_refused() -> None:
    with pytest.raises(TestnetError):
        JoinCode(authorities=(), contacts=())
    with pytest.raises(TestnetError):
        JoinCode(authorities=AUTHORITIES, contacts=CONTACTS * (MAX_CONTACTS + 1))


def test_dir_authority_lines_round_trip() -> None:
    for auth in AUTHORITIES:
        assert DirAuthority.from_torrc_line(auth.torrc_line()) == auth
    spaced = (
        "moria1 orport=9201 no-v2 v3ident=D586D18309DED4CD6D57C18FDB97EFA96D330566"
        " 128.31.0.39:9231 1A25 C6358DB91342AA51720A5038B72742732498"
    )
    parsed = DirAuthority.from_torrc_line(spaced)
    assert parsed.fingerprint == "1A25C6358DB91342AA51720A5038B72742732498"
    assert parsed.dir_port == 9231


@pytest.mark.parametrize(
    "line",
    [
        "",
        "auth0 no-v2 v3ident=" + "A" * 40 + " 10.0.0.1:5 " + "B" * 40,  # no orport
        "auth0 orport=1 no-v2 10.0.0.1:5 " + "B" * 40,  # no v3ident
        "auth0 orport=x v3ident=" + "A" * 40 + " 10.0.0.1:5 " + "B" * 40,
        "auth0 orport=1 v3ident=" + "A" * 40 + " 10.0.0.1:5 " + "B" * 39,
        "auth0 orport=1 v3ident=" + "A" * 40 + " [::1]:5 " + "B" * 40,
        "auth-0 orport=1 v3ident=" + "A" * 40 + " 10.0.0.1:5 " + "B" * 40,
        "auth0 orport=1 v3ident=" + "A" * 40 + " 10.0.0.1:0 " + "B" * 40,
    ],
)
def test_bad_dir_authority_lines_are_refused(line: str) -> None:
    with pytest.raises(TestnetError):
        DirAuthority.from_torrc_line(line)
