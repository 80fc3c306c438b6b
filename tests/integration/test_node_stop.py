"""A node told to stop is gone within seconds, whatever it was doing.

The case that used to hang: the node is retrying a contact nobody can
reach (a fresh lookup, a dial under its deadline) when it is told to stop,
by the ``shutdown`` operation or by SIGTERM.
"""

from __future__ import annotations

import random
import signal
import time
from pathlib import Path

import pytest
import trio

from anonsip.identity import Identity
from anonsip.nodeproc import NodeProcess
from onion.testnet import TestnetInfo

pytestmark = pytest.mark.integration

GONE_WITHIN_S = 10.0


@pytest.mark.parametrize("how", ["shutdown", "sigterm"])
async def test_a_node_busy_with_an_unreachable_contact_stops_at_once(
    tmp_path: Path, testnet: TestnetInfo, how: str
) -> None:
    node = NodeProcess("busy", tmp_path / "busy", testnet=Path(testnet.directory), pow_bits=8)
    node.start()
    try:
        await node.wait_ready(registered=False)
        nobody = Identity.generate("nobody", rng=random.Random(99).randbytes).address.text
        await node.call("contacts.add", address=nobody, nick="nobody")
        await node.call("send", peer="nobody", text="are you there?")
        await trio.sleep(3)  # the outbox is looking the peer up and dialling
        started = time.monotonic()
        if how == "shutdown":
            await node.call("shutdown")
        else:
            node.signal(signal.SIGTERM)
        code = await trio.to_thread.run_sync(node.wait_exit, 30.0)
        took = time.monotonic() - started
        print(f"stopped by {how} in {took:.1f} s")
        assert code == 0
        assert took < GONE_WITHIN_S
    finally:
        await node.stop()
