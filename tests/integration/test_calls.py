"""Voice calls between real node processes on the private Tor network.

Three nodes run for the whole module (carol only seeds the DHT); alice and
bob are each other's contacts. Alice calls bob with the ``anonsip call`` CLI
playing espeak-ng speech; bob answers through the control API recording to
a WAV, and the whole recording, untrimmed, scores PESQ-WB >= 3.5 against
the original, the first 100 ms of speech included. Then, from each side:
decline, busy, the caller giving up while it rings, and hangup by either
party. Finally the call's media paths are cut inside tor (CLOSESTREAM on
the caller's tor): one path cut, the call goes on and a new path replaces
it; every path cut, both sides end the call cleanly with a BYE.
"""

from __future__ import annotations

import subprocess
import sys
import wave
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import trio
from pesq import pesq

from anonsip import AnonsipError
from anonsip.control import Event, TrioControlClient
from anonsip.demo._clip import speak
from onion import ControlCommandError, attach_tor
from onion.testnet import TestnetInfo
from tests.integration.events import next_event
from tests.integration.nodes import NodeFleet, NodeProcess
from tests.unit.media.conftest import first_100_ms_heard

pytestmark = pytest.mark.integration

RATE = 16000
CALL_TIMEOUT = 60.0
SPEECH = (
    "The quick brown fox jumps over the lazy dog. "
    "Voice calls over onion services must stay clear and private. "
    "Please call me back tomorrow afternoon at three."
)


@pytest.fixture(scope="module")
def fleet(testnet: TestnetInfo, tmp_path_factory: pytest.TempPathFactory) -> Iterator[NodeFleet]:
    with NodeFleet(tmp_path_factory.mktemp("calls"), Path(testnet.directory)) as nodes:
        for name in ("carol", "alice", "bob"):
            nodes.add(name)
        trio.run(nodes.start_all, "carol")
        trio.run(partial(nodes.start_all, "alice", "bob", registered=True))

        async def befriend() -> None:
            alice, bob = nodes["alice"], nodes["bob"]
            await alice.call("contacts.add", address=bob.address, nick="bob")
            await bob.call("contacts.add", address=alice.address, nick="alice")

        trio.run(befriend)
        yield nodes


@pytest.fixture(scope="module")
def speech(tmp_path_factory: pytest.TempPathFactory) -> Path:
    try:
        return speak(SPEECH, tmp_path_factory.mktemp("speech") / "speech.wav", rate=RATE)
    except AnonsipError as exc:
        pytest.fail(f"the call tests need espeak-ng: {exc}")


def read_pcm(path: Path) -> np.ndarray:
    with wave.open(str(path), "rb") as w:
        assert w.getframerate() == RATE
        return np.frombuffer(w.readframes(w.getnframes()), dtype="<i2")


def aligned(reference: np.ndarray, recording: np.ndarray) -> np.ndarray:
    """The stretch of ``recording`` that lines up with ``reference`` (FFT cross-correlation)."""
    ref = reference.astype(np.float64)
    rec = recording.astype(np.float64)
    n = 1 << int(np.ceil(np.log2(len(ref) + len(rec))))
    corr = np.fft.irfft(np.fft.rfft(rec, n) * np.conj(np.fft.rfft(ref, n)), n)
    lag = int(np.argmax(corr[: len(rec)]))
    piece = recording[lag : lag + len(reference)]
    return np.pad(piece, (0, len(reference) - len(piece)))


async def wait_event(
    client: TrioControlClient, match: Callable[[Event], bool], timeout: float = CALL_TIMEOUT
) -> dict[str, Any]:
    return dict((await next_event(client, match, timeout)).data)


def call_state(state: str, call_id: str | None = None) -> Callable[[Event], bool]:
    return lambda e: (
        e.event == "call"
        and e.data.get("state") == state
        and (call_id is None or e.data.get("call_id") == call_id)
    )


