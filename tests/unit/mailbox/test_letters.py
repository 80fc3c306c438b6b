"""Sealed letters and deposits: round trips, every truncation and bit flip refused, Hypothesis."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from anonsip._errors import LocalError
from anonsip.identity import Identity
from anonsip.mailbox import (
    DEPOSIT_POW_BITS,
    MAX_TTL,
    Deletion,
    Deposit,
    DepositError,
    Letter,
    LetterError,
    LetterKind,
    mailbox_key,
    mailbox_keypair,
    open_letter,
    seal_letter,
    sealed_sizes,
)


def _who(seed: int) -> Identity:
    return Identity.generate(f"p{seed}", rng=random.Random(seed).randbytes)


ALICE, BOB, MALLORY = _who(1), _who(2), _who(3)
NOW = 1_900_000_000
HELLO = Letter(kind=LetterKind.MESSAGE, message_id="m-1", time_ms=NOW * 1000, text="hello bob")


def test_a_letter_opens_only_for_its_recipient_and_names_its_author() -> None:
    sealed = seal_letter(ALICE, BOB.public_key, HELLO)
    assert len(sealed) in sealed_sizes()
    opened = open_letter(BOB, sealed)
    assert (opened.kind, opened.message_id, opened.text, opened.sender) == (
        LetterKind.MESSAGE,
        "m-1",
        "hello bob",
        ALICE.public_key,
    )
    with pytest.raises(LetterError):
        open_letter(MALLORY, sealed)  # not sealed to her


def test_sizes_are_buckets_whatever_the_text() -> None:
    sizes = {len(seal_letter(ALICE, BOB.public_key, HELLO)) for _ in range(3)}
    sizes |= {
        len(seal_letter(ALICE, BOB.public_key, Letter(
            kind=LetterKind.MESSAGE, message_id="m", time_ms=0, text="x" * n
        )))
        for n in (0, 10, 300)
    }  # fmt: skip
    assert sizes == {sealed_sizes()[0]}  # short texts all look alike


def test_every_truncation_and_bit_flip_is_refused() -> None:
    sealed = seal_letter(ALICE, BOB.public_key, HELLO)
    for cut in range(0, len(sealed), 7):
        with pytest.raises(LetterError):
            open_letter(BOB, sealed[:cut])
    for position in range(0, len(sealed), 5):
        for bit in (0, 7):
            flipped = bytearray(sealed)
            flipped[position] ^= 1 << bit
            with pytest.raises(LetterError):
                open_letter(BOB, bytes(flipped))


def test_a_letter_re_sealed_to_someone_else_does_not_verify() -> None:
    """Bob cannot pass Alice's letter to him off as one she wrote to Mallory."""
    inner_body = HELLO.body()
    signature = ALICE.sign(b"anonsip-mailbox-letter-v1\x00" + BOB.public_key + inner_body)
    import nacl.bindings

    from anonsip.identity._identity import ed25519_to_x25519_public

    forged = nacl.bindings.crypto_box_seal(
        ALICE.public_key + signature + inner_body, ed25519_to_x25519_public(MALLORY.public_key)
    )
    with pytest.raises(LetterError, match="signature"):
        open_letter(MALLORY, forged)


@settings(max_examples=150)
@given(st.binary(max_size=3000))
def test_any_bytes_are_a_letter_or_a_letter_error(data: bytes) -> None:
    try:
        open_letter(BOB, data)
    except LetterError:
        return


@settings(max_examples=60)
@given(
    kind=st.sampled_from(list(LetterKind)),
    message_id=st.text(min_size=1, max_size=16).filter(lambda t: 0 < len(t.encode()) <= 64),
    text=st.text(max_size=600),
    reply_box=st.sampled_from([b"", bytes(range(32))]),
)
def test_any_letter_round_trips(
    kind: LetterKind, message_id: str, text: str, reply_box: bytes
) -> None:
    letter = Letter(kind=kind, message_id=message_id, time_ms=123, text=text, reply_box=reply_box)
    opened = open_letter(BOB, seal_letter(ALICE, BOB.public_key, letter))
    assert (opened.kind, opened.message_id, opened.text) == (kind, message_id, text)
    assert opened.reply_box == reply_box


def test_a_reply_box_is_32_bytes_or_none() -> None:
    with pytest.raises(LocalError, match="32 bytes"):
        Letter(kind=LetterKind.MESSAGE, message_id="m", time_ms=1, reply_box=b"short").body()
    with pytest.raises(LocalError, match="32 bytes"):
        mailbox_key(BOB.public_key, 100, secret=b"short")


def test_mailbox_keys_are_per_period_and_unlinkable_to_registrations() -> None:
    from anonsip.identity import blind_public_key

    key = mailbox_key(BOB.public_key, 100)
    assert key == mailbox_keypair(BOB, 100).public_key  # anyone computes what the owner holds
    assert key != mailbox_key(BOB.public_key, 101)
    assert key != blind_public_key(BOB.public_key, 100)  # not the registration's key
    # The contacts' mailbox: only with the owner's secret; unlinkable to the open one.
    secret = bytes(range(32))
    contacts = mailbox_key(BOB.public_key, 100, secret=secret)
    assert contacts == mailbox_keypair(BOB, 100, secret=secret).public_key
    assert contacts not in (key, mailbox_key(BOB.public_key, 100, secret=bytes(32)))
    assert contacts != mailbox_key(BOB.public_key, 101, secret=secret)


def _deposit(expiry: int = NOW + 3600, difficulty: int = 8) -> Deposit:
    return Deposit.make(
        mailbox=mailbox_key(BOB.public_key, 100),
        expiry=expiry,
        sealed=seal_letter(ALICE, BOB.public_key, HELLO),
        difficulty=difficulty,
        rng=random.Random(9).randbytes,
    )


def test_a_deposit_round_trips_and_a_storing_node_checks_its_work_and_lifetime() -> None:
    deposit = _deposit()
    assert Deposit.decode(deposit.encode()) == deposit
    deposit.check(NOW, difficulty=8)
    with pytest.raises(DepositError, match="proof of work"):
        deposit.check(NOW, difficulty=DEPOSIT_POW_BITS + 10)
    with pytest.raises(DepositError, match="expired"):
        deposit.check(NOW + 7200, difficulty=8)
    with pytest.raises(DepositError, match="week"):
        _deposit(expiry=NOW + MAX_TTL + 3600).check(NOW, difficulty=8)
    encoded = deposit.encode()
    for cut in range(0, len(encoded), 11):
        with pytest.raises(DepositError):
            Deposit.decode(encoded[:cut])


def test_only_the_owner_deletes_and_only_recently() -> None:
    owner = mailbox_keypair(BOB, 100)
    ids = (_deposit().deposit_id,)
    deletion = Deletion.make(owner, NOW, ids)
    assert Deletion.decode(deletion.encode()) == deletion
    deletion.check(NOW)
    with pytest.raises(DepositError, match="far from now"):
        deletion.check(NOW + 7200)
    forged = Deletion.make(mailbox_keypair(MALLORY, 100), NOW, ids)
    stolen = Deletion(
        mailbox=owner.public_key, time=NOW, deposit_ids=ids, signature=forged.signature
    )
    with pytest.raises(DepositError, match="owner"):
        stolen.check(NOW)
    raw = deletion.encode()
    for cut in range(len(raw)):
        with pytest.raises(DepositError):
            Deletion.decode(raw[:cut])
