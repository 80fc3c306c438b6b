"""A private Tor network that other hosts join, across network namespaces.

A network host runs ``anonsip testnet up --address <its IP>`` and a seed
node; ``testnet share`` prints the join code, the only thing that travels
between hosts (as text). Two user hosts ``testnet join`` it and run nodes
that bootstrap their tor through the network host and store their
registrations in the DHT found through the code's contact; a relay host
joins with ``--relay`` and the consensus grows. Each node's sockets are
audited the whole time: it talks to its own tor only. The hosts share no
files (``anonsip.nodeproc.Hosts``).
"""

from __future__ import annotations

import json
import re
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import trio

from anonsip.nodeproc import Host, HostNode, Hosts, SocketAudit
from onion.testnet import JoinCode

pytestmark = pytest.mark.integration

UP_TIMEOUT = 240.0
NODE_TIMEOUT = 120.0
JOIN_TIMEOUT = 90.0  # maintenance rejoins an empty table every 30 s
SAMPLE_EVERY = 0.05


@dataclass
class Lan:
    hosts: Hosts
    net: Host
    network: Path  # the network's directory on the network host
    seed: HostNode
    code: str  # the join code, as `testnet share` printed it


def _running(status: dict[str, Any]) -> bool:
    return status.get("phase") == "running"


def _in_the_dht(status: dict[str, Any]) -> bool:
    return int((status.get("dht") or {}).get("routing_table", 0)) >= 1


@pytest.fixture(scope="module")
def lan(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lan]:
    with Hosts(tmp_path_factory.mktemp("multihost") / "hosts") as hosts:
        net = hosts.add("net")
        network = net.path / "network"
        net.anonsip(
            "testnet", "up", "--dir", str(network), "--address", net.address, timeout=UP_TIMEOUT
        )
        seed = HostNode(net, "seed", network)
        seed.start()
        trio.run(seed.wait_status, _running, NODE_TIMEOUT)
        shared = net.anonsip("testnet", "share", "--dir", str(network), "--qr")
        yield Lan(
            hosts=hosts, net=net, network=network, seed=seed, code=shared.stdout.splitlines()[-1]
        )


def test_hosts_share_no_files(lan: Lan) -> None:
    peek = lan.hosts.add("peek")
    (peek.path / "mine").write_text("peek's own file")
    seen = peek.run("ls", "-A", str(lan.hosts.root)).stdout.split()
    assert seen == ["peek"]
    assert peek.run("cat", "mine").stdout == "peek's own file"
    stolen = peek.run("cat", str(lan.network / "testnet.json"), check=False)
    assert stolen.returncode != 0
    assert "No such file" in stolen.stderr
    assert lan.net.run("ls", "-A", str(lan.hosts.root)).stdout.split() == ["net"]


def test_the_join_code_carries_the_network_and_the_seed_nodes_contact(lan: Lan) -> None:
    code = JoinCode.decode(lan.code)
    assert {a.address for a in code.authorities} == {lan.net.address}
    assert len(code.authorities) == 3
    assert len(code.contacts) == 1  # the seed node, from the network's dht-bootstrap.json
    assert " " not in lan.code


async def _watch(audits: list[SocketAudit], done: trio.Event) -> None:
    while not done.is_set():
        for audit in audits:
            audit.sample()
        with trio.move_on_after(SAMPLE_EVERY):
            await done.wait()


