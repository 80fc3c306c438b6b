"""Bridge lines (hostile text), the torrc for each transport, the missing-program error."""

from __future__ import annotations

import base64
import contextlib
import os
from pathlib import Path

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from onion import (
    TRANSPORTS,
    Bridge,
    ControlEndpoint,
    InvalidBridgeLine,
    InvalidControlEndpoint,
    TransportNotFound,
    bridge_client_config,
    describe_bridges,
    launch_tor,
    obfs4_bridge_line,
    parse_bridge_line,
    transport_programs,
)
from onion._bootstrap import BootstrapStatus, through
from onion._torrc import client_config, render_torrc

SAMPLES = Path(__file__).parent / "samples"
CERT = "cx0PiVAKPyZUwHd3svWef6mmDHDnBPzsRR2JjufUqSLBjSWOyrSvaF8CIjV4b/m/laIHFg"
FP = "9EB17BD392196053AB80253FCC11E0DA8C14A9ED"
OBFS4 = f"obfs4 192.0.2.10:443 {FP} cert={CERT} iat-mode=0"
SNOWFLAKE = (
    "snowflake 192.0.2.3:80 2B280B23E1107BB62ABFC40DDCC8824814F80A72"
    " fingerprint=2B280B23E1107BB62ABFC40DDCC8824814F80A72"
    " url=https://snowflake-broker.example.net/ fronts=cdn.example.com"
    " ice=stun:stun.example.org:3478,stun:stun.example.net:3478 utls-imitate=hellorandomizedalpn"
)
MEEK = f"meek_lite 192.0.2.18:80 {FP} url=https://meek.example.com/ front=www.example.com"


def test_an_obfs4_line_from_a_bridge_distributor() -> None:
    bridge = parse_bridge_line(OBFS4)
    assert bridge == Bridge(
        transport="obfs4",
        host="192.0.2.10",
        port=443,
        fingerprint=FP,
        args=(("cert", CERT), ("iat-mode", "0")),
    )
    assert bridge.line() == OBFS4
    assert bridge.arg("cert") == CERT
    assert bridge.arg("nothing") is None


def test_a_line_copied_from_a_torrc_with_its_bridge_keyword_and_lower_case_fingerprint() -> None:
    bridge = parse_bridge_line(
        f"  Bridge obfs4 192.0.2.10:443 {FP.lower()} cert={CERT} iat-mode=0 "
    )
    assert bridge.line() == OBFS4


@pytest.mark.parametrize(
    ("line", "transport", "address"),
    [
        (SNOWFLAKE, "snowflake", "192.0.2.3:80"),
        (MEEK, "meek_lite", "192.0.2.18:80"),
        (f"192.0.2.7:9001 {FP}", None, "192.0.2.7:9001"),
        ("192.0.2.7:9001", None, "192.0.2.7:9001"),
        (f"obfs4 [2001:db8::7]:443 {FP} cert={CERT} iat-mode=2", "obfs4", "[2001:db8::7]:443"),
    ],
)
def test_every_kind_of_line(line: str, transport: str | None, address: str) -> None:
    bridge = parse_bridge_line(line)
    assert bridge.transport == transport
    assert bridge.address == address
    assert parse_bridge_line(bridge.line()) == bridge


