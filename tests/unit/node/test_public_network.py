"""With no --testnet a node uses the public Tor network: the configuration that produces.

The two-person start of the README cannot run here (no Internet); what it
runs on can be checked: the node's tor gets Tor's own directory authorities
(no private-network lines), SOCKS and control on loopback only with
per-peer isolation, no relay, and the node joins the DHT only through
what the user gave it (saved contacts, invites, configured sources).
"""

from __future__ import annotations

from pathlib import Path

from anonsip.cli import build_parser
from anonsip.cli._run_commands import node_config
from onion._torrc import client_config

PRIVATE_ONLY = {"TestingTorNetwork", "DirAuthority", "AlternateDirAuthority", "ORPort"}


def test_run_without_testnet_means_the_public_network(tmp_path: Path) -> None:
    args = build_parser().parse_args(["--home", str(tmp_path / "h"), "run"])
    config = node_config(args)
    assert config.testnet is None
    assert config.bootstrap_dirs == ()
    assert "anonsip --home" in config.restart_command
    assert "--testnet" not in config.restart_command


def test_the_public_tor_config_has_no_private_network_lines(tmp_path: Path) -> None:
    options = client_config(tmp_path, owner_pid=4242)
    names = {name for name, _ in options}
    assert not names & PRIVATE_ONLY
    values = dict(options)
    assert values["SocksPort"].startswith("auto ")  # loopback, a port tor chooses
    assert "IsolateSOCKSAuth" in values["SocksPort"]
    assert values["ControlPort"] == "auto"
    assert values["CookieAuthentication"] == "1"
    assert values["__OwningControllerProcess"] == "4242"
