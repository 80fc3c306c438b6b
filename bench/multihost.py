"""From a join code to a conversation between two hosts, timed, against Tor's own cost.

Run (as root: it makes network namespaces):
     .venv/bin/python -m bench.multihost [--runs 3] [--wan PROFILE]

On hosts of ``anonsip.nodeproc.Hosts`` (Linux network namespaces on a
bridge, each host's files hidden from the others): a network host runs
the private network (``testnet up --address IP``, ``--wan PROFILE`` for
WAN-shaped links) and a seed node, and ``testnet share`` prints the join
code, which reaches the user hosts as text. Each run adds two fresh user
hosts, A and B, and times:

* join: from ``testnet join CODE`` on a user host, through ``init`` (fast
  key derivation, no passphrase) and ``run``, to a usable node: running,
  its registration stored in the DHT (both hosts are samples);
* the raw onion baseline of this run, measured inside host A by
  ``bench.onion_baseline`` on A's joined directory (two client tors in A,
  every relay on the network host): its cold connect to a fresh onion;
* first contact by invite: A's ``anonsip invite`` (not timed) reaches B
  as text; from B adding it (control ``contacts.add``) through B's
  ``send`` to A until A's node has stored the message (a first message
  is a contact request: A's node answers 202 and its state becomes
  ``request``): the DHT lookup, rendezvous, Noise handshake, the contact
  request with its proof of work at the real difficulty, and its receipt.
  The commands go through B's control socket, the operations ``anonsip
  contacts add`` and ``anonsip send`` call, so the CLI's own start-up
  (about 0.6 s a command here) is not counted. Also as a ratio to the
  run's raw cold connect;
* rejoin after restart: A accepts B; B shuts down and starts again with
  nothing but its home; seconds to running and registered, and to a
  message to A delivered.

Figures are medians over the runs (join: over both hosts of every run).
Every namespace, bridge and process is removed at the end, failure
included.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import trio

from anonsip.admission import RESTING_EFFORT
from anonsip.control import TrioControlClient
from anonsip.nodeproc import Host, HostNode, Hosts, HostsError, registered
from bench._common import report

SUBNET = "10.79.0.0/24"
UP_TIMEOUT = 300.0
NODE_TIMEOUT = 180.0
MESSAGE_TIMEOUT = 180.0
BASELINE_TIMEOUT = 600.0
STOP_TIMEOUT = 30.0
REPO = Path(__file__).resolve().parents[1]


@dataclass
class Network:
    """The network host, its network's directory and the join code it printed."""

    net: Host
    directory: Path
    code: str
    up_s: float


@dataclass
class Run:
    """One repetition's figures (seconds)."""

    join_command_s: list[float]
    join_usable_s: list[float]
    baseline: dict[str, float]
    invite_s: float
    invite_sent_s: float | None
    rejoin_registered_s: float
    rejoin_delivered_s: float

    @property
    def invite_ratio(self) -> float:
        return self.invite_s / self.baseline["cold_connect_s"]


def _running(status: dict[str, Any]) -> bool:
    return status.get("phase") == "running"


def _node_options() -> tuple[str, ...]:
    # HostNode starts nodes at an easy test difficulty; the last --pow-bits wins.
    return ("--pow-bits", str(RESTING_EFFORT))


def start_network(hosts: Hosts, wan: str | None) -> Network:
    """The network host: ``testnet up``, a seed node, and the join code ``testnet share`` prints."""
    net = hosts.add("net")
    directory = net.path / "network"
    shaped = ["--wan", wan] if wan else []
    started = time.monotonic()
    net.anonsip(
        "testnet", "up", "--dir", str(directory), "--address", net.address, *shaped,
        timeout=UP_TIMEOUT,
    )  # fmt: skip
    up_s = time.monotonic() - started
    # A seed node, so the code carries one DHT contact and a joining node can register.
    seed = HostNode(net, "seed", directory)
    seed.start(*_node_options())
    trio.run(seed.wait_status, _running, NODE_TIMEOUT)
    code = net.anonsip("testnet", "share", "--dir", str(directory)).stdout.splitlines()[-1]
    return Network(net=net, directory=directory, code=code, up_s=up_s)


def join(host: Host, code: str) -> tuple[HostNode, float, float]:
    """``testnet join`` on ``host``, a new identity, a node; seconds to joined and to usable."""
    directory = host.path / "network"
    started = time.monotonic()
    host.anonsip("testnet", "join", code, "--dir", str(directory))
    joined = time.monotonic() - started
    node = HostNode(host, host.name, directory)
    node.start(*_node_options())
    trio.run(node.wait_registered, NODE_TIMEOUT)
    return node, joined, time.monotonic() - started