@pytest.mark.parametrize(
    ("line", "field"),
    [
        ("", "line"),
        ("Bridge", "line"),
        ("obfs4", "address"),
        ("webtunnel 192.0.2.1:443", "transport"),
        ("obfs4.5 192.0.2.1:443", "transport"),
        ("obfs4 bridge.example.com:443", "address"),
        ("obfs4 192.0.2.1", "address"),
        ("obfs4 2001:db8::1:443", "address"),
        ("192.0.2.1:0", "port"),
        ("192.0.2.1:65536", "port"),
        ("192.0.2.1:https", "port"),
        ("192.0.2.1:443 ABCDEF", "fingerprint"),
        (f"192.0.2.1:443 {FP[:-1]}Z", "fingerprint"),
        (f"192.0.2.1:443 {FP} cert=x", "argument"),
        (f"obfs4 192.0.2.1:443 {FP} iat-mode=0", "cert"),
        (f"obfs4 192.0.2.1:443 {FP} cert={CERT}", "iat-mode"),
        (f"obfs4 192.0.2.1:443 {FP} cert={CERT} iat-mode=3", "iat-mode"),
        (f"obfs4 192.0.2.1:443 {FP} cert={CERT[:-4]} iat-mode=0", "cert"),
        (f"obfs4 192.0.2.1:443 {FP} cert={CERT[:-1]}! iat-mode=0", "cert"),
        (f"obfs4 192.0.2.1:443 {FP} cert={CERT} iat-mode=0 iat-mode=1", "iat-mode"),
        (f"obfs4 192.0.2.1:443 {FP} cert= iat-mode=0", "cert"),
        (f"obfs4 192.0.2.1:443 {FP} cert={CERT} iat-mode=0 oops", "argument"),
        (f"meek_lite 192.0.2.1:80 {FP} front=a.example", "url"),
        (f"meek_lite 192.0.2.1:80 {FP} url=ftp://x", "url"),
        (f"obfs4 192.0.2.1:443 {FP} cert={CERT} iat-mode=0\nUseBridges 0", "line"),
        ("obfs4 192.0.2.1:443 \x00", "line"),
        ("obfs4 192.0.2.1:443 é", "line"),
        ("x" * 5000, "line"),
    ],
)
def test_a_bad_line_is_refused_naming_the_field(line: str, field: str) -> None:
    with pytest.raises(InvalidBridgeLine) as info:
        parse_bridge_line(line)
    assert info.value.field == field
    assert str(info.value).startswith(f"bad bridge line: {field}: ")


_certs = st.binary(min_size=52, max_size=52).map(lambda b: base64.b64encode(b).decode().rstrip("="))
_hosts = st.one_of(st.ip_addresses(v=4).map(str), st.ip_addresses(v=6).map(lambda ip: str(ip)))
_fingerprints = st.one_of(st.none(), st.text("0123456789ABCDEF", min_size=40, max_size=40))
_values = st.text(
    st.characters(min_codepoint=33, max_codepoint=126, blacklist_characters="="),
    min_size=1,
    max_size=40,
)


@st.composite
def bridges(draw: st.DrawFn) -> Bridge:
    transport = draw(st.sampled_from([None, "obfs4", "snowflake", "meek_lite"]))
    args: list[tuple[str, str]] = []
    if transport == "obfs4":
        args = [("cert", draw(_certs)), ("iat-mode", draw(st.sampled_from("012")))]
    elif transport == "meek_lite":
        args = [("url", "https://" + draw(_values))]
    if transport is not None:
        keys = draw(st.lists(st.from_regex(r"[a-z][a-z0-9_-]{0,8}", fullmatch=True), max_size=3))
        for key in keys:
            if all(k != key for k, _ in args):
                args.append((key, draw(_values)))
    return Bridge(
        transport=transport,
        host=draw(_hosts),
        port=draw(st.integers(1, 65535)),
        fingerprint=draw(_fingerprints),
        args=tuple(args),
    )


@given(bridges(), st.booleans())
def test_any_bridge_survives_its_own_line(bridge: Bridge, keyword: bool) -> None:
    line = ("Bridge " if keyword else "") + bridge.line()
    assert parse_bridge_line(line) == bridge


@given(st.text(max_size=300))
@example("obfs4 1.2.3.4:5 " + "A" * 40 + " cert=" + "=" * 70 + " iat-mode=0")
@example("[::1:443")
@example("snowflake [1.2.3.4]:5")
def test_any_text_is_a_bridge_or_refused_as_a_bad_line(text: str) -> None:
    try:
        bridge = parse_bridge_line(text)
    except InvalidBridgeLine:
        return
    assert parse_bridge_line(bridge.line()) == bridge


