"""``anonsip run --tor-control``: a node on a tor that the test starts by itself, as a system tor.

The tor is a plain ``tor -f torrc`` on the session's private network, with
a ControlPort and a ControlSocket, cookie or password authentication, owned
by nobody (it outlives any controller). A node attached by port registers,
says what it does not control (the bridges kept in its home are not used),
starts no tor of its own, and is reached by another node; one attached by
socket with a password registers too, and a wrong password is one clear
error. When the attached tor stops, the node waits for it and carries on
once it is back.
"""

from __future__ import annotations

import socket
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import trio

from anonsip.control import TrioControlClient
from anonsip.nodeproc import NodeProcess, tcp_listeners, unix_connections, wait_for_line
from onion._process import find_tor, tor_environment
from onion._torrc import render_torrc
from onion.testnet import TestnetInfo
from tests.integration.nodes import NodeFleet, children

pytestmark = pytest.mark.integration

READY = 150.0
CERT = "cx0PiVAKPyZUwHd3svWef6mmDHDnBPzsRR2JjufUqSLBjSWOyrSvaF8CIjV4b/m/laIHFg"
BRIDGE = f"obfs4 192.0.2.10:443 9EB17BD392196053AB80253FCC11E0DA8C14A9ED cert={CERT} iat-mode=0"


@dataclass
class SystemTor:
    """A tor the test runs as a system would: not owned by any controller."""

    directory: Path
    control_port: int
    control_socket: Path
    process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.process = subprocess.Popen(
            [find_tor(), "-f", str(self.directory / "torrc")],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            env=tor_environment(),
            start_new_session=True,
        )
        wait_for_line(self.process, b"Opened Control listener connection (ready)", timeout=30)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=15)
        if self.process is not None and self.process.stdout is not None:
            self.process.stdout.close()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _hashed(password: str) -> str:
    done = subprocess.run(
        [find_tor(), "--quiet", "--hash-password", password],
        capture_output=True,
        text=True,
        check=True,
        env=tor_environment(),
    )
    return done.stdout.strip().splitlines()[-1]


def system_tor(testnet: TestnetInfo, directory: Path, *, password: str | None = None) -> SystemTor:
    directory.mkdir(mode=0o700, parents=True)
    tor = SystemTor(
        directory=directory, control_port=_free_port(), control_socket=directory / "control"
    )
    auth = (
        [("HashedControlPassword", _hashed(password))]
        if password
        else [("CookieAuthentication", "1")]
    )
    config = [
        ("DataDirectory", str(directory / "data")),
        ("ControlPort", f"127.0.0.1:{tor.control_port}"),
        ("ControlSocket", str(tor.control_socket)),
        ("SocksPort", "auto"),
        ("Log", "notice stdout"),
        *auth,
        *testnet.client_config(),
    ]
    (directory / "torrc").write_text(render_torrc(config))
    tor.start()
    return tor


@pytest.fixture
def peer(testnet: TestnetInfo, tmp_path: Path) -> Iterator[NodeProcess]:
    with NodeFleet(tmp_path / "fleet", Path(testnet.directory)) as fleet:
        node = fleet.add("peer")
        trio.run(lambda: fleet.start_all("peer", registered=True))
        yield node


