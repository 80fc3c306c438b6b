"""Onion services and streams over a real private Tor network."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import nacl.signing
import pytest
import trio

from anonsip.nodeproc import tcp_listeners, unix_connections
from onion import (
    OnionKey,
    OnionNotFound,
    OnionTimeout,
    OnionUnreachable,
    Tor,
    TorDied,
    attach_tor,
    launch_tor,
    onion_address_from_public_key,
)
from onion._process import tor_environment
from onion.testnet import TestnetInfo
from onion.testnet._consensus import parse_router_statuses
from onion.testnet._network import read_consensus
from tests.integration.conftest import client_tor

pytestmark = pytest.mark.integration

GREETING = b"hello from the service\n"


async def _receive_exactly(stream: trio.abc.ReceiveStream, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = await stream.receive_some(n - len(data))
        if not chunk:
            break
        data += chunk
    return data


async def greet_then_echo(stream: trio.SocketStream) -> None:
    await stream.send_all(GREETING)
    async for chunk in stream:
        await stream.send_all(chunk)


async def test_publish_connect_and_echo_both_ways(tor: Tor, testnet: TestnetInfo) -> None:
    async with (
        tor.publish_service(greet_then_echo, virtual_port=5060) as service,
        client_tor(testnet, "other") as other,
    ):
        assert len(service.address) == 56
        assert service.address == service.key.address
        await service.wait_published(30)
        assert service.uploads >= 1
        stream = await other.open_stream(service.hostname, 5060, isolation="peer-a", timeout=30)
        async with stream:
            assert await _receive_exactly(stream, len(GREETING)) == GREETING
            for size in (1, 64, 5000, 70_000):
                payload = os.urandom(size)
                await stream.send_all(payload)
                assert await _receive_exactly(stream, size) == payload


async def test_the_local_end_is_a_private_unix_socket_and_nothing_listens_on_tcp(
    tor: Tor, testnet: TestnetInfo
) -> None:
    async with (
        tor.publish_service(greet_then_echo, virtual_port=5061) as service,
        client_tor(testnet, "other") as other,
    ):
        path = service.socket_path
        assert path is not None
        assert service.local_port is None
        assert service.target == f"unix:{path}"
        assert stat.S_ISSOCK(path.stat().st_mode)
        assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700  # no other user may connect
        assert tcp_listeners(os.getpid()) == []
        await service.wait_published(30)
        stream = await other.open_stream(service.hostname, 5061, isolation="unix", timeout=30)
        async with stream:
            assert await _receive_exactly(stream, len(GREETING)) == GREETING
            # tor delivered the stream over that socket: we hold the accepted end.
            assert unix_connections(os.getpid(), str(path)) == 1
            await stream.send_all(b"ping")
            assert await _receive_exactly(stream, 4) == b"ping"
        assert tcp_listeners(os.getpid()) == []
    assert not path.parent.exists()  # the private directory goes with the service


async def test_restart_with_persisted_key_keeps_the_address(tor: Tor) -> None:
    async with tor.publish_service(greet_then_echo) as first:
        blob = first.key.blob
        address = first.address
    key = OnionKey.from_blob(blob)
    async with tor.publish_service(greet_then_echo, key=key) as second:
        assert second.address == address
        await second.wait_published(30)
        stream = await tor.open_stream(address, 80, timeout=30)
        async with stream:
            assert await _receive_exactly(stream, len(GREETING)) == GREETING


async def test_key_from_our_own_ed25519_seed_gives_the_derived_address(tor: Tor) -> None:
    seed = os.urandom(32)
    expected = onion_address_from_public_key(bytes(nacl.signing.SigningKey(seed).verify_key))
    async with tor.publish_service(greet_then_echo, key=OnionKey.from_seed(seed)) as service:
        # tor computes the ServiceID itself from the expanded key we hand it.
        assert service.address == expected


async def test_unknown_onion_fails_clearly_within_the_timeout(tor: Tor) -> None:
    never_published = OnionKey.from_seed(os.urandom(32)).address
    start = trio.current_time()
    with pytest.raises(OnionUnreachable) as info:
        await tor.open_stream(never_published, 80, timeout=20, not_found_retry=2)
    assert trio.current_time() - start < 21  # the deadline, plus the time to unwind
    assert isinstance(info.value, OnionNotFound | OnionTimeout)
    assert never_published in str(info.value)


async def test_vanished_service_fails_within_the_deadline(tor: Tor, testnet: TestnetInfo) -> None:
    async with client_tor(testnet, "other") as other:
        async with tor.publish_service(greet_then_echo) as service:
            await service.wait_published(30)
            address = service.address
        start = trio.current_time()
        with pytest.raises(OnionUnreachable):
            await other.open_stream(address, 80, timeout=8, not_found_retry=0)
        assert trio.current_time() - start < 9


def test_status_reports_a_usable_network(testnet: TestnetInfo) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "anonsip.cli", "testnet", "status", "--dir", testnet.directory],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    report = json.loads(result.stdout)
    assert result.returncode == 0
    assert report["usable"] is True
    assert report["consensus_relays"] == len(testnet.nodes)
    assert all(node["alive"] for node in report["nodes"])


async def test_attach_to_a_running_tor_by_its_control_port(tor: Tor) -> None:
    async with attach_tor(tor.control.host, tor.control.port) as attached:
        assert attached.version == tor.version
        assert attached.socks_port == tor.socks_port
        status = await attached.bootstrap_status()
        assert status.done


# --- tor's environment, its death, and stem as a second opinion ------------------------------


async def test_tor_gets_a_clean_environment_and_its_own_session(
    testnet: TestnetInfo, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ANONSIP_PASSPHRASE", "correct horse battery staple")
    async with launch_tor(tmp_path / "tor", testnet=testnet) as tor:
        assert tor.pid is not None
        environ = Path(f"/proc/{tor.pid}/environ").read_bytes()
        assert b"correct horse" not in environ
        assert (
            dict(item.decode().split("=", 1) for item in environ.split(b"\0") if item)
            == tor_environment()
        )
        # A Ctrl-C in our terminal is ours to handle: tor stays up so we can say goodbye.
        assert os.getsid(tor.pid) == tor.pid != os.getsid(0)


async def _use_until_dead(tor: Tor, how: str) -> None:
    """Kill our own tor with SIGKILL, then go on using it as ``how`` says."""
    assert tor.pid is not None
    os.kill(tor.pid, signal.SIGKILL)
    if how == "idle":
        await trio.sleep_forever()
    elif how == "control":
        while True:
            await tor.control.get_info("version")
    else:
        while True:
            with contextlib.suppress(OnionUnreachable):
                await tor.open_stream(OnionKey.from_seed(os.urandom(32)).address, 80, timeout=5)


@pytest.mark.parametrize("how", ["idle", "control", "streams"])
async def test_a_killed_tor_is_reported_as_tor_died(
    testnet: TestnetInfo, tmp_path: Path, how: str
) -> None:
    with trio.fail_after(30), pytest.raises(TorDied) as info:
        async with launch_tor(tmp_path / "tor", testnet=testnet) as tor:
            await _use_until_dead(tor, how)
    assert info.value.returncode == -signal.SIGKILL
    assert "killed by signal 9" in str(info.value)
    assert "before it was ready" not in str(info.value)


async def test_an_error_in_the_body_is_not_taken_for_tor_dying(
    testnet: TestnetInfo, tmp_path: Path
) -> None:
    # Leaving the block closes the owning control connection, and tor exits: that is us.
    async def fail_while_tor_runs() -> None:
        async with launch_tor(tmp_path / "tor", testnet=testnet) as tor:
            await tor.control.get_info("version")
            raise KeyError("not about tor")

    start = trio.current_time()
    with pytest.raises(KeyError, match="not about tor"):
        await fail_while_tor_runs()
    assert trio.current_time() - start < 10


async def test_after_tor_died_a_relaunch_serves_the_same_onion_again(
    testnet: TestnetInfo, tmp_path: Path
) -> None:
    key = OnionKey.from_seed(os.urandom(32))
    data_dir = tmp_path / "tor"

    async def serve_until_killed() -> None:
        async with launch_tor(data_dir, testnet=testnet) as tor:
            await tor.wait_bootstrapped(60)
            async with tor.publish_service(greet_then_echo, key=key) as service:
                await service.wait_published(30)
                assert tor.pid is not None
                os.kill(tor.pid, signal.SIGKILL)
                await trio.sleep_forever()

    async with client_tor(testnet, "visitor") as visitor:
        with pytest.raises(TorDied):
            await serve_until_killed()
        async with launch_tor(data_dir, testnet=testnet) as tor:
            await tor.wait_bootstrapped(60)
            async with tor.publish_service(greet_then_echo, key=key) as service:
                await service.wait_published(30)
                # Published means one HSDir has the new descriptor; another may still hand
                # the visitor the dead tor's, whose introduction points never answer, until
                # tor gives up on them and fetches again: allow for that on a loaded machine.
                stream = await visitor.open_stream(key.address, 80, timeout=90)
                async with stream:
                    assert await _receive_exactly(stream, len(GREETING)) == GREETING


# stem runs in a process of its own: in ours it would see that it is tor's owning process
# (__OwningControllerProcess), take ownership, and tor would exit when stem disconnects.
_STEM_VIEW = """
import json, sys
import stem.control
with stem.control.Controller.from_port(address="127.0.0.1", port=int(sys.argv[1])) as c:
    c.authenticate()
    json.dump({
        "version": str(c.get_version()).split()[0],
        "socks": c.get_listeners(stem.control.Listener.SOCKS),
        "bootstrap": c.get_info("status/bootstrap-phase"),
        "ns/all": c.get_info("ns/all"),
        "fingerprints": sorted(r.fingerprint for r in c.get_network_statuses()),
    }, sys.stdout)
