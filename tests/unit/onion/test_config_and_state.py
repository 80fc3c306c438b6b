"""torrc generation, bootstrap status parsing, tor's log tail and the testnet state file."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from onion import TorNotFound, TorTooOld, launch_tor
from onion._bootstrap import BootstrapStatus, parse_bootstrap
from onion._errors import ControlProtocolError, OnionLocalError, TestnetError
from onion._process import MIN_TOR_VERSION, check_tor_version, parse_tor_version
from onion._tor import MAX_LOG_LINE, TorLog
from onion._torrc import (
    authority_config,
    client_config,
    private_network_config,
    relay_config,
    render_torrc,
)
from onion.testnet import NodeInfo, TestnetInfo

AUTH_LINE = "auth0 orport=5000 no-v2 v3ident=AB 127.0.0.1:5001 CD"


def test_client_config_owns_tor_and_lets_the_os_pick_ports(tmp_path: Path) -> None:
    config = client_config(
        tmp_path, owner_pid=1234, network=[("TestingTorNetwork", "1")], extra=[("Foo", "bar")]
    )
    text = render_torrc(config)
    assert "ControlPort auto\n" in text
    assert "SocksPort auto ExtendedErrors IsolateSOCKSAuth\n" in text
    assert "__OwningControllerProcess 1234\n" in text
    assert "CookieAuthentication 1\n" in text
    assert f"DataDirectory {tmp_path}\n" in text
    assert text.endswith("TestingTorNetwork 1\nFoo bar\n")


def test_render_refuses_line_injection() -> None:
    with pytest.raises(OnionLocalError):
        render_torrc([("Nickname", "x\nControlPort 9051")])
    with pytest.raises(OnionLocalError):
        render_torrc([("Bad Key", "1")])


def _common(tmp_path: Path, address: str = "127.0.0.1") -> list[tuple[str, str]]:
    return private_network_config(
        tmp_path,
        nickname="relay0",
        address=address,
        authorities=[AUTH_LINE],
        vote_range="127.0.0.0/8",
        voting_interval=10,
        empty_file=tmp_path / "empty",
    )


def test_testnet_nodes_force_guard_and_hsdir_and_vote_fast(tmp_path: Path) -> None:
    options = dict(_common(tmp_path))
    assert options["TestingTorNetwork"] == "1"
    assert options["TestingDirAuthVoteGuard"] == "127.0.0.0/8"
    assert options["TestingDirAuthVoteHSDir"] == "127.0.0.0/8"
    assert options["AssumeReachable"] == "1"
    assert int(options["TestingV3AuthInitialVotingInterval"]) <= 10
    assert options["DirAuthority"] == AUTH_LINE
    assert options["ControlPort"] == "auto"  # loopback only, even on a LAN


def test_authority_and_relay_configs(tmp_path: Path) -> None:
    common = _common(tmp_path, "192.168.1.5")
    auth = dict(authority_config(common, or_port=5000, dir_port=5001, address="192.168.1.5"))
    relay = dict(relay_config(common, or_port=5002, dir_port=5003, address="192.168.1.5"))
    assert auth["V3AuthoritativeDirectory"] == "1"
    assert auth["ORPort"] == "192.168.1.5:5000"
    assert "V3AuthoritativeDirectory" not in relay
    assert relay["DirPort"] == "192.168.1.5:5003"


def test_bootstrap_status_parsing() -> None:
    done = parse_bootstrap('NOTICE BOOTSTRAP PROGRESS=100 TAG=done SUMMARY="Done"')
    assert done == BootstrapStatus(progress=100, tag="done", summary="Done")
    assert done.done
    warn = parse_bootstrap(
        'WARN BOOTSTRAP PROGRESS=30 TAG=loading_status SUMMARY="Loading" WARNING="404" REASON=MISC'
    )
    assert warn is not None
    assert warn.warning == "404"
    assert not warn.done
    assert "30%" in str(warn)
    assert parse_bootstrap("NOTICE CIRCUIT_ESTABLISHED") is None
    for bad in (
        "NOTICE BOOTSTRAP TAG=x",
        "NOTICE BOOTSTRAP PROGRESS=x",
        "NOTICE BOOTSTRAP PROGRESS=101",
    ):
        with pytest.raises(ControlProtocolError):
            parse_bootstrap(bad)


@given(st.lists(st.binary(max_size=600), max_size=30))
def test_tor_log_is_bounded(chunks: list[bytes]) -> None:
    log = TorLog(max_lines=5)
    for chunk in chunks:
        for line in log.feed(chunk):
            assert len(line) <= MAX_LOG_LINE
    assert len(log.tail(100)) <= 5


def test_tor_log_splits_lines_across_chunks() -> None:
    log = TorLog()
    assert log.feed(b"first li") == []
    assert log.feed(b"ne\r\nsecond\n") == ["first line", "second"]
    assert log.tail(1) == ["second"]


def test_version_parsing_and_minimum() -> None:
    assert parse_tor_version("Tor version 0.4.9.11.\n") == (0, 4, 9)
    assert parse_tor_version("Tor version 0.3.5.8.") < MIN_TOR_VERSION
    with pytest.raises(TorNotFound):
        parse_tor_version("bash: tor: command not found")


async def test_old_tor_is_refused(tmp_path: Path) -> None:
    fake = tmp_path / "tor"
    fake.write_text("#!/bin/sh\necho 'Tor version 0.3.5.8.'\n")
    fake.chmod(0o755)
    with pytest.raises(TorTooOld, match="apt-get install tor"):
        await check_tor_version(str(fake))


async def test_missing_tor_gives_the_install_hint(tmp_path: Path) -> None:
    with pytest.raises(TorNotFound, match="apt-get install tor"):
        async with launch_tor(tmp_path / "tor", tor_binary="no-such-tor-binary-here"):
            pass
    assert not (tmp_path / "tor").exists()


def test_testnet_state_round_trip(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.write_text("")
    node = NodeInfo(
        nickname="auth0",
        role="authority",
        data_dir=str(tmp_path / "auth0"),
        pid=42,
        or_port=5000,
        dir_port=5001,
        fingerprint="CD",
        control_port=5002,
    )
    info = TestnetInfo(
        directory=str(tmp_path), address="127.0.0.1", authorities=(AUTH_LINE,), nodes=(node,)
    )
    info.save()
    loaded = TestnetInfo.load(tmp_path)
    assert loaded == info
    assert loaded.pids == [42]
    assert ("DirAuthority", AUTH_LINE) in loaded.client_config()
    assert ("GeoIPFile", str(empty)) in loaded.client_config()


def test_testnet_state_errors_are_clear(tmp_path: Path) -> None:
    with pytest.raises(TestnetError, match="testnet up"):
        TestnetInfo.load(tmp_path)
    (tmp_path / "testnet.json").write_text('{"directory": 1}')
    with pytest.raises(TestnetError, match="not a valid"):
        TestnetInfo.load(tmp_path)
