"""A censored host enters the private network through an obfs4 bridge, and chats and calls.

Across network namespaces (``anonsip.nodeproc.Hosts``): a network host runs the private
network and a seed node; a bridge host joins it with ``testnet join
--bridge`` and prints its bridge line; bob's host is uncensored. Alice's
host is censored: a /32 address and one host route, to the bridge host
only. Without a bridge alice's node cannot bootstrap and says so; with
``anonsip run --bridge LINE`` it bootstraps (its progress names the
bridge), registers, chats with bob both ways and calls him. A capture of
alice's traffic to the bridge shows no TLS handshake, while the same
reading of bob's capture (plain Tor) finds one in every connection.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import trio

from anonsip.control import Event, TrioControlClient
from anonsip.nodeproc import Host, HostNode, Hosts, wait_for_line
from onion import parse_bridge_line
from tests.integration.pcap import read_pcap, tls_client_hellos

pytestmark = pytest.mark.integration

UP_TIMEOUT = 240.0
NODE_TIMEOUT = 150.0
STEP_TIMEOUT = 90.0
BLOCKED_BOOTSTRAP_S = 20


@dataclass
class Censored:
    hosts: Hosts
    net: Host
    bridge_host: Host
    alice: Host
    bob: Host
    code: str
    line: str


def _running(status: dict[str, Any]) -> bool:
    return status.get("phase") == "running"


@pytest.fixture(scope="module")
def censored(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Censored]:
    with Hosts(tmp_path_factory.mktemp("bridges") / "hosts") as hosts:
        net = hosts.add("net")
        network = net.path / "network"
        net.anonsip(
            "testnet", "up", "--dir", str(network), "--address", net.address, timeout=UP_TIMEOUT
        )
        seed = HostNode(net, "seed", network)
        seed.start()
        trio.run(seed.wait_status, _running, NODE_TIMEOUT)
        code = net.anonsip("testnet", "share", "--dir", str(network)).stdout.splitlines()[-1]
        bridge_host = hosts.add("bridge")
        out = bridge_host.anonsip(
            "testnet", "join", code, "--dir", str(bridge_host.path / "network"),
            "--bridge", "--address", bridge_host.address,
        ).stdout  # fmt: skip
        line = out.splitlines()[-1]
        bob = hosts.add("bob")
        alice = hosts.add_censored("alice", reaches=bridge_host)
        yield Censored(
            hosts=hosts,
            net=net,
            bridge_host=bridge_host,
            alice=alice,
            bob=bob,
            code=code,
            line=line,
        )


def test_the_bridge_line_is_printed_last_and_names_an_obfs4_bridge_on_the_bridge_host(
    censored: Censored,
) -> None:
    bridge = parse_bridge_line(censored.line)
    assert bridge.transport == "obfs4"
    assert bridge.host == censored.bridge_host.address


def test_the_bridge_serves_the_network_but_no_consensus_lists_it(censored: Censored) -> None:
    bridge = parse_bridge_line(censored.line)
    report = censored.bridge_host.anonsip(
        "testnet", "status", "--dir", str(censored.bridge_host.path / "network")
    ).stdout
    assert '"usable": true' in report
    assert bridge.fingerprint is not None
    assert bridge.fingerprint not in report.split('"consensus"', 1)[1].split('"nodes"', 1)[0]
    # Its ORPort (plain Tor TLS) listens on loopback only: from outside, obfs4 is all there is.
    listening = censored.bridge_host.run("ss", "-Hltn").stdout
    lan_ports = {
        line.split()[3].rpartition(":")[2]
        for line in listening.splitlines()
        if line.split()[3].startswith(censored.bridge_host.address)
    }
    assert lan_ports == {str(bridge.port)}


def test_the_censored_host_reaches_the_bridge_host_and_nothing_else(censored: Censored) -> None:
    for blocked in (censored.net.address, censored.bob.address):
        refused = censored.alice.run("ip", "route", "get", blocked, check=False)
        assert refused.returncode != 0
        assert "unreachable" in refused.stderr
    assert censored.alice.run("ip", "route", "get", censored.bridge_host.address).returncode == 0


def test_without_a_bridge_the_censored_node_cannot_bootstrap_and_says_so(
    censored: Censored,
) -> None:
    alice = censored.alice
    directory = alice.path / "network"
    alice.anonsip("testnet", "join", censored.code, "--dir", str(directory))
    node = HostNode(alice, "blocked", directory, home="blocked")
    node.start("--bootstrap-timeout", str(BLOCKED_BOOTSTRAP_S))
    assert node.process is not None
    assert node.process.wait(timeout=BLOCKED_BOOTSTRAP_S + 60) == 1
    said = (node.home / "node.out").read_text()
    assert "tor could not reach any relay or directory authority" in said
    assert "if this network blocks Tor, use a bridge" in said
    assert f"anonsip --home {node.home} run --bridge" in said


async def _wait_event(
    client: TrioControlClient, match: Callable[[Event], bool], timeout: float = STEP_TIMEOUT
) -> dict[str, Any]:
    with trio.fail_after(timeout):
        async for event in client.events():
            if match(event):
                return dict(event.data)
    raise AssertionError("the node closed its control socket")


def _message(message_id: str, state: str) -> Callable[[Event], bool]:
    return lambda e: (
        e.event == "message"
        and e.data.get("message_id") == message_id
        and e.data.get("state") == state
    )


def _call(call_id: str, state: str) -> Callable[[Event], bool]:
    return lambda e: (
        e.event == "call" and e.data.get("call_id") == call_id and e.data.get("state") == state
    )


def _stats_with_frames(call_id: str) -> Callable[[Event], bool]:
    return lambda e: (
        e.event == "call.stats"
        and e.data.get("call_id") == call_id
        and e.data.get("played_frames", 0) > 50  # what the hang-up's stats then show
    )


async def _chat_and_call(alice: HostNode, bob: HostNode) -> dict[str, Any]:
    async with (
        TrioControlClient.connect(alice.home / "control.sock") as a,
        TrioControlClient.connect(bob.home / "control.sock") as b,
    ):
        await a.subscribe()
        await b.subscribe()
        await a.call("contacts.add", address=bob.address, nick="bob")
        await b.call("contacts.add", address=alice.address, nick="alice")
        sent = await a.call("send", peer=bob.address, text="hello from behind the censor")
        await _wait_event(a, _message(sent["message_id"], "delivered"))
        reply = await b.call("send", peer=alice.address, text="hello, I hear you")
        await _wait_event(b, _message(reply["message_id"], "delivered"))
        history = await a.call("history", peer=bob.address)
        assert {"hello from behind the censor", "hello, I hear you"} <= {m["text"] for m in history}
        placed = await a.call("call", peer=bob.address, record="/dev/null")
        call_id = str(placed["call_id"])
        await _wait_event(b, _call(call_id, "ringing"))
        await b.call("answer", call_id=call_id, record="/dev/null")
        await _wait_event(a, _call(call_id, "active"))
        heard_by_bob = await _wait_event(b, _stats_with_frames(call_id))
        heard_by_alice = await _wait_event(a, _stats_with_frames(call_id))
        await a.call("hangup", call_id=call_id)
        ended = await _wait_event(b, _call(call_id, "ended"))
        return {"bob": heard_by_bob, "alice": heard_by_alice, "ended": ended}


def _capture(host: Host, name: str, peer: str) -> tuple[subprocess.Popen[bytes], Path]:
    """tcpdump of ``host``'s traffic with ``peer``, returned once it listens."""
    path = host.path / f"{name}.pcap"
    process = host.spawn(
        "tcpdump", "-i", "eth0", "-n", "-U", "-s", "256", "-w", str(path), "host", peer,
        output=subprocess.PIPE,
    )  # fmt: skip
    wait_for_line(process, b"listening on eth0", timeout=30)
    return process, path


