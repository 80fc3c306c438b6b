"""Invites: round trip, every truncation and every single-character change refused, Hypothesis."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from anonsip.identity import Identity
from anonsip.identity._bech32m import CHARSET
from anonsip.invite import MAX_CONTACTS, DhtSeed, InvalidInvite, Invite, looks_like_invite


def _key(seed: int) -> bytes:
    return Identity.generate("k", rng=random.Random(seed).randbytes).public_key


INVITE = Invite(
    address=Identity.generate("alice", rng=random.Random(1).randbytes).address,
    seeds=(DhtSeed(key=_key(2), port=7044), DhtSeed(key=_key(3), port=7045)),
    expires=1_900_000_000,
)


def test_round_trip_and_shape() -> None:
    text = INVITE.text
    assert text.startswith("asipinv1")
    assert " " not in text
    assert text == text.lower()
    assert Invite.parse(text) == INVITE
    assert Invite.parse("  " + text.upper() + "\n") == INVITE  # one case, spaces around
    assert looks_like_invite(text)
    assert not looks_like_invite(INVITE.address.text)


def test_every_truncation_is_refused_clearly() -> None:
    text = INVITE.text
    for cut in range(len(text)):
        with pytest.raises(InvalidInvite) as caught:
            Invite.parse(text[:cut])
        assert str(caught.value)  # a reason a person can read


def test_every_single_character_change_is_refused() -> None:
    text = INVITE.text
    start = text.index("1") + 1
    for position in range(start, len(text)):
        for char in CHARSET:
            if char == text[position]:
                continue
            changed = text[:position] + char + text[position + 1 :]
            with pytest.raises(InvalidInvite, match=r"checksum|length|cut short"):
                Invite.parse(changed)


def test_what_is_wrong_is_said() -> None:
    with pytest.raises(InvalidInvite, match="not an invite"):
        Invite.parse(INVITE.address.text)  # an address is valid bech32m, but no invite
    with pytest.raises(InvalidInvite, match="space"):
        Invite.parse(INVITE.text[:20] + " " + INVITE.text[20:])
    with pytest.raises(InvalidInvite, match="at most"):
        Invite(address=INVITE.address, seeds=(INVITE.seeds[0],) * (MAX_CONTACTS + 1), expires=0)
    assert INVITE.expired(1_900_000_000)
    assert not INVITE.expired(1_899_999_999)


@settings(max_examples=200)
@given(
    seeds=st.lists(
        st.tuples(st.integers(min_value=1, max_value=10**6), st.integers(1, 65535)),
        max_size=MAX_CONTACTS,
    ),
    expires=st.integers(min_value=0, max_value=2**32 - 1),
)
def test_any_invite_round_trips(seeds: list[tuple[int, int]], expires: int) -> None:
    invite = Invite(
        address=INVITE.address,
        seeds=tuple(DhtSeed(key=_key(s), port=p) for s, p in seeds),
        expires=expires,
    )
    assert Invite.parse(invite.text) == invite


@settings(max_examples=300)
@given(st.text(max_size=400))
def test_any_text_is_an_invite_or_a_clear_refusal(text: str) -> None:
    try:
        Invite.parse(text)
    except InvalidInvite as exc:
        reason = str(exc)
        assert reason.startswith("this ")