def baseline_in(node: HostNode) -> dict[str, float]:
    """``bench.onion_baseline`` run inside ``node``'s host, on its joined directory."""
    done = node.host.run(
        sys.executable, "-m", "bench.onion_baseline", "--testnet", str(node.testnet),
        "--echoes", "50", "--bulk-mib", "0.25",
        timeout=BASELINE_TIMEOUT, env={"PYTHONPATH": str(REPO)},
    )  # fmt: skip
    for line in reversed(done.stdout.splitlines()):
        if line.startswith("{"):
            figures: dict[str, float] = json.loads(line)
            return figures
    raise HostsError(f"bench.onion_baseline printed no figures:\n{done.stdout}\n{done.stderr}")


async def _receipt(
    client: TrioControlClient, message_id: str, states: tuple[str, ...], *nodes: HostNode
) -> dict[str, float]:
    """Wait for the message's state to become one of ``states`` (the peer's node has it);
    when each state was first seen (monotonic seconds)."""
    seen: dict[str, float] = {}
    try:
        with trio.fail_after(MESSAGE_TIMEOUT):
            async for event in client.events():
                if event.event != "message" or event.data.get("message_id") != message_id:
                    continue
                state = str(event.data.get("state"))
                seen.setdefault(state, time.monotonic())
                if state in states:
                    return seen
    except trio.TooSlowError:
        tails = "".join(node.log_tail() for node in nodes)
        raise HostsError(f"no receipt in {MESSAGE_TIMEOUT} s\n{tails}") from None
    raise HostsError("the node closed its control connection")


async def first_contact(
    sender: HostNode, receiver: HostNode, invite: str
) -> tuple[float, float | None]:
    """Seconds from ``sender`` adding ``invite`` to its first message stored by ``receiver``.

    A first message is a contact request: the receiver's node stores it and
    answers 202, the message's state becomes ``request`` (``delivered``
    comes once the request is accepted). Also the seconds to ``sent``: the
    receiver's node said it has the request (a 100 Trying, which it sends only
    when its final answer takes more than 200 ms; None when it did not).
    """
    async with TrioControlClient.connect(sender.home / "control.sock") as client:
        await client.subscribe()
        started = time.monotonic()
        contact = await client.call("contacts.add", address=invite, nick=receiver.nick)
        sent = await client.call("send", peer=contact["address"], text="hello, from the invite")
        seen = await _receipt(
            client, sent["message_id"], ("request", "delivered"), sender, receiver
        )
        done = time.monotonic() - started
        return done, (seen["sent"] - started if "sent" in seen else None)


async def accept(node: HostNode, address: str, nick: str) -> None:
    async with TrioControlClient.connect(node.home / "control.sock") as client:
        await client.call("accept", address=address, nick=nick)


async def rejoin(node: HostNode, peer: HostNode) -> tuple[float, float]:
    """Start ``node`` again (its home only); seconds to registered and to a message delivered."""
    started = time.monotonic()
    node.start(*_node_options())
    await node.wait_registered(NODE_TIMEOUT)
    usable = time.monotonic() - started
    async with TrioControlClient.connect(node.home / "control.sock") as client:
        await client.subscribe()
        sent = await client.call("send", peer=peer.address, text="back again")
        await _receipt(client, sent["message_id"], ("delivered",), node, peer)
    return usable, time.monotonic() - started


def shut_down(node: HostNode) -> None:
    node.host.anonsip("--home", str(node.home), "shutdown", timeout=STOP_TIMEOUT)
    assert node.process is not None
    node.process.wait(STOP_TIMEOUT)


def one_run(hosts: Hosts, network: Network, index: int) -> Run:
    a, a_joined, a_usable = join(hosts.add(f"a{index}"), network.code)
    b, b_joined, b_usable = join(hosts.add(f"b{index}"), network.code)
    baseline = baseline_in(a)
    invite = a.host.anonsip("--home", str(a.home), "invite").stdout.splitlines()[-1]
    invite_s, invite_sent_s = trio.run(first_contact, b, a, invite)
    trio.run(accept, a, b.address, "b")
    shut_down(b)
    registered_s, delivered_s = trio.run(rejoin, b, a)
    if not registered(b.status()):
        raise HostsError(f"{b.nick} is no longer registered after its message\n{b.log_tail()}")
    for node in (a, b):  # two idle nodes per run would weigh on the next run's figures
        shut_down(node)
    return Run(
        join_command_s=[a_joined, b_joined],
        join_usable_s=[a_usable, b_usable],
        baseline=baseline,
        invite_s=invite_s,
        invite_sent_s=invite_sent_s,
        rejoin_registered_s=registered_s,
        rejoin_delivered_s=delivered_s,
    )


