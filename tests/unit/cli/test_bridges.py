"""Bridges kept in a node's home; ``anonsip bridges`` and ``run --bridge`` as a user meets them."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from anonsip._errors import LocalError
from anonsip.cli import main
from anonsip.node import Home
from onion import InvalidBridgeLine

CERT = "cx0PiVAKPyZUwHd3svWef6mmDHDnBPzsRR2JjufUqSLBjSWOyrSvaF8CIjV4b/m/laIHFg"
FP = "9EB17BD392196053AB80253FCC11E0DA8C14A9ED"
OBFS4 = f"obfs4 192.0.2.10:443 {FP} cert={CERT} iat-mode=0"
PLAIN = "192.0.2.7:9001"


def test_a_home_keeps_its_bridges_in_order_privately(tmp_path: Path) -> None:
    home = Home(tmp_path / "home")
    assert home.bridges() == []
    kept = home.add_bridges([OBFS4, PLAIN])
    assert [b.line() for b in kept] == [OBFS4, PLAIN]
    assert [b.line() for b in Home(home.path).bridges()] == [OBFS4, PLAIN]
    assert stat.S_IMODE(home.bridges_path.stat().st_mode) == 0o600
    assert stat.S_IMODE(home.path.stat().st_mode) == 0o700


def test_the_same_bridge_is_kept_once_and_a_new_cert_replaces_the_old(tmp_path: Path) -> None:
    home = Home(tmp_path / "home")
    home.add_bridges([OBFS4, PLAIN])
    home.add_bridges([OBFS4])
    assert [b.line() for b in home.bridges()] == [PLAIN, OBFS4]
    other_cert = OBFS4.replace(CERT, "A" * 70)
    home.add_bridges([other_cert])
    assert [b.line() for b in home.bridges()] == [PLAIN, other_cert]


def test_a_bad_line_keeps_nothing(tmp_path: Path) -> None:
    home = Home(tmp_path / "home")
    with pytest.raises(InvalidBridgeLine, match="iat-mode"):
        home.add_bridges([PLAIN, OBFS4.replace("iat-mode=0", "iat-mode=7")])
    assert home.bridges() == []


@pytest.mark.parametrize("which", ["1", "192.0.2.10:443", FP.lower(), OBFS4])
def test_a_bridge_is_removed_by_number_address_fingerprint_or_line(
    tmp_path: Path, which: str
) -> None:
    home = Home(tmp_path / "home")
    home.add_bridges([OBFS4, PLAIN])
    assert [b.line() for b in home.remove_bridges(which)] == [OBFS4]
    assert [b.line() for b in home.bridges()] == [PLAIN]


def test_removing_what_is_not_kept_says_how_to_name_one(tmp_path: Path) -> None:
    home = Home(tmp_path / "home")
    home.add_bridges([PLAIN])
    with pytest.raises(LocalError, match="give its number, address or fingerprint"):
        home.remove_bridges("3")
    assert len(home.remove_bridges("all")) == 1
    assert home.bridges() == []


def test_a_damaged_file_names_its_line(tmp_path: Path) -> None:
    home = Home(tmp_path / "home")
    home.add_bridges([PLAIN])
    home.bridges_path.write_text(f"# mine\n{PLAIN}\n\nobfs4 nonsense\n")
    with pytest.raises(LocalError, match=r"bridges, line 4: bad bridge line: address"):
        home.bridges()


def test_a_huge_file_is_refused(tmp_path: Path) -> None:
    home = Home(tmp_path / "home")
    home.add_bridges([PLAIN])
    home.bridges_path.write_text(PLAIN + "\n" + "#" * 300_000)
    with pytest.raises(LocalError, match="too large"):
        home.bridges()


def test_the_bridges_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    home = ["--home", str(tmp_path / "home")]
    assert main([*home, "bridges", "list"]) == 0
    assert "no bridges" in capsys.readouterr().out
    assert main([*home, "bridges", "add", OBFS4, PLAIN]) == 0
    assert main([*home, "bridges", "list"]) == 0
    assert capsys.readouterr().out.splitlines()[-2:] == [f" 1  {OBFS4}", f" 2  {PLAIN}"]
    assert main([*home, "bridges", "add", "obfs4 192.0.2.1:1"]) == 1
    assert "bad bridge line: cert: missing" in capsys.readouterr().err
    assert main([*home, "bridges", "remove", "2"]) == 0
    assert main([*home, "bridges", "remove", "--all"]) == 0
    assert capsys.readouterr().out.splitlines() == [
        "removed 1 bridge(s); 1 left, from the node's next start",
        "removed 1 bridge(s); 0 left, from the node's next start",
    ]
    assert Home(tmp_path / "home").bridges() == []


def _anonsip(home: Path, *args: str, path: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "anonsip.cli", "--home", str(home), *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**os.environ, "PATH": path},
    )


def test_run_with_an_obfs4_bridge_and_no_obfs4proxy_says_which_package(tmp_path: Path) -> None:
    home = tmp_path / "home"
    assert (
        _anonsip(home, "init", "--nick", "a", "--no-passphrase", "--fast-kdf", path="").returncode
        == 0
    )
    done = _anonsip(home, "run", "--bridge", OBFS4, path=str(tmp_path))
    assert done.returncode == 1
    assert done.stderr.strip().splitlines() == [
        "anonsip: error: the obfs4 bridges need obfs4proxy or lyrebird, which is not installed;"
        " install it with: sudo apt-get install obfs4proxy"
    ]
    # The line was good: it is kept for the next start, once the program is there.
    assert [b.line() for b in Home(home).bridges()] == [OBFS4]


def test_run_with_a_bad_bridge_line_names_the_field(tmp_path: Path) -> None:
    home = tmp_path / "home"
    assert (
        _anonsip(home, "init", "--nick", "a", "--no-passphrase", "--fast-kdf", path="").returncode
        == 0
    )
    done = _anonsip(home, "run", "--bridge", "obfs4 192.0.2.10:443 XYZ", path=os.defpath)
    assert done.returncode == 1
    assert done.stderr.strip() == (
        "anonsip: error: bad bridge line: fingerprint: 'XYZ' is not 40 hexadecimal digits"
    )


def test_run_refuses_a_mistyped_tor_control(tmp_path: Path) -> None:
    home = tmp_path / "home"
    assert (
        _anonsip(home, "init", "--nick", "a", "--no-passphrase", "--fast-kdf", path="").returncode
        == 0
    )
    done = _anonsip(home, "run", "--tor-control", "tor.example:9051", path=os.defpath)
    assert done.returncode == 1
    assert "is not an IP address; give tor's control port as a port" in done.stderr