async def test_speech_reaches_the_callee_clearly(
    fleet: NodeFleet, speech: Path, tmp_path: Path
) -> None:
    alice, bob = fleet["alice"], fleet["bob"]
    seconds = len(read_pcm(speech)) / RATE
    recording = tmp_path / "bob-heard.wav"
    cli = [
        sys.executable,
        "-m",
        "anonsip.cli",
        "--home",
        str(alice.home),
        "call",
        "bob",
        "--play",
        str(speech),
        "--seconds",
        str(round(seconds + 4, 1)),
    ]
    async with bob.client() as client:
        await client.subscribe()
        async with trio.open_nursery() as nursery:
            done: dict[str, subprocess.CompletedProcess[bytes]] = {}

            async def run_cli() -> None:
                done["cli"] = await trio.run_process(cli, capture_stdout=True, check=False)

            nursery.start_soon(run_cli)
            ringing = await wait_event(client, call_state("ringing"))
            assert ringing["peer"] == alice.address
            assert ringing["direction"] == "in"
            await client.call("answer", call_id=ringing["call_id"], record=str(recording))
            ended = await wait_event(client, call_state("ended", ringing["call_id"]))
        assert ended["reason"] == "remote-hung-up"
        assert ended["stats"]["played_frames"] > 50 * seconds
    out = done["cli"].stdout.decode()
    assert done["cli"].returncode == 0, out
    lines = out.splitlines()
    assert lines[:3] == ["calling", "ringing", "active"], out
    assert "ended: hung-up" in out
    assert any(line.startswith("stats: round trip") for line in lines), out
    reference = read_pcm(speech)
    whole = read_pcm(recording)
    assert first_100_ms_heard(reference, whole), "the start of the speech was lost"
    untrimmed = pesq(RATE, reference.astype(np.float32), whole.astype(np.float32), "wb")
    assert untrimmed >= 3.5, f"PESQ-WB {untrimmed:.2f} untrimmed; call stats {ended['stats']}"
    heard = aligned(reference, whole)
    score = pesq(RATE, reference.astype(np.float32), heard.astype(np.float32), "wb")
    assert score >= 3.5, f"PESQ-WB {score:.2f}; call stats {ended['stats']}"


async def _ring(
    caller: NodeProcess,
    callee: NodeProcess,
    c_caller: TrioControlClient,
    c_callee: TrioControlClient,
) -> str:
    result = await c_caller.call("call", peer=callee.address, record="/dev/null")
    call_id = str(result["call_id"])
    await wait_event(c_callee, call_state("ringing", call_id))
    await wait_event(c_caller, call_state("ringing", call_id))
    return call_id


@pytest.mark.parametrize("direction", ["alice->bob", "bob->alice"])
@pytest.mark.parametrize(
    ("action", "caller_reason", "callee_reason"),
    [
        ("decline", "declined", "declined"),
        ("busy", "busy", "busy"),
        ("cancel", "cancelled", "remote-cancelled"),
        ("caller hangs up", "hung-up", "remote-hung-up"),
        ("callee hangs up", "remote-hung-up", "hung-up"),
    ],
)
async def test_call_outcomes(
    fleet: NodeFleet, direction: str, action: str, caller_reason: str, callee_reason: str
) -> None:
    first, second = direction.split("->")
    caller, callee = fleet[first], fleet[second]
    async with caller.client() as c_caller, callee.client() as c_callee:
        await c_caller.subscribe()
        await c_callee.subscribe()
        call_id = await _ring(caller, callee, c_caller, c_callee)
        if action in ("decline", "busy"):
            await c_callee.call("call.decline", call_id=call_id, busy=action == "busy")
        elif action == "cancel":
            await c_caller.call("hangup", call_id=call_id)
        else:
            await c_callee.call("answer", call_id=call_id, record="/dev/null")
            await wait_event(c_caller, call_state("active", call_id))
            await wait_event(c_callee, call_state("active", call_id))
            hanging = c_caller if action == "caller hangs up" else c_callee
            await hanging.call("hangup", call_id=call_id)
        ended_caller = await wait_event(c_caller, call_state("ended", call_id))
        ended_callee = await wait_event(c_callee, call_state("ended", call_id))
    assert ended_caller["reason"] == caller_reason
    assert ended_callee["reason"] == callee_reason
    assert await caller.call("calls") == []
    assert await callee.call("calls") == []


