"""Strict PIDF (RFC 3863) for presence: round trips and hostile documents."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from anonsip.sip import (
    MAX_PIDF_SIZE,
    Availability,
    Presence,
    SipParseError,
    SipUsageError,
    Uri,
    encode_pidf,
    parse_pidf,
)

ENTITY = Uri(user="alice", host="anonsip.invalid")
NOTES = st.none() | st.text(
    alphabet=st.characters(blacklist_categories=("Cc", "Cs"), blacklist_characters="\r"),
    max_size=256,
)


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(Availability), NOTES)
def test_round_trip(availability: Availability, note: str | None) -> None:
    presence = Presence(entity=ENTITY, availability=availability, note=note)
    assert parse_pidf(encode_pidf(presence)) == presence


def test_basic_follows_availability() -> None:
    assert b"<basic>closed</basic>" in encode_pidf(
        Presence(entity=ENTITY, availability=Availability.OFFLINE)
    )
    assert b"<basic>open</basic>" in encode_pidf(
        Presence(entity=ENTITY, availability=Availability.AWAY)
    )


def test_plain_rfc3863_document_without_extension() -> None:
    doc = (
        b'<?xml version="1.0" encoding="UTF-8"?>\n'
        b'<presence xmlns="urn:ietf:params:xml:ns:pidf" entity="sip:bob@anonsip.invalid">'
        b'<tuple id="x"><status><basic>closed</basic></status>'
        b"<contact>sip:bob@anonsip.invalid</contact></tuple>"
        b'<note xml:lang="en">gone</note></presence>'
    )
    parsed = parse_pidf(doc)
    assert parsed.availability is Availability.OFFLINE
    assert parsed.note == "gone"


LAUGHS = (
    b'<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
    b'<!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">]>'
    b'<presence xmlns="urn:ietf:params:xml:ns:pidf" entity="sip:a@b">&lol2;</presence>'
)
EXTERNAL = (
    b'<?xml version="1.0"?><!DOCTYPE p [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
    b'<presence xmlns="urn:ietf:params:xml:ns:pidf" entity="sip:a@b"><note>&x;</note></presence>'
)
GOOD = encode_pidf(Presence(entity=ENTITY, availability=Availability.BUSY))


@pytest.mark.parametrize(
    "doc",
    [
        LAUGHS,
        EXTERNAL,
        GOOD.replace(b"<tuple", b"<!-- c --><tuple"),
        GOOD.replace(b"<tuple", b"<?pi x?><tuple"),
        GOOD.replace(b"<basic>open", b"<basic><![CDATA[open]]>"),
        GOOD + b" " * MAX_PIDF_SIZE,
        GOOD.replace(b"urn:ietf:params:xml:ns:pidf", b"urn:other"),
        GOOD.replace(b"<basic>open</basic>", b"<basic>ajar</basic>"),
        GOOD.replace(b"<basic>open</basic>", b"<basic>closed</basic>"),
        GOOD.replace(b">busy<", b">dancing<"),
        GOOD.replace(b'entity="sip:alice@anonsip.invalid"', b'entity="http://x"'),
        GOOD.replace(b"</presence>", b"<note>" + b"n" * 300 + b"</note></presence>"),
        GOOD.replace(b"<status>", b"").replace(b"</status>", b""),
        GOOD[:-5],
        b"",
    ],
)
def test_hostile_or_broken_documents_are_refused(doc: bytes) -> None:
    with pytest.raises(SipParseError):
        parse_pidf(doc)


def test_local_note_limits() -> None:
    with pytest.raises(SipUsageError):
        encode_pidf(Presence(entity=ENTITY, availability=Availability.AWAY, note="x" * 257))
    with pytest.raises(SipUsageError):
        encode_pidf(Presence(entity=ENTITY, availability=Availability.AWAY, note="bell\x07"))


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=400))
def test_random_bytes_raise_only_sip_parse_error(data: bytes) -> None:
    with contextlib.suppress(SipParseError):
        parse_pidf(data)


@settings(max_examples=300, deadline=None)
@given(st.integers(0, len(GOOD) - 1), st.integers(0, 255))
def test_mutated_documents_raise_only_sip_parse_error(position: int, value: int) -> None:
    data = bytearray(GOOD)
    data[position] = value
    with contextlib.suppress(SipParseError):
        parse_pidf(bytes(data))
