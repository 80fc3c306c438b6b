"""A node talks to the network only through its own tor.

While two node processes look each other up in the DHT, exchange a contact
request and messages, their sockets are sampled from /proc (no psutil):
every TCP connection of a node process must be to its own tor's SOCKS or
control port on 127.0.0.1; it listens on no TCP port at all (tor delivers
its onion services' streams over private Unix sockets, seen accepted); it
has no UDP or raw socket at all (so no DNS).
"""

from __future__ import annotations

import os
import socket
import struct
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import trio

from anonsip.nodeproc import unix_connections
from onion.testnet import TestnetInfo
from tests.integration.nodes import NodeFleet, NodeProcess, children

pytestmark = pytest.mark.integration

LISTEN = 0x0A
SAMPLE_EVERY = 0.02


@dataclass(frozen=True, kw_only=True)
class TcpSocket:
    local: tuple[str, int]
    remote: tuple[str, int]
    state: int
    inode: int


def _address(text: str) -> tuple[str, int]:
    host, port = text.split(":")
    raw = bytes.fromhex(host)
    # The kernel prints each 32-bit word in host order.
    words = b"".join(struct.pack("<I", w) for w in struct.unpack(f">{len(raw) // 4}I", raw))
    family = socket.AF_INET if len(raw) == 4 else socket.AF_INET6
    return socket.inet_ntop(family, words), int(port, 16)


def test_address_parsing() -> None:
    assert _address("0100007F:1F90") == ("127.0.0.1", 8080)
    assert _address("00000000000000000000000001000000:0035") == ("::1", 53)


def tcp_sockets(pid: int) -> list[TcpSocket]:
    found = []
    for name in ("tcp", "tcp6"):
        lines = Path(f"/proc/{pid}/net/{name}").read_text().splitlines()[1:]
        for line in lines:
            fields = line.split()
            found.append(
                TcpSocket(
                    local=_address(fields[1]),
                    remote=_address(fields[2]),
                    state=int(fields[3], 16),
                    inode=int(fields[9]),
                )
            )
    return found


def other_inodes(pid: int, kinds: tuple[str, ...]) -> set[int]:
    """Inodes of ``pid``'s sockets listed in /proc/net/<kind> (udp, raw...)."""
    inodes = set()
    for kind in kinds:
        for line in Path(f"/proc/{pid}/net/{kind}").read_text().splitlines()[1:]:
            inodes.add(int(line.split()[9]))
    return inodes


def socket_inodes(pid: int) -> set[int]:
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue  # closed while we looked
        if target.startswith("socket:["):
            inodes.add(int(target[8:-1]))
    return inodes


@dataclass
class Observation:
    """What one node process was seen doing, over many samples."""

    node: NodeProcess
    samples: int = 0
    to_tor: int = 0  # outgoing connections to tor's SOCKS/control ports
    from_tor: int = 0  # streams tor delivered to our onion services' Unix sockets
    problems: list[str] | None = None

    def sample(self) -> None:
        node_pid = self.node.pid
        tor_pids = children(node_pid)
        assert tor_pids, f"{self.node.name} has no tor child"
        tcp = tcp_sockets(node_pid)
        mine = socket_inodes(node_pid)
        tors = set().union(*(socket_inodes(p) for p in tor_pids))
        tor_ports = {s.local for s in tcp if s.inode in tors and s.state == LISTEN}
        problems = self.problems if self.problems is not None else []
        self.from_tor += unix_connections(node_pid, f"{tempfile.gettempdir()}/onion-")
        for s in tcp:
            if s.inode == 0 or s.inode not in mine:
                continue
            if s.state == LISTEN:
                problems.append(f"listening on TCP {s.local}")
            elif s.remote in tor_ports:
                self.to_tor += 1
            else:
                problems.append(f"connection {s.local} -> {s.remote} (state {s.state:#x})")
        if other_inodes(node_pid, ("udp", "udp6", "raw", "raw6")) & mine:
            problems.append("a UDP or raw socket")
        self.problems = problems
        self.samples += 1


@pytest.fixture(scope="module")
def pair(testnet: TestnetInfo, tmp_path_factory: pytest.TempPathFactory) -> Iterator[NodeFleet]:
    with NodeFleet(tmp_path_factory.mktemp("leaks"), Path(testnet.directory)) as nodes:
        nodes.add("dora")
        nodes.add("emil")
        trio.run(nodes.start_all, "dora")
        trio.run(lambda: nodes.start_all("emil", registered=True))
        yield nodes


async def test_a_node_only_talks_to_its_own_tor(pair: NodeFleet) -> None:
    dora, emil = pair["dora"], pair["emil"]
    watched = [Observation(node=dora), Observation(node=emil)]
    done = trio.Event()

    async def sampler() -> None:
        while not done.is_set():
            for observation in watched:
                observation.sample()
            with trio.move_on_after(SAMPLE_EVERY):
                await done.wait()

    async def exchange() -> None:
        try:
            await dora.call("lookup", address=emil.address)
            async with dora.client() as client, emil.client() as other:
                await client.subscribe()
                await other.subscribe()
                await client.call("send", peer=emil.address, text="hello from dora")
                with trio.fail_after(60):
                    async for event in other.events():
                        if event.event == "request":
                            break
                await other.call("accept", address=dora.address, nick="dora")
                for i in range(5):
                    sent = await other.call("send", peer="dora", text=f"reply {i}")
                    with trio.fail_after(60):
                        async for event in other.events():
                            if event.data.get("message_id") == sent["message_id"] and (
                                event.data.get("state") == "delivered"
                            ):
                                break
        finally:
            done.set()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(sampler)
        nursery.start_soon(exchange)
    for observation in watched:
        name = observation.node.name
        assert observation.problems == [], f"{name}: {observation.problems}"
        assert observation.samples >= 5
        # The sampler saw real traffic, so the checks above had something to judge.
        assert observation.to_tor > 0, f"{name}: no connection to its tor was seen"
    assert watched[1].from_tor > 0, "emil's onion service was never seen accepting"
