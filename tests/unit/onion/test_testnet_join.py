"""The consensus reader, the vote range, and join/share through the file system and the CLI."""

from __future__ import annotations

import contextlib
import json
import os
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from anonsip.cli import main
from anonsip.dht import BootstrapList
from onion._errors import DirectoryError, InvalidJoinCode, TestnetError
from onion.testnet import DirAuthority, JoinCode, ServiceContact, TestnetInfo
from onion.testnet._consensus import (
    consensus_request,
    parse_consensus,
    parse_dir_response,
    parse_router_statuses,
)
from onion.testnet._join import SHARE_CONTACTS, join_network, share_code
from onion.testnet._network import check_vote_range, free_ports, vote_range

SAMPLES = Path(__file__).parent / "samples"
# Captured from a private network of 3 authorities and 5 relays (`anonsip testnet up`).
CONSENSUS = (SAMPLES / "testnet-consensus.txt").read_bytes()
HTTP_ANSWER = (SAMPLES / "testnet-consensus.http").read_bytes()
NS_ENTRY = (
    "r relay1 sThOYkklp7TdJp6aULnOAq4Lsog AqkpLjgKcL3lk2BfMNda2NOzTts 2038-01-01 00:00:00"
    " 127.0.0.1 48265 0\ns Fast Guard HSDir Running Stable V2Dir Valid\nw Bandwidth=71\n"
    "p reject 1-65535\n"
)


def test_consensus_sample_lists_every_relay_with_forced_flags() -> None:
    consensus = parse_consensus(CONSENSUS)
    assert len(consensus.relays) == 8
    assert sorted(r.nickname for r in consensus.relays) == [
        "auth0",
        "auth1",
        "auth2",
        *(f"relay{i}" for i in range(5)),
    ]
    for relay in consensus.relays:
        assert {"Guard", "HSDir", "Running", "Valid"} <= relay.flags
        assert relay.address == "127.0.0.1"
        assert consensus.relay(relay.fingerprint.lower()) == relay
    assert consensus.valid_after < consensus.fresh_until < consensus.valid_until
    assert consensus.relay("0" * 40) is None


def test_dir_response_is_read_strictly() -> None:
    assert parse_dir_response(HTTP_ANSWER) == CONSENSUS
    with pytest.raises(DirectoryError, match="404"):
        parse_dir_response(b"HTTP/1.0 404 Not found\r\n\r\n")
    with pytest.raises(DirectoryError, match="not HTTP"):
        parse_dir_response(b"SSH-2.0-OpenSSH\r\n\r\n")
    with pytest.raises(DirectoryError, match="cut short"):
        parse_dir_response(HTTP_ANSWER[:40])
    with pytest.raises(DirectoryError, match="compressed"):
        parse_dir_response(b"HTTP/1.0 200 OK\r\nContent-Encoding: deflate\r\n\r\nxx")
    assert consensus_request("10.0.0.1").startswith(b"GET /tor/status-vote/current/consensus ")
    with pytest.raises(DirectoryError):
        consensus_request("10.0.0.1\r\nX: y")


def test_every_truncation_of_the_consensus_is_refused_or_whole() -> None:
    whole = parse_consensus(CONSENSUS)
    for end in range(0, len(CONSENSUS), 7):
        try:
            part = parse_consensus(CONSENSUS[:end])
        except DirectoryError:
            continue
        # Only a cut inside the last signature can still read as the whole list.
        assert part.relays == whole.relays
        assert end > CONSENSUS.index(b"directory-signature")


@given(st.binary(max_size=2000))
def test_garbage_consensus_raises_only_directory_error(data: bytes) -> None:
    with pytest.raises(DirectoryError):
        parse_consensus(data)
    with pytest.raises(DirectoryError):
        parse_consensus(b"network-status-version 3\n" + data)


@given(st.binary(max_size=600))
def test_garbage_http_raises_only_directory_error(data: bytes) -> None:
    try:
        body = parse_dir_response(data)
    except DirectoryError:
        return
    assert len(body) <= len(data)


def test_router_status_entries_as_getinfo_returns_them() -> None:
    (relay,) = parse_router_statuses(NS_ENTRY)
    assert relay.nickname == "relay1"
    assert relay.fingerprint == "B1384E624925A7B4DD269E9A50B9CE02AE0BB288"
    assert relay.or_port == 48265
    assert "HSDir" in relay.flags
    assert len(parse_router_statuses(NS_ENTRY * 3)) == 3
    for bad in ("s Running\n", "r x\n", NS_ENTRY.replace("48265", "99999")):
        with pytest.raises(DirectoryError):
            parse_router_statuses(bad)


@given(st.text(max_size=400))
def test_garbage_router_statuses_raise_only_directory_error(text: str) -> None:
    with contextlib.suppress(DirectoryError):
        parse_router_statuses(text)


@pytest.mark.parametrize(
    ("address", "block"),
    [
        ("127.0.0.1", "127.0.0.0/8"),
        ("10.77.0.1", "10.0.0.0/8"),
        ("172.20.3.4", "172.16.0.0/12"),
        ("192.168.1.5", "192.168.0.0/16"),
        ("100.70.1.1", "100.64.0.0/10"),
        ("192.0.2.10", "192.0.2.0/24"),
    ],
)
def test_authorities_flag_relays_from_the_whole_lan_block(address: str, block: str) -> None:
    # A relay joining from another address of the LAN gets Guard and HSDir too.
    assert vote_range(address) == block