@given(bridges(), st.data())
def test_any_truncation_is_a_bridge_or_refused(bridge: Bridge, data: st.DataObject) -> None:
    line = bridge.line()
    cut = data.draw(st.integers(0, len(line)))
    with contextlib.suppress(InvalidBridgeLine):
        parse_bridge_line(line[:cut])


# --- the torrc for each transport -------------------------------------------------------------

PROGRAMS = {
    "obfs4": "/usr/bin/obfs4proxy",
    "meek_lite": "/usr/bin/obfs4proxy",
    "snowflake": "/usr/bin/snowflake-client",
}


def test_the_torrc_of_an_obfs4_bridge(tmp_path: Path) -> None:
    lines = bridge_client_config([parse_bridge_line(OBFS4)], PROGRAMS)
    assert lines == [
        ("UseBridges", "1"),
        ("Bridge", OBFS4),
        ("ClientTransportPlugin", "obfs4 exec /usr/bin/obfs4proxy"),
    ]
    text = render_torrc(client_config(tmp_path, owner_pid=1, network=lines))
    assert f"\nBridge {OBFS4}\n" in text
    assert "\nUseBridges 1\n" in text


def test_one_plugin_line_per_program_naming_every_transport_it_serves() -> None:
    chosen = [parse_bridge_line(line) for line in (OBFS4, MEEK, SNOWFLAKE)]
    lines = bridge_client_config(chosen, PROGRAMS)
    assert [value for key, value in lines if key == "ClientTransportPlugin"] == [
        "meek_lite,obfs4 exec /usr/bin/obfs4proxy",
        "snowflake exec /usr/bin/snowflake-client",
    ]
    assert [value for key, value in lines if key == "Bridge"] == [b.line() for b in chosen]


def test_plain_bridges_need_no_plugin_and_no_bridges_need_nothing() -> None:
    plain = parse_bridge_line(f"192.0.2.7:9001 {FP}")
    assert bridge_client_config([plain], {}) == [
        ("UseBridges", "1"),
        ("Bridge", f"192.0.2.7:9001 {FP}"),
    ]
    assert bridge_client_config([], PROGRAMS) == []


def test_a_snowflake_line_keeps_its_arguments_in_the_torrc(tmp_path: Path) -> None:
    lines = bridge_client_config([parse_bridge_line(SNOWFLAKE)], PROGRAMS)
    text = render_torrc(lines)
    assert f"Bridge {SNOWFLAKE}\n" in text
    assert "ClientTransportPlugin snowflake exec /usr/bin/snowflake-client\n" in text


# --- finding the transport programs ---------------------------------------------------------------


def test_the_programs_found_are_those_of_the_transports_in_use() -> None:
    found = {"obfs4proxy": "/usr/bin/obfs4proxy", "snowflake-client": "/usr/bin/snowflake-client"}
    chosen = [parse_bridge_line(OBFS4), parse_bridge_line(SNOWFLAKE)]
    assert transport_programs(chosen, found.get) == {
        "obfs4": "/usr/bin/obfs4proxy",
        "snowflake": "/usr/bin/snowflake-client",
    }
    assert transport_programs([parse_bridge_line("192.0.2.7:9001")], found.get) == {}


def test_lyrebird_serves_obfs4_when_obfs4proxy_is_not_there() -> None:
    found = {"lyrebird": "/opt/tor/lyrebird"}
    assert transport_programs([parse_bridge_line(OBFS4)], found.get) == {
        "obfs4": "/opt/tor/lyrebird"
    }


@pytest.mark.parametrize(
    ("line", "package", "programs"),
    [(OBFS4, "obfs4proxy", "obfs4proxy or lyrebird"), (SNOWFLAKE, "snowflake-client", None)],
)
def test_a_missing_program_names_the_package_to_install(
    line: str, package: str, programs: str | None
) -> None:
    with pytest.raises(TransportNotFound) as info:
        transport_programs([parse_bridge_line(line)], lambda name: None)
    assert info.value.package == package
    assert f"install it with: sudo apt-get install {package}" in str(info.value)
    assert (programs or "snowflake-client") in str(info.value)


