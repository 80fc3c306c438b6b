"""Two people on two machines that share nothing but a join code and an invite.

A network host starts a private Tor network (no DHT node of its own, so
the join code carries none). Alice's and Bob's hosts join it from the
code; each node knows no other DHT node, and says so. Alice prints an
invite; it reaches Bob as text; with it alone Bob's node finds the DHT and
Alice, and they chat both ways (a request, an acceptance, replies). Bob's
node then restarts with nothing but its home and reaches Alice again: it
rejoined through the DHT contacts it saved. Every step runs through the
real ``anonsip`` command inside each host's network namespace; the hosts
share no files (``anonsip.nodeproc.Hosts``).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import trio

from anonsip.control import TrioControlClient
from anonsip.nodeproc import Host, HostNode, Hosts, registered

pytestmark = pytest.mark.integration

UP_TIMEOUT = 240.0
NODE_TIMEOUT = 150.0
MEET_TIMEOUT = 240.0


@dataclass
class Machines:
    hosts: Hosts
    alice: HostNode
    bob: HostNode
    alice_host: Host
    bob_host: Host
    figures: dict[str, float]


def _running(status: dict[str, Any]) -> bool:
    return status.get("phase") == "running"


@pytest.fixture(scope="module")
def machines(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Machines]:
    with Hosts(tmp_path_factory.mktemp("twomachines") / "hosts", subnet="10.78.0.0/24") as hosts:
        net = hosts.add("net")
        network = net.path / "network"
        net.anonsip(
            "testnet", "up", "--dir", str(network), "--address", net.address, timeout=UP_TIMEOUT
        )
        code = net.anonsip("testnet", "share", "--dir", str(network)).stdout.splitlines()[-1]
        nodes = {}
        figures: dict[str, float] = {}
        for name in ("alice", "bob"):
            host = hosts.add(name)
            directory = host.path / "network"
            started = time.monotonic()
            host.anonsip("testnet", "join", code, "--dir", str(directory))
            node = HostNode(host, name, directory)
            node.start()
            trio.run(node.wait_status, _running, NODE_TIMEOUT)
            figures[f"{name}: join code to a running node"] = time.monotonic() - started
            nodes[name] = node
        yield Machines(
            hosts=hosts,
            alice=nodes["alice"],
            bob=nodes["bob"],
            alice_host=nodes["alice"].host,
            bob_host=nodes["bob"].host,
            figures=figures,
        )


def cli(node: HostNode, *args: str, timeout: float = 60) -> str:
    return node.host.anonsip("--home", str(node.home), *args, timeout=timeout).stdout


async def act_and_wait(
    node: HostNode,
    act: Callable[[], object],
    match: Callable[[str, dict[str, Any]], bool],
    timeout: float,
) -> dict[str, Any]:
    """Listen to ``node``'s events, then ``act`` (a command in a host), then wait for ``match``."""
    async with TrioControlClient.connect(node.home / "control.sock") as client:
        await client.subscribe()
        await trio.to_thread.run_sync(act)
        with trio.fail_after(timeout):
            async for event in client.events():
                if match(event.event, dict(event.data)):
                    return dict(event.data)
    raise AssertionError("the node closed its control connection")


def test_alone_a_node_says_so_and_what_to_do(machines: Machines) -> None:
    status = machines.alice.status()
    assert status["dht"]["alone"] is True
    assert "invite" in status["dht"]["hint"]
    assert "knows no other node" in cli(machines.alice, "status")


def test_an_invite_alone_brings_them_together(
    machines: Machines, capsys: pytest.CaptureFixture[str]
) -> None:
    alice, bob = machines.alice, machines.bob
    invite = cli(alice, "invite").splitlines()[-1]  # travels to Bob's machine as text
    assert invite.startswith("asipinv1")
    started = time.monotonic()
    cli(bob, "contacts", "add", invite, "--nick", "alice")
    assert bob.status()["dht"]["alone"] is False  # the invite's contact let him in

    async def meet() -> None:
        await alice.wait_status(registered, MEET_TIMEOUT)  # stored now that she is not alone
        await bob.wait_status(registered, MEET_TIMEOUT)
        request = await act_and_wait(
            alice,
            lambda: cli(bob, "send", "alice", "hello alice, it's bob"),
            lambda e, d: e == "request",
            MEET_TIMEOUT,
        )
        assert request["address"] == bob.address
        machines.figures["first contact by invite: add, send, request arrived"] = (
            time.monotonic() - started
        )
        cli(alice, "accept", bob.address, "--nick", "bob")
        await act_and_wait(
            bob,
            lambda: cli(alice, "send", "bob", "hi bob"),
            lambda e, d: e == "message" and d.get("text") == "hi bob",
            MEET_TIMEOUT,
        )
        await act_and_wait(
            bob,
            lambda: cli(bob, "send", "alice", "glad the invite worked"),
            lambda e, d: (
                e == "message"
                and d.get("text") == "glad the invite worked"
                and d.get("state") == "delivered"
            ),
            MEET_TIMEOUT,
        )

    trio.run(meet)
    heard = cli(alice, "history", "bob")
    assert "hello alice, it's bob" in heard
    assert "glad the invite worked" in heard
    assert "hi bob" in cli(bob, "history", "alice")
    with capsys.disabled():
        for what, seconds in machines.figures.items():
            print(f"\ntwo machines: {what}: {seconds:.1f} s")


def test_a_restarted_node_rejoins_alone_from_its_home(
    machines: Machines, capsys: pytest.CaptureFixture[str]
) -> None:
    alice, bob = machines.alice, machines.bob
    cli(bob, "shutdown")
    assert bob.process is not None
    bob.process.wait(30)
    seeds = [line for line in cli(alice, "bootstrap", "list").splitlines() if line]
    assert seeds  # alice keeps what she knows too
    started = time.monotonic()
    bob.start()  # nothing but its home: no invite, no code, and the network's list is empty

    async def back() -> None:
        await bob.wait_status(registered, NODE_TIMEOUT)
        await act_and_wait(
            alice,
            lambda: cli(bob, "send", "alice", "back again"),
            lambda e, d: e == "message" and d.get("text") == "back again",
            MEET_TIMEOUT,
        )

    trio.run(back)
    assert bob.status()["dht"]["alone"] is False
    with capsys.disabled():
        print(
            f"\ntwo machines: bob restarted to a message at alice: "
            f"{time.monotonic() - started:.1f} s"
        )


def test_no_files_travelled(machines: Machines) -> None:
    for host in (machines.alice_host, machines.bob_host):
        assert host.run("ls", "-A", str(machines.hosts.root)).stdout.split() == [host.name]