def _anonsip(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "anonsip.cli", "--home", str(home), *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


async def _request_arrives(sender: NodeProcess, receiver: NodeProcess) -> dict[str, Any]:
    async with receiver.client() as client:
        await client.subscribe()
        await sender.call("send", peer=receiver.address, text="hello over your own tor")
        with trio.fail_after(READY):
            async for event in client.events():
                if event.event == "request":
                    return dict(event.data)
    raise AssertionError("the node closed its control socket")


def test_a_node_attached_by_port_registers_and_is_reached_starting_no_tor(
    testnet: TestnetInfo, tmp_path: Path, peer: NodeProcess
) -> None:
    tor = system_tor(testnet, tmp_path / "system-tor")
    try:
        node = NodeProcess(
            "attached",
            tmp_path / "attached",
            testnet=Path(testnet.directory),
            pow_bits=8,
            options=["--tor-control", str(tor.control_port)],
        )
        assert _anonsip(node.home, "bridges", "add", BRIDGE).returncode == 0
        node.start()
        try:
            trio.run(lambda: node.wait_ready(READY, registered=True))
            said = node.output.read_text()
            assert f"attaching to the tor at 127.0.0.1:{tor.control_port}: anonsip does not" in said
            assert "its DataDirectory" in said
            assert "the 1 bridges kept in" in said
            assert "are not used" in said
            assert "--testnet gives only the DHT contacts here" in said
            # No tor of its own: no child process, no DataDirectory in its home.
            assert children(node.pid) == []
            assert not (node.home / "tor").exists()
            # Its onion services' local ends are private Unix sockets (tor runs as our user).
            assert tcp_listeners(node.pid) == []
            request = trio.run(_request_arrives, peer, node)
            assert request["address"] == peer.address
            assert unix_connections(node.pid, "/tmp/onion-") >= 1
        finally:
            node.reap()
    finally:
        tor.stop()


def test_a_node_attached_by_socket_with_a_password(testnet: TestnetInfo, tmp_path: Path) -> None:
    tor = system_tor(testnet, tmp_path / "system-tor", password="hunter2 but longer")
    try:
        good = tmp_path / "good-password"
        good.write_text("hunter2 but longer\n")
        node = NodeProcess(
            "bysocket",
            tmp_path / "bysocket",
            testnet=Path(testnet.directory),
            pow_bits=8,
            options=[
                "--tor-control",
                str(tor.control_socket),
                "--tor-control-password-file",
                str(good),
            ],
        )
        node.start()
        try:
            status = trio.run(lambda: node.wait_ready(READY, registered=True))
            assert status["tor"]["progress"] == 100
            assert f"attaching to the tor at {tor.control_socket}" in node.output.read_text()
        finally:
            node.reap()
        bad = tmp_path / "bad-password"
        bad.write_text("hunter3\n")
        done = _anonsip(
            node.home,
            "run",
            "--testnet",
            testnet.directory,
            "--tor-control",
            str(tor.control_socket),
            "--tor-control-password-file",
            str(bad),
        )
        assert done.returncode == 1
        assert (
            done.stderr.strip()
            .splitlines()[-1]
            .startswith("anonsip: error: tor refused authentication")
        )
    finally:
        tor.stop()


def test_nothing_at_the_control_port_is_one_clear_error(tmp_path: Path) -> None:
    home = tmp_path / "home"
    assert _anonsip(home, "init", "--nick", "x", "--no-passphrase", "--fast-kdf").returncode == 0
    port = _free_port()
    done = _anonsip(home, "run", "--tor-control", str(port))
    assert done.returncode == 1
    assert done.stderr.strip().splitlines() == [
        f"anonsip: error: cannot reach tor's control port at 127.0.0.1:{port} (Connection"
        " refused): is that tor running, and is this its ControlPort or ControlSocket?"
    ]


async def _wait_phase(node: NodeProcess, wanted: str, *, registered: bool = False) -> None:
    async with TrioControlClient.connect(node.control_path) as client:
        await client.subscribe()
        status = await client.call("status")
        with trio.fail_after(READY):
            while not (
                status.get("phase") == wanted
                and (not registered or status["registration"]["state"] == "registered")
            ):
                async for event in client.events():
                    if event.event == "status":
                        status = dict(event.data)
                        break
                else:
                    raise AssertionError(f"{node.name} closed its control socket")


def test_the_attached_tor_stops_and_comes_back_and_the_node_carries_on(
    testnet: TestnetInfo, tmp_path: Path
) -> None:
    tor = system_tor(testnet, tmp_path / "system-tor")
    try:
        node = NodeProcess(
            "patient",
            tmp_path / "patient",
            testnet=Path(testnet.directory),
            pow_bits=8,
            options=["--tor-control", str(tor.control_port)],
        )
        node.start()
        try:
            trio.run(lambda: node.wait_ready(READY, registered=True))

            async def through_a_restart() -> None:
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(_wait_phase, node, "restarting tor")
                    await trio.to_thread.run_sync(tor.stop)
                await trio.to_thread.run_sync(tor.start)
                await _wait_phase(node, "running", registered=True)

            trio.run(through_a_restart)
            assert node.running
        finally:
            node.reap()
    finally:
        tor.stop()