async def test_launch_tor_refuses_before_starting_tor_without_the_program(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # neither tor nor obfs4proxy here
    with pytest.raises(TransportNotFound, match="apt-get install obfs4proxy"):
        async with launch_tor(tmp_path / "tor", bridges=[OBFS4]):
            raise AssertionError("tor must not start")
    assert not (tmp_path / "tor").exists()


async def test_launch_tor_refuses_a_bad_line_naming_the_field(tmp_path: Path) -> None:
    with pytest.raises(InvalidBridgeLine, match="bad bridge line: cert: "):
        async with launch_tor(tmp_path / "tor", bridges=[OBFS4.replace(CERT, "Zm9v")]):
            raise AssertionError("tor must not start")


def test_every_transport_names_its_package() -> None:
    for transport in TRANSPORTS.values():
        assert transport.programs
        assert transport.package


# --- progress and messages -----------------------------------------------------------------------


def test_the_bridge_phase_is_said_in_the_progress_until_done() -> None:
    status = BootstrapStatus(progress=1, tag="conn_pt", summary="Connecting to pluggable transport")
    shown = through(status, describe_bridges([parse_bridge_line(OBFS4)]))
    assert shown.summary == "Connecting to pluggable transport (via an obfs4 bridge)"
    assert shown.progress == 1
    assert shown.tag == "conn_pt"
    done = BootstrapStatus(progress=100, tag="done", summary="Done")
    assert through(done, "an obfs4 bridge") is done
    assert through(status, "") is status


def test_bridges_are_described_as_a_person_would() -> None:
    assert describe_bridges([parse_bridge_line(SNOWFLAKE)]) == "a snowflake bridge"
    assert describe_bridges([parse_bridge_line("192.0.2.7:9001")]) == "a plain bridge"
    two = [parse_bridge_line(OBFS4), parse_bridge_line(SNOWFLAKE)]
    assert describe_bridges(two) == "2 bridges (obfs4, snowflake)"


def test_our_bridge_line_from_obfs4proxys_file() -> None:
    text = (SAMPLES / "obfs4_bridgeline.txt").read_text()
    bridge = obfs4_bridge_line(text, host="10.77.0.3", port=40123, fingerprint=FP)
    assert bridge.line() == f"obfs4 10.77.0.3:40123 {FP} cert={CERT} iat-mode=0"
    with pytest.raises(InvalidBridgeLine, match="no 'Bridge obfs4' line"):
        obfs4_bridge_line("# nothing\n", host="10.77.0.3", port=1, fingerprint=FP)


# --- where a tor's control port is -------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("9051", ControlEndpoint(port=9051)),
        ("127.0.0.1:9151", ControlEndpoint(port=9151)),
        ("localhost:9051", ControlEndpoint(host="localhost", port=9051)),
        ("[::1]:9051", ControlEndpoint(host="::1", port=9051)),
        ("/run/tor/control", ControlEndpoint(path="/run/tor/control")),
        ("unix:/run/tor/control", ControlEndpoint(path="/run/tor/control")),
        ("~/tor/control", ControlEndpoint(path=os.path.expanduser("~/tor/control"))),
    ],
)
def test_control_endpoints(text: str, expected: ControlEndpoint) -> None:
    assert ControlEndpoint.parse(text) == expected
    assert ControlEndpoint.parse(str(expected)) == expected


@pytest.mark.parametrize(
    "text",
    [
        "",
        "tor",
        "0",
        "65536",
        "host.example:9051",
        "unix:run/tor",
        "90 51",
        "1.2.3.4:x",
        "/run/\x00",
    ],
)
def test_bad_control_endpoints_say_what_is_expected(text: str) -> None:
    with pytest.raises(InvalidControlEndpoint, match="control port as a port"):
        ControlEndpoint.parse(text)