async def _streams_to(node: NodeProcess, peer_onion: str) -> set[str]:
    """Ids of the streams ``node``'s tor has open to the peer's onion service."""
    async with _control(node) as tor:
        streams = (await tor.control.get_info("stream-status"))["stream-status"]
    return {
        parts[0]
        for parts in (line.split() for line in streams.splitlines())
        if len(parts) >= 4 and parts[3].startswith(f"{peer_onion}.onion")
    }


def _control(node: NodeProcess) -> Any:
    port_file = (node.home / "tor" / "control.port").read_text().strip()
    host, _, port = port_file.removeprefix("PORT=").rpartition(":")
    return attach_tor(host, int(port))


async def _close_streams(node: NodeProcess, ids: set[str]) -> None:
    """CLOSESTREAM inside ``node``'s tor, all at once. A stream that ended since it
    was listed (a path our cut already broke, a failed redial) is what we wanted."""
    async with _control(node) as tor:
        for stream_id in sorted(ids):
            try:
                await tor.control.command("CLOSESTREAM", stream_id, "1")
            except ControlCommandError as exc:
                if exc.code != 552:  # "Unknown stream"
                    raise


async def test_media_paths_cut_in_tor_one_is_replaced_all_end_the_call(fleet: NodeFleet) -> None:
    alice, bob = fleet["alice"], fleet["bob"]
    bob_onion = (await bob.call("status"))["onion_address"].removesuffix(".onion")
    async with alice.client() as c_alice, bob.client() as c_bob:
        await c_alice.subscribe()
        await c_bob.subscribe()
        before = await _streams_to(alice, bob_onion)  # the SIP link, if alice dialled it
        call_id = await _ring(alice, bob, c_alice, c_bob)
        await c_bob.call("answer", call_id=call_id, record="/dev/null")
        await wait_event(c_alice, call_state("active", call_id))
        await wait_event(c_bob, lambda e: e.event == "call.stats" and e.data["call_id"] == call_id)
        paths = await _streams_to(alice, bob_onion) - before
        assert len(paths) == 2, f"expected two media paths, tor has {paths}"
        # One path cut: the call goes on, and the caller dials a replacement.
        async with _control(alice) as tor, tor.control.events("STREAM") as stream_events:
            await _close_streams(alice, {min(paths, key=int)})
            with trio.fail_after(CALL_TIMEOUT):
                async for event in stream_events:
                    parts = event.args.split()
                    if (
                        len(parts) >= 4
                        and parts[1] == "SUCCEEDED"
                        and parts[3].startswith(f"{bob_onion}.onion")
                    ):
                        break
        for node in (alice, bob):
            (live,) = await node.call("calls")
            assert live["state"] == "active"
        # Every path cut at once: the call ends on both sides with a BYE.
        await _close_streams(alice, await _streams_to(alice, bob_onion) - before)
        ended_alice = await wait_event(c_alice, call_state("ended", call_id))
        ended_bob = await wait_event(c_bob, call_state("ended", call_id))
    reasons = {ended_alice["reason"], ended_bob["reason"]}
    assert "media-failed" in reasons, reasons
    assert reasons <= {"media-failed", "remote-hung-up"}
    # The SIP link survived the cut: a new call still works at once.
    async with alice.client() as c_alice, bob.client() as c_bob:
        await c_alice.subscribe()
        await c_bob.subscribe()
        call_id = await _ring(alice, bob, c_alice, c_bob)
        await c_alice.call("hangup", call_id=call_id)
        await wait_event(c_bob, call_state("ended", call_id))
