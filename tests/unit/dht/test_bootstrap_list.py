"""The shared DHT bootstrap file: strict bounded reading, newest-N atomic appends."""

from __future__ import annotations

import json
import logging
import os
import threading
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from anonsip._errors import LocalError
from anonsip.dht import (
    BOOTSTRAP_FILE,
    BootstrapList,
    Contact,
    decode_bootstrap_list,
    encode_bootstrap_list,
)
from anonsip.dht._bootstrap_list import MAX_BOOTSTRAP_BYTES, MAX_BOOTSTRAP_CONTACTS
from tests.unit.dht.helpers import contact


def _entry(c: Contact) -> dict[str, Any]:
    return {"onion_address": c.onion_address, "port": c.port, "public_key": c.public_key.hex()}


def _document(entries: list[Any]) -> bytes:
    return json.dumps({"version": 1, "contacts": entries}).encode()


def test_round_trip_keeps_order() -> None:
    contacts = [contact(n, port=7000 + n) for n in range(5)]
    assert decode_bootstrap_list(encode_bootstrap_list(contacts)) == contacts


def test_missing_file_is_an_empty_list(tmp_path: Path) -> None:
    assert BootstrapList(tmp_path / "nowhere").contacts() == []


def test_add_self_appends_newest_last_and_survives_a_reopen(tmp_path: Path) -> None:
    first = BootstrapList(tmp_path)
    first.add_self(contact(1))
    first.add_self(contact(2))
    assert BootstrapList(tmp_path).contacts() == [contact(1), contact(2)]
    assert (tmp_path / BOOTSTRAP_FILE).exists()


def test_add_self_again_moves_the_contact_to_newest_and_takes_its_new_port(tmp_path: Path) -> None:
    bootstrap = BootstrapList(tmp_path)
    for n in (1, 2, 3):
        bootstrap.add_self(contact(n))
    bootstrap.add_self(contact(1, port=9999))
    assert bootstrap.contacts() == [contact(2), contact(3), contact(1, port=9999)]


def test_keeps_only_the_newest_n(tmp_path: Path) -> None:
    bootstrap = BootstrapList(tmp_path, keep=3)
    for n in range(10):
        bootstrap.add_self(contact(n))
    assert bootstrap.contacts() == [contact(7), contact(8), contact(9)]
    on_disk = json.loads((tmp_path / BOOTSTRAP_FILE).read_bytes())
    assert len(on_disk["contacts"]) == 3


def test_a_reader_with_a_smaller_keep_sees_the_newest(tmp_path: Path) -> None:
    writer = BootstrapList(tmp_path, keep=10)
    for n in range(6):
        writer.add_self(contact(n))
    assert BootstrapList(tmp_path, keep=2).contacts() == [contact(4), contact(5)]


@pytest.mark.parametrize("keep", [0, -1, MAX_BOOTSTRAP_CONTACTS + 1])
def test_keep_is_bounded(tmp_path: Path, keep: int) -> None:
    with pytest.raises(LocalError):
        BootstrapList(tmp_path, keep=keep)