def test_two_users_join_from_the_code_and_register(
    lan: Lan, capsys: pytest.CaptureFixture[str]
) -> None:
    users = [lan.hosts.add("alice"), lan.hosts.add("bob")]
    nodes: list[HostNode] = []
    started: dict[str, float] = {}
    joined: dict[str, float] = {}
    for host in users:
        directory = host.path / "network"
        started[host.name] = time.monotonic()
        out = host.anonsip("testnet", "join", lan.code, "--dir", str(directory)).stdout
        joined[host.name] = time.monotonic() - started[host.name]
        assert re.search(r"\d+ relays in its consensus", out), out
        node = HostNode(host, host.name, directory)
        node.start()
        nodes.append(node)
    audits = [SocketAudit(name=node.nick, pid=node.pid) for node in nodes]
    usable: dict[str, float] = {}

    async def register_all() -> None:
        done = trio.Event()

        async def register(node: HostNode) -> None:
            await node.wait_registered(NODE_TIMEOUT)
            usable[node.nick] = time.monotonic() - started[node.nick]

        async with trio.open_nursery() as nursery:
            nursery.start_soon(_watch, audits, done)
            async with trio.open_nursery() as waits:
                for node in nodes:
                    waits.start_soon(register, node)
            done.set()

    trio.run(register_all)
    for node in nodes:
        status = node.status()  # `anonsip --home H status --json`, inside the user's host
        assert status["phase"] == "running"
        assert status["tor"]["progress"] == 100
        assert status["registration"]["state"] == "registered"
        # The registration went out as anonymous requests; the node's own DHT node joins
        # through the code's contact on its own schedule (a first dial of a fresh onion can
        # outlast one RPC timeout; maintenance joins again while the table is empty).
        if status["dht"]["routing_table"] < 1:
            status = trio.run(node.wait_status, _in_the_dht, JOIN_TIMEOUT)
        assert status["dht"]["routing_table"] >= 1, "the code's DHT contact was not reached"
    for audit in audits:
        assert audit.problems == [], f"{audit.name}: {audit.problems}"
        assert audit.samples >= 10
        assert audit.to_tor > 0, f"{audit.name}: no connection to its own tor was seen"
    with capsys.disabled():
        for name in usable:
            print(
                f"\nmultihost: {name}: `testnet join` {joined[name]:.1f} s; join to a registered"
                f" node on another host {usable[name]:.1f} s (two hosts joining at once)"
            )


def test_a_relay_joins_the_running_network_and_leaves_it(
    lan: Lan, capsys: pytest.CaptureFixture[str]
) -> None:
    relay_host = lan.hosts.add("relay")
    directory = relay_host.path / "network"
    before = _status(lan.net, lan.network)["consensus_relays"]
    started = time.monotonic()
    out = relay_host.anonsip(
        "testnet", "join", lan.code, "--dir", str(directory),
        "--relay", "--address", relay_host.address,
        timeout=200,
    ).stdout  # fmt: skip
    seconds = time.monotonic() - started
    assert "is in the network's consensus" in out
    status = _status(relay_host, directory)
    assert status["usable"] is True
    (relay,) = status["nodes"]
    assert relay["alive"]
    assert relay["in_consensus"]
    listed = {r["fingerprint"]: r for r in status["consensus"]["relays"]}
    # The authorities on 10.77.0.1 flag a relay on another address of the LAN, too.
    assert {"Guard", "HSDir", "Running", "Valid"} <= set(listed[relay["fingerprint"]]["flags"])
    assert listed[relay["fingerprint"]]["address"] == relay_host.address
    # The consensus as the network host reads it grew by the new relay.
    after = _status(lan.net, lan.network)
    assert after["consensus_relays"] == before + 1
    # `down` on the relay host stops its relay and nothing of the network host.
    down = relay_host.anonsip("testnet", "down", "--dir", str(directory)).stdout
    assert "stopped 1 tor processes" in down
    assert relay_host.pids() == []
    network = _status(lan.net, lan.network)
    assert all(node["alive"] for node in network["nodes"])
    assert _status(relay_host, directory)["nodes"] == []
    with capsys.disabled():
        print(f"\nmultihost: `testnet join --relay` to in the consensus: {seconds:.1f} s")


def _status(host: Host, directory: Path) -> dict[str, Any]:
    """``testnet status`` run in ``host`` (it exits 1 while the network is not usable)."""
    done = host.run(
        sys.executable, "-m", "anonsip.cli", "testnet", "status", "--dir", str(directory),
        check=False,
    )  # fmt: skip
    result: dict[str, Any] = json.loads(done.stdout)
    return result