def test_an_address_of_another_machine_is_refused_clearly() -> None:
    with (
        pytest.raises(TestnetError, match="this machine's own addresses"),
        free_ports("192.0.2.77", 2),
    ):
        pass


def test_vote_ranges_are_checked() -> None:
    with pytest.raises(TestnetError, match="IPv4"):
        vote_range("::1")
    assert check_vote_range("10.1.0.0/16, 192.168.7.0/24") == "10.1.0.0/16,192.168.7.0/24"
    with pytest.raises(TestnetError):
        check_vote_range("10.1.0.1/16")
    with pytest.raises(TestnetError):
        check_vote_range("10.0.0.0/8\nControlPort 1")


def _code(contacts: int = 0, port: int = 9) -> JoinCode:
    """A code whose authorities are at 127.0.0.1:``port``."""
    authorities = tuple(
        DirAuthority(
            nickname=f"auth{i}",
            address="127.0.0.1",
            or_port=port,
            dir_port=port,
            v3ident=f"{i:02X}" * 20,
            fingerprint=f"{i + 1:02X}" * 20,
        )
        for i in range(3)
    )
    found = tuple(ServiceContact(public_key=os.urandom(32), port=7000) for _ in range(contacts))
    return JoinCode(authorities=authorities, contacts=found)


def test_join_writes_what_a_client_needs_and_share_gives_it_back(tmp_path: Path) -> None:
    code = _code()
    info = join_network(code, tmp_path / "net")
    loaded = TestnetInfo.load(tmp_path / "net")
    assert loaded == info
    assert loaded.joined
    assert loaded.nodes == ()
    lines = [v for k, v in loaded.client_config() if k == "DirAuthority"]
    assert lines == [a.torrc_line() for a in code.authorities]
    assert ("GeoIPFile", str(tmp_path / "net" / "empty")) in loaded.client_config()
    assert share_code(tmp_path / "net") == code  # a joined machine can pass the network on
    assert (tmp_path / "net").stat().st_mode & 0o077 == 0


def test_share_carries_the_newest_contacts_newest_first(tmp_path: Path) -> None:
    join_network(_code(), tmp_path)
    contacts = _code(contacts=SHARE_CONTACTS + 2).contacts
    shared = share_code(tmp_path, contacts)
    assert shared.contacts == contacts[-SHARE_CONTACTS:][::-1]


def test_join_refuses_a_directory_that_runs_the_network(tmp_path: Path) -> None:
    up = TestnetInfo(directory=str(tmp_path), address="127.0.0.1", authorities=())
    up.save()
    with pytest.raises(TestnetError, match="started"):
        join_network(_code(), tmp_path)
    with pytest.raises(TestnetError, match="not running"):
        share_code(tmp_path)


@pytest.fixture
def closed_port() -> Iterator[int]:
    """A loopback port that refuses connections: bound, never listening."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        yield s.getsockname()[1]


def test_cli_join_then_share_round_trips_the_dht_contacts(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], closed_port: int
) -> None:
    code = _code(contacts=3, port=closed_port)
    directory = tmp_path / "joined"
    assert main(["testnet", "join", code.encode(), "--dir", str(directory)]) == 0
    out, err = capsys.readouterr()
    assert "anonsip run --testnet" in out
    assert "does not answer" in err  # nothing listens on the authorities' port here
    listed = BootstrapList(directory).contacts()
    assert [c.public_key for c in listed] == [c.public_key for c in code.contacts[::-1]]
    assert main(["testnet", "share", "--dir", str(directory)]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == code.encode()


def test_cli_share_draws_a_qr_code_above_the_code(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    join_network(_code(), tmp_path)
    assert main(["testnet", "share", "--dir", str(tmp_path), "--qr"]) == 0
    out, err = capsys.readouterr()
    lines = out.splitlines()
    assert JoinCode.decode(lines[-1]) == _code()
    assert "other machines cannot reach" in err  # its authorities are on 127.0.0.1
    assert sum("█" in line for line in lines) > 20


def test_cli_join_refuses_a_bad_code_clearly(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    text = _code().encode()
    assert main(["testnet", "join", text[:-3], "--dir", str(tmp_path / "x")]) == 1
    assert "cut short" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()
    assert main(["testnet", "join", text, "--dir", str(tmp_path / "x"), "--relay"]) == 2
    assert "--address" in capsys.readouterr().err
    with pytest.raises(InvalidJoinCode):
        JoinCode.decode(text.replace("NET1", "NET0"))


def test_state_without_joined_field_still_loads(tmp_path: Path) -> None:
    # A testnet.json written before `join` existed.
    info = TestnetInfo(directory=str(tmp_path), address="127.0.0.1", authorities=("a",))
    data = json.loads(info.to_json())
    del data["joined"]
    (tmp_path / "testnet.json").write_text(json.dumps(data))
    assert TestnetInfo.load(tmp_path) == info
