"""Onion services and streams over a real private Tor network."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import nacl.signing
import pytest
import trio

from onion import (
    OnionKey,
    OnionNotFound,
    OnionTimeout,
    OnionUnreachable,
    Tor,
    attach_tor,
    onion_address_from_public_key,
)
from onion.testnet import TestnetInfo
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
    assert trio.current_time() - start < 20
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