def _stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    process.wait(timeout=10)
    if process.stdout is not None:
        process.stdout.close()


def test_through_the_bridge_the_censored_node_registers_chats_and_calls_unseen_as_tor(
    censored: Censored, capsys: pytest.CaptureFixture[str]
) -> None:
    bridge = parse_bridge_line(censored.line)
    bob_dir = censored.bob.path / "network"
    censored.bob.anonsip("testnet", "join", censored.code, "--dir", str(bob_dir))
    bob_capture, bob_pcap = _capture(censored.bob, "bob", censored.net.address)
    bob = HostNode(censored.bob, "bob", bob_dir)
    bob.start()
    alice_dir = censored.alice.path / "network"
    if not (alice_dir / "testnet.json").exists():
        censored.alice.anonsip("testnet", "join", censored.code, "--dir", str(alice_dir))
    alice_capture, alice_pcap = _capture(censored.alice, "alice", censored.bridge_host.address)
    alice = HostNode(censored.alice, "alice", alice_dir)
    started = time.monotonic()
    alice.start("--bridge", censored.line)
    phases: list[str] = []

    def registered(status: dict[str, Any]) -> bool:
        phases.append(str(status.get("tor", {}).get("phase", "")))
        return _running(status) and status["registration"]["state"] == "registered"

    async def both_registered() -> None:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(alice.wait_status, registered, NODE_TIMEOUT)
            nursery.start_soon(bob.wait_registered, NODE_TIMEOUT)

    trio.run(both_registered)
    usable = time.monotonic() - started
    heard = trio.run(_chat_and_call, alice, bob)
    _stop(alice_capture)
    _stop(bob_capture)

    assert any("(via an obfs4 bridge)" in phase for phase in phases), phases
    assert "entering the Tor network through an obfs4 bridge" in alice.log_tail()
    assert heard["ended"]["reason"] == "remote-hung-up"
    assert heard["ended"]["stats"]["played_frames"] > 50

    # What the censor saw of alice: obfs4 to the bridge, and not one TLS handshake.
    seen = read_pcap(alice_pcap)
    assert len(seen) > 100, "the capture holds alice's traffic"
    ends = {(s.source, s.destination) for s in seen}
    bridge_end = (bridge.host, bridge.port)
    assert all(bridge_end in pair for pair in ends), ends
    assert tls_client_hellos(seen) == []
    # The same reading of bob's capture (plain Tor, no bridge) finds the handshakes.
    direct = read_pcap(bob_pcap)
    assert len(tls_client_hellos(direct)) >= 1
    with capsys.disabled():
        print(
            f"\nbridges: the censored node was registered {usable:.1f} s after it started;"
            f" {len(seen)} segments to the bridge, 0 TLS handshakes"
            f" (bob's direct capture: {len(tls_client_hellos(direct))})"
        )
