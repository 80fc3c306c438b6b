"""A flood of strangers at a node's door does not cut its contacts off.

Hundreds of sessions, each under a fresh pseudonym that knows Bob's address
(so the IK handshake succeeds), are opened on Bob's onion service from
another tor, some held open, some idle, some dropped. Meanwhile Alice, a
contact, keeps writing and calls Bob: every message is delivered, the call
stays up the whole time, Bob's stranger links stay within their small pool
and his node's memory stays bounded.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path

import pytest
import trio

from anonsip.control import Event, TrioControlClient
from anonsip.identity import Address, Identity
from anonsip.node import SIP_PORT, Session
from anonsip.node._links import KIND_SESSION, MAX_STRANGER_LINKS
from anonsip.nodeproc import NodeFleet
from onion.testnet import TestnetInfo
from tests.integration.conftest import client_tor
from tests.integration.events import next_event

pytestmark = pytest.mark.integration

STRANGERS = 300
AT_ONCE = 40
MESSAGES = 12
MEMORY_GROWTH_LIMIT = 80 * 1024 * 1024  # bytes of RSS the flood may add


@pytest.fixture(scope="module")
def fleet(testnet: TestnetInfo, tmp_path_factory: pytest.TempPathFactory) -> Iterator[NodeFleet]:
    with NodeFleet(tmp_path_factory.mktemp("flood"), Path(testnet.directory)) as nodes:
        for name in ("seed", "alice", "bob"):
            nodes.add(name)
        trio.run(nodes.start_all, "seed")
        trio.run(partial(nodes.start_all, "alice", "bob", registered=True))

        async def befriend() -> None:
            alice, bob = nodes["alice"], nodes["bob"]
            await alice.call("contacts.add", address=bob.address, nick="bob")
            await bob.call("contacts.add", address=alice.address, nick="alice")

        trio.run(befriend)
        yield nodes


def rss(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


def call_in(state: str) -> Callable[[Event], bool]:
    return lambda e: e.event == "call" and e.data.get("state") == state


async def wait_event(
    client: TrioControlClient, match: Callable[[Event], bool], timeout: float
) -> dict[str, object]:
    return dict((await next_event(client, match, timeout)).data)


async def test_a_contact_chats_and_calls_through_a_flood_of_strangers(
    fleet: NodeFleet, testnet: TestnetInfo, tmp_path: Path
) -> None:
    alice, bob = fleet["alice"], fleet["bob"]
    bob_key = Address.parse(bob.address).public_key
    onion = (await bob.call("status"))["onion_address"]
    before = rss(bob.pid)
    opened = 0
    held: list[Session] = []

    async def stranger(limit: trio.CapacityLimiter) -> None:
        nonlocal opened
        async with limit:
            try:
                with trio.fail_after(60):
                    stream = await tor.open_stream(onion, SIP_PORT, isolation="flood", timeout=60)
                    await stream.send_all(KIND_SESSION)
                    me = Identity.generate("s", rng=secrets.token_bytes)
                    session = await Session.connect(stream, me, bob_key, rng=secrets.token_bytes)
            except Exception:
                return
            opened += 1
            if opened % 3 == 0:
                await session.aclose()  # some come and go
            else:
                held.append(session)  # the rest sit there, idle

    async with (
        client_tor(testnet, "flood") as tor,
        alice.client() as a,
        bob.client() as b,
    ):
        await a.subscribe()
        await b.subscribe()
        # The call starts before the flood and must outlive it.
        await a.call("call", peer="bob", record=str(tmp_path / "a.wav"))
        ringing = await wait_event(b, call_in("ringing"), 120)
        await b.call("answer", call_id=ringing["call_id"], record=str(tmp_path / "b.wav"))
        await wait_event(a, call_in("active"), 90)
        delivered: set[str] = set()
        async with trio.open_nursery() as nursery:
            limit = trio.CapacityLimiter(AT_ONCE)
            for _ in range(STRANGERS):
                nursery.start_soon(stranger, limit)
            for i in range(MESSAGES):
                sent = await a.call("send", peer="bob", text=f"through the flood {i}")
                with trio.fail_after(90):
                    async for event in a.events():
                        data = event.data
                        if (
                            data.get("message_id") == sent["message_id"]
                            and data.get("state") == "delivered"
                        ):
                            delivered.add(str(sent["message_id"]))
                            break
                        if event.event == "call" and data.get("state") == "ended":
                            raise AssertionError(f"the call ended during the flood: {data}")
        status = await b.call("status")
        calls = await b.call("calls")
        assert [c["state"] for c in calls] == ["active"], calls
        assert calls[0]["stats"]["received_frames"] > 0
        await a.call("hangup")
    assert len(delivered) == MESSAGES
    assert opened >= STRANGERS // 2, f"the flood hardly happened: {opened} sessions"
    assert status["links"] <= MAX_STRANGER_LINKS + 2  # the pool, plus alice's link(s)
    grown = rss(bob.pid) - before
    print(f"flood: {opened} stranger sessions; bob's RSS grew by {grown / 2**20:.1f} MiB")
    assert grown < MEMORY_GROWTH_LIMIT
    for session in held:
        await session.aclose()