def test_no_temporary_files_are_left(tmp_path: Path) -> None:
    bootstrap = BootstrapList(tmp_path)
    for n in range(4):
        bootstrap.add_self(contact(n))
    leftovers = [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")]
    assert leftovers == []


def test_concurrent_writers_lose_no_entry(tmp_path: Path) -> None:
    # Separate BootstrapList objects open separate descriptors, so flock really contends.
    errors: list[BaseException] = []
    start = threading.Barrier(8)

    def add(n: int) -> None:
        try:
            start.wait()
            for round_ in range(5):
                BootstrapList(tmp_path, keep=64).add_self(contact(n * 10 + round_))
        except BaseException as exc:  # reported below; a thread cannot raise into the test
            errors.append(exc)

    threads = [threading.Thread(target=add, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    got = {c.public_key for c in BootstrapList(tmp_path, keep=64).contacts()}
    assert got == {contact(n * 10 + r).public_key for n in range(8) for r in range(5)}


def test_add_self_over_a_garbage_file_replaces_it(tmp_path: Path) -> None:
    (tmp_path / BOOTSTRAP_FILE).write_bytes(b"\x00garbage{")
    bootstrap = BootstrapList(tmp_path)
    bootstrap.add_self(contact(1))
    assert bootstrap.contacts() == [contact(1)]


GOOD = _entry(contact(1))
BAD_ENTRIES: list[tuple[str, Any]] = [
    ("not an object", "abc"),
    ("a list", [1, 2]),
    ("missing key", {k: v for k, v in GOOD.items() if k != "port"}),
    ("extra key", {**GOOD, "note": "hi"}),
    ("port is a bool", {**GOOD, "port": True}),
    ("port is a string", {**GOOD, "port": "9000"}),
    ("port is a float", {**GOOD, "port": 9000.0}),
    ("port 0", {**GOOD, "port": 0}),
    ("port too large", {**GOOD, "port": 65536}),
    ("short key", {**GOOD, "public_key": GOOD["public_key"][:-2]}),
    ("upper-case key", {**GOOD, "public_key": GOOD["public_key"].upper()}),
    ("non-hex key", {**GOOD, "public_key": "zz" + GOOD["public_key"][2:]}),
    ("key is bytes-like list", {**GOOD, "public_key": list(range(32))}),
    ("address of another key", {**GOOD, "onion_address": contact(2).onion_address}),
    ("address with .onion", {**GOOD, "onion_address": GOOD["onion_address"] + ".onion"}),
    ("address not a string", {**GOOD, "onion_address": 5}),
]


@pytest.mark.parametrize(("why", "entry"), BAD_ENTRIES, ids=[why for why, _ in BAD_ENTRIES])
def test_a_bad_entry_is_skipped_with_a_log_line(
    why: str, entry: Any, caplog: pytest.LogCaptureFixture
) -> None:
    good2 = _entry(contact(2))
    with caplog.at_level(logging.WARNING, logger="anonsip.dht._bootstrap_list"):
        got = decode_bootstrap_list(_document([GOOD, entry, good2]))
    assert got == [contact(1), contact(2)]
    assert any("ignored 1 malformed entry" in r.getMessage() for r in caplog.records)


BAD_FILES: list[tuple[str, bytes]] = [
    ("empty", b""),
    ("not JSON", b"{contacts: ["),
    ("not UTF-8", b'{"version": 1, "contacts": []}\xff'),
    ("a list", b"[]"),
    ("wrong version", json.dumps({"version": 2, "contacts": [GOOD]}).encode()),
    ("no version", json.dumps({"contacts": [GOOD]}).encode()),
    ("contacts not a list", json.dumps({"version": 1, "contacts": GOOD}).encode()),
    ("deeply nested", b"[" * 100_000 + b"]" * 100_000),
]


@pytest.mark.parametrize(("why", "raw"), BAD_FILES, ids=[why for why, _ in BAD_FILES])
def test_a_bad_file_gives_no_contacts_and_a_log_line(
    why: str, raw: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="anonsip.dht._bootstrap_list"):
        assert decode_bootstrap_list(raw) == []
    assert caplog.records


def test_an_oversized_file_is_not_read_past_the_bound(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    raw = _document([GOOD]) + b" " * MAX_BOOTSTRAP_BYTES
    (tmp_path / BOOTSTRAP_FILE).write_bytes(raw)
    with caplog.at_level(logging.WARNING):
        assert BootstrapList(tmp_path).contacts() == []
    assert any("larger than" in r.getMessage() for r in caplog.records)


def test_too_many_entries_reads_only_the_newest(caplog: pytest.LogCaptureFixture) -> None:
    entries = [_entry(contact(n)) for n in range(MAX_BOOTSTRAP_CONTACTS + 5)]
    with caplog.at_level(logging.WARNING):
        got = decode_bootstrap_list(_document(entries))
    assert len(got) == MAX_BOOTSTRAP_CONTACTS
    assert got[0] == contact(5)
    assert got[-1] == contact(MAX_BOOTSTRAP_CONTACTS + 4)


def test_duplicate_keys_keep_the_later_entry() -> None:
    raw = _document([_entry(contact(1, port=1)), _entry(contact(2)), _entry(contact(1, port=2))])
    assert decode_bootstrap_list(raw) == [contact(2), contact(1, port=2)]


def test_encoding_refuses_more_than_the_bound() -> None:
    with pytest.raises(LocalError):
        encode_bootstrap_list([contact(1)] * (MAX_BOOTSTRAP_CONTACTS + 1))


def test_every_truncation_decodes_to_nothing() -> None:
    contacts = [contact(n) for n in range(3)]
    raw = encode_bootstrap_list(contacts)
    body = raw.rstrip()  # the document ends at its closing brace; a newline follows
    for cut in range(len(body)):
        got = decode_bootstrap_list(body[:cut])
        assert got == []  # a cut JSON document is never half-trusted
    assert decode_bootstrap_list(raw) == contacts


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=80),
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=15), inner),
    max_leaves=30,
)


@given(st.binary(max_size=2000))
def test_arbitrary_bytes_never_raise(raw: bytes) -> None:
    assert all(isinstance(c, Contact) for c in decode_bootstrap_list(raw))


@given(st.lists(_json | st.just(GOOD), max_size=12))
def test_arbitrary_entries_yield_only_the_valid_ones(entries: list[Any]) -> None:
    got = decode_bootstrap_list(_document(entries))
    assert got == ([contact(1)] if GOOD in entries else [])


def test_the_file_is_readable_json_with_hex_keys(tmp_path: Path) -> None:
    BootstrapList(tmp_path).add_self(contact(3, port=7044))
    on_disk = json.loads((tmp_path / BOOTSTRAP_FILE).read_text())
    assert on_disk == {"version": 1, "contacts": [_entry(contact(3, port=7044))]}
    assert os.stat(tmp_path / BOOTSTRAP_FILE).st_mode & 0o777 == 0o644