def measure(runs: int, wan: str | None) -> dict[str, Any]:
    with (
        tempfile.TemporaryDirectory(prefix="anonsip-bench-multihost-") as root,
        Hosts(Path(root) / "hosts", subnet=SUBNET) as hosts,
    ):
        network = start_network(hosts, wan)
        results = []
        for index in range(runs):
            results.append(one_run(hosts, network, index))
            print(f"run {index + 1}/{runs} done", file=sys.stderr, flush=True)
    return _figures(results, network.up_s, wan)


def _r(values: list[float], digits: int = 3) -> list[float]:
    return [round(v, digits) for v in values]


def _figures(results: list[Run], up_s: float, wan: str | None) -> dict[str, Any]:
    joined = [s for r in results for s in r.join_command_s]
    usable = [s for r in results for s in r.join_usable_s]
    cold = [r.baseline["cold_connect_s"] for r in results]
    invite = [r.invite_s for r in results]
    ratio = [r.invite_ratio for r in results]
    back = [r.rejoin_registered_s for r in results]
    back_message = [r.rejoin_delivered_s for r in results]
    return {
        "network": f"wan:{wan}" if wan else "loopback",
        "runs": len(results),
        "baseline_from": "user host A (both client tors in it)",
        "network_up_s": round(up_s, 1),
        "join_command_s": _r(joined),
        "join_command_median_s": round(statistics.median(joined), 3),
        "join_usable_s": _r(usable),
        "join_usable_median_s": round(statistics.median(usable), 3),
        "baseline_cold_connect_s": _r(cold),
        "baseline_echo_rtt_median_ms": [r.baseline["echo_rtt_median_ms"] for r in results],
        "invite_first_contact_s": _r(invite),
        "invite_first_contact_median_s": round(statistics.median(invite), 3),
        "invite_to_sent_s": [
            None if r.invite_sent_s is None else round(r.invite_sent_s, 3) for r in results
        ],
        "invite_ratio": _r(ratio, 2),
        "invite_ratio_median": round(statistics.median(ratio), 2),
        "rejoin_registered_s": _r(back),
        "rejoin_registered_median_s": round(statistics.median(back), 3),
        "rejoin_delivered_s": _r(back_message),
        "rejoin_delivered_median_s": round(statistics.median(back_message), 3),
        "pow_bits": RESTING_EFFORT,
    }


def _samples(values: list[float]) -> str:
    return ", ".join(f"{v:.2f}" for v in values)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--runs", type=int, default=3, help="repetitions (fresh user hosts each)")
    parser.add_argument("--wan", metavar="PROFILE", help="a WAN-shaped network (testnet up --wan)")
    parser.add_argument(
        "--testnet",
        metavar="DIR",
        help="not supported: this benchmark starts its own network on a namespaced host",
    )
    args = parser.parse_args()
    if args.testnet:
        parser.error("--testnet: the network must run on a host of its own; this bench starts it")
    if args.runs < 1:
        parser.error("--runs is at least 1")
    try:
        f = measure(args.runs, args.wan)
    except HostsError as exc:
        sys.exit(f"bench.multihost: {exc}")
    rows = [
        ("private network up on the network host", f"{f['network_up_s']:.1f} s"),
        ("`testnet join` alone, median", f"{f['join_command_median_s']:.2f} s"),
        ("join -> usable (running, registered), median", f"{f['join_usable_median_s']:.2f} s"),
        ("  samples", _samples(f["join_usable_s"])),
        ("raw onion cold connect, from user host A", _samples(f["baseline_cold_connect_s"])),
        ("raw 64-byte echo RTT median, ms", _samples(f["baseline_echo_rtt_median_ms"])),
        (
            "first contact by invite: add, send, stored at A",
            f"{f['invite_first_contact_median_s']:.2f} s",
        ),
        ("  samples", _samples(f["invite_first_contact_s"])),
        (
            "  of which to `sent` (lookup, connect, handshake, PoW)",
            ", ".join("-" if v is None else f"{v:.2f}" for v in f["invite_to_sent_s"]),
        ),
        ("  ratio to the same run's raw cold connect", f"{f['invite_ratio_median']:.2f}"),
        ("  ratio samples", _samples(f["invite_ratio"])),
        ("rejoin after restart -> registered, median", f"{f['rejoin_registered_median_s']:.2f} s"),
        ("rejoin after restart -> message delivered", f"{f['rejoin_delivered_median_s']:.2f} s"),
        ("  samples", _samples(f["rejoin_delivered_s"])),
    ]
    report(
        f"anonsip across hosts ({f['network']}; {f['runs']} runs, network namespaces, "
        f"PoW {RESTING_EFFORT} bits)",
        rows,
        f,
    )


if __name__ == "__main__":
    main()