"""


async def _stem_view(port: int) -> dict[str, Any]:
    """What stem, a second implementation of the control protocol, reads from tor."""
    done = await trio.run_process(
        [sys.executable, "-c", _STEM_VIEW, str(port)], capture_stdout=True, capture_stderr=True
    )
    view: dict[str, Any] = json.loads(done.stdout)
    view["socks"] = [tuple(pair) for pair in view["socks"]]
    return view


async def test_stem_and_our_control_client_read_the_same(tor: Tor, testnet: TestnetInfo) -> None:
    keys = ("net/listeners/socks", "status/bootstrap-phase", "ns/all")
    for _ in range(3):
        # tor fetches a new consensus every few seconds: compare what both read between two
        # identical reads of ours, so both saw the same one.
        ours = await tor.control.get_info(*keys)
        theirs = await _stem_view(tor.control.port)
        if await tor.control.get_info(*keys) == ours:
            break
    assert theirs["version"] == tor.version.split()[0]
    assert theirs["socks"] == [(tor.socks_host, tor.socks_port)]
    assert ours["net/listeners/socks"] == f"{tor.socks_host}:{tor.socks_port}"
    assert theirs["bootstrap"] == ours["status/bootstrap-phase"]
    # A multi-line data reply: our parser's dot-unescaping must give stem's lines exactly
    # (stem drops the final line break, we keep it).
    assert theirs["ns/all"].splitlines() == ours["ns/all"].splitlines()
    relays = parse_router_statuses(ours["ns/all"])
    assert theirs["fingerprints"] == sorted(r.fingerprint for r in relays)
    # The consensus `testnet status` reads from an authority lists the same relays, flagged.
    consensus = await read_consensus(testnet)
    assert {r.fingerprint for r in consensus.relays} == set(theirs["fingerprints"])
    for relay in consensus.relays:
        assert {"Guard", "HSDir", "Running", "Valid"} <= relay.flags
