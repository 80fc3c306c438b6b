"""Two call services on nodes in memory (real Noise sessions and SIP links, no tor).

Each media stream is an in-memory pair handed to the callee's media
service, as the node's onion service would. Control operations go through
the schema, as a client's would. Time is trio's autojump clock.
"""

from __future__ import annotations

import math
import random
import wave
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import numpy as np
import pytest
import trio
import trio.testing
from pesq import pesq

from anonsip._errors import LocalError
from anonsip.call import MediaPreferences
from anonsip.control import BadArguments
from anonsip.media.io import CallAudio, MemorySink, SilenceSource
from anonsip.node._call_media import TOKEN_BYTES, media_context, media_keys, media_token
from anonsip.node._calls import CallService, CallSettings
from anonsip.store import ContactState
from tests.unit.media.conftest import LiveSource, first_100_ms_heard, make_speech, read_pcm
from tests.unit.node.mesh import MemoryNode, Mesh

RATE = 16000


def _tone(path: Path, seconds: float, hz: float = 440.0) -> Path:
    t = np.arange(int(seconds * RATE)) / RATE
    pcm = (8000 * np.sin(2 * math.pi * hz * t)).astype("<i2")
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(RATE)
        w.writeframes(pcm.tobytes())
    return path


def _rms(path: Path) -> float:
    with wave.open(str(path), "rb") as w:
        pcm = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2").astype(np.float64)
    return float(np.sqrt(np.mean(pcm * pcm))) if len(pcm) else 0.0


class Side:
    """A node with only the call service, as tests speak of it."""

    def __init__(self, node: MemoryNode, settings: CallSettings | None, seed: int) -> None:
        self.node = node
        self.calls = CallService(
            node.context, settings=settings, wall_clock=trio.current_time, rng=random.Random(seed)
        )
        node.use([self.calls])
        self.recorder = node.recorder
        self.address = node.address
        self.identity = node.identity

    async def op(self, name: str, **args: object) -> object:
        return await self.node.op(name, **args)


@asynccontextmanager
async def call_pair(
    settings_a: CallSettings | None = None,
    settings_b: CallSettings | None = None,
    *,
    b_accepts: bool = True,
    tmp: Path,
) -> AsyncIterator[tuple[Side, Side]]:
    async with trio.open_nursery() as nursery:
        mesh = Mesh(nursery, tmp, clock=trio.current_time)
        a = Side(mesh.add("alice", 1), settings_a, 7)
        b = Side(mesh.add("bob", 2), settings_b, 8)
        a.node.befriend(b.node)
        if b_accepts:
            b.node.befriend(a.node)
        a.mesh = b.mesh = mesh  # type: ignore[attr-defined]
        await mesh.start(a.node)
        await mesh.start(b.node)
        yield a, b
        nursery.cancel_scope.cancel()


async def _ring(a: Side, b: Side, tmp_path: Path, seconds: float = 8.0) -> tuple[str, str]:
    """A calls B with a tone; returns (A's call id, B's call id) once B rings."""
    tone = _tone(tmp_path / "tone.wav", seconds)
    result = await a.op("call", peer=b.address, play=str(tone))
    ringing = await b.recorder.wait_call("ringing")
    assert ringing["direction"] == "in"
    assert ringing["peer"] == a.address
    await a.recorder.wait_call("ringing")  # the 180 arrived
    return result["call_id"], ringing["call_id"]


@pytest.mark.parametrize("hangs_up", ["caller", "callee"])
async def test_answered_call_carries_audio_and_ends_on_both_sides(
    autojump_clock: trio.testing.MockClock, tmp_path: Path, hangs_up: str
) -> None:
    async with call_pair(tmp=tmp_path) as (a, b):
        a_id, b_id = await _ring(a, b, tmp_path)
        assert a_id == b_id  # the local id is the SIP Call-ID
        record = tmp_path / "heard.wav"
        await b.op("answer", record=str(record))
        await a.recorder.wait_call("active")
        await b.recorder.wait_call("active")
        await trio.sleep(4)
        stats = await a.recorder.wait_event("call.stats")
        assert {"round_trip_ms", "jitter_ms", "playout_delay_ms", "concealed_frames", "mos"} <= set(
            stats
        )
        live = await b.op("calls")
        assert live[0]["state"] == "active"
        assert live[0]["stats"]["received_frames"] > 100
        first, second = (a, b) if hangs_up == "caller" else (b, a)
        await first.op("hangup")
        ended_first = await first.recorder.wait_call("ended")
        ended_second = await second.recorder.wait_call("ended")
        assert ended_first["reason"] == "hung-up"
        assert ended_second["reason"] == "remote-hung-up"
        assert ended_first["stats"]["played_frames"] > 0
        assert a.calls.calls() == []
        assert b.calls.calls() == []
    assert _rms(record) > 1000  # the tone got through (silence would be 0)


async def test_auto_answer_plays_and_records(
    autojump_clock: trio.testing.MockClock, tmp_path: Path
) -> None:
    record = tmp_path / "b-heard.wav"
    reply = _tone(tmp_path / "reply.wav", 2.0, hz=880)
    settings = CallSettings(auto_answer=True, play=reply, record=record)
    async with call_pair(tmp=tmp_path, settings_b=settings) as (a, b):
        a_heard = tmp_path / "a-heard.wav"
        tone = _tone(tmp_path / "tone.wav", 3.0)
        await a.op("call", peer=b.address, play=str(tone), record=str(a_heard), seconds=3)
        await a.recorder.wait_call("active")
        ended = await b.recorder.wait_call("ended")
        assert ended["reason"] == "remote-hung-up"
        await a.recorder.wait_call("ended")
    assert _rms(record) > 1000
    assert _rms(a_heard) > 1000


@pytest.mark.parametrize(("busy", "reason"), [(False, "declined"), (True, "busy")])
async def test_decline_and_busy(
    autojump_clock: trio.testing.MockClock, tmp_path: Path, busy: bool, reason: str
) -> None:
    async with call_pair(tmp=tmp_path) as (a, b):
        await _ring(a, b, tmp_path)
        await b.op("call.decline", busy=busy)
        assert (await a.recorder.wait_call("ended"))["reason"] == reason
        assert (await b.recorder.wait_call("ended"))["reason"] == reason


async def test_caller_gives_up_while_ringing(
    autojump_clock: trio.testing.MockClock, tmp_path: Path
) -> None:
    async with call_pair(tmp=tmp_path) as (a, b):
        await _ring(a, b, tmp_path)
        await a.op("hangup")
        assert (await a.recorder.wait_call("ended"))["reason"] == "cancelled"
        assert (await b.recorder.wait_call("ended"))["reason"] == "remote-cancelled"
        with pytest.raises(LocalError, match="no call is ringing"):
            await b.op("answer")


async def test_ring_timeout_ends_both_sides(
    autojump_clock: trio.testing.MockClock, tmp_path: Path
) -> None:
    async with call_pair(tmp=tmp_path, settings_b=CallSettings(ring_timeout_s=5)) as (a, b):
        await _ring(a, b, tmp_path)
        assert (await b.recorder.wait_call("ended"))["reason"] == "no-answer"
        assert (await a.recorder.wait_call("ended"))["reason"] == "no-answer"


async def test_strangers_cannot_ring(
    autojump_clock: trio.testing.MockClock, tmp_path: Path
) -> None:
    async with call_pair(tmp=tmp_path, b_accepts=False) as (a, b):
        await a.op("call", peer=b.address, play=str(_tone(tmp_path / "t.wav", 1)))
        ended = await a.recorder.wait_call("ended")
        assert ended["reason"] == "failed"
        assert b.recorder.calls() == []


async def test_calls_beyond_the_limit_get_busy(
    autojump_clock: trio.testing.MockClock, tmp_path: Path
) -> None:
    async with call_pair(tmp=tmp_path, settings_b=CallSettings(max_calls=1)) as (a, b):
        await _ring(a, b, tmp_path)
        second = await a.op("call", peer=b.address, play=str(tmp_path / "tone.wav"))
        ended = await a.recorder.wait_call("ended", second["call_id"])
        assert ended["reason"] == "busy"
        assert len(b.calls.calls()) == 1


@pytest.mark.parametrize("breaks", ["caller", "callee"])
async def test_when_every_media_path_breaks_the_call_ends_with_bye(
    autojump_clock: trio.testing.MockClock, tmp_path: Path, breaks: str
) -> None:
    async with call_pair(tmp=tmp_path) as (a, b):
        await _ring(a, b, tmp_path, seconds=20)
        await b.op("answer", record=str(tmp_path / "r.wav"))
        await a.recorder.wait_call("active")
        await b.recorder.wait_call("active")
        await trio.sleep(2)
        a.mesh.down.add(b.node.key)  # type: ignore[attr-defined]  # no replacement gets through
        for ours, theirs in list(a.mesh.media):  # type: ignore[attr-defined]
            await trio.aclose_forcefully(ours if breaks == "caller" else theirs)
        ended_a = await a.recorder.wait_call("ended")
        ended_b = await b.recorder.wait_call("ended")
        reasons = {ended_a["reason"], ended_b["reason"]}
        assert reasons <= {"media-failed", "remote-hung-up"}
        assert "media-failed" in reasons
        # Both dialogs are gone: the BYE went through the SIP link.
        assert a.node.links[b.node.key].endpoint.statistics()["dialogs"] == 0
        assert b.node.links[a.node.key].endpoint.statistics()["dialogs"] == 0


@pytest.mark.parametrize("breaks", ["caller", "callee"])
async def test_a_broken_media_path_is_replaced_and_the_call_goes_on(
    autojump_clock: trio.testing.MockClock, tmp_path: Path, breaks: str
) -> None:
    record = tmp_path / "heard.wav"
    async with call_pair(tmp=tmp_path) as (a, b):
        await _ring(a, b, tmp_path, seconds=20)
        media = a.mesh.media  # type: ignore[attr-defined]
        assert len(media) == 2  # both paths were dialled while it rang
        await b.op("answer", record=str(record))
        await a.recorder.wait_call("active")
        await b.recorder.wait_call("active")
        await trio.sleep(2)
        ours, theirs = media[0]
        await trio.aclose_forcefully(ours if breaks == "caller" else theirs)
        await trio.sleep(4)
        assert len(media) == 3  # the caller dialled a replacement, path number 2
        for side in (a, b):
            (live,) = await side.op("calls")
            assert live["state"] == "active"
        await a.op("hangup")
        assert (await a.recorder.wait_call("ended"))["reason"] == "hung-up"
        assert (await b.recorder.wait_call("ended"))["reason"] == "remote-hung-up"
    assert _rms_of(record, 2.5, 5.5) > 1000  # the tone went on across the break


async def test_hold_and_resume_and_mute(
    autojump_clock: trio.testing.MockClock, tmp_path: Path
) -> None:
    async with call_pair(tmp=tmp_path) as (a, b):
        await _ring(a, b, tmp_path, seconds=30)
        await b.op("answer", record=str(tmp_path / "r.wav"))
        await a.recorder.wait_call("active")
        await a.op("call.hold", held=True)
        held_b = await b.recorder.wait_call("held")
        assert held_b["held"] is True
        await a.recorder.wait_call("held")
        await a.op("call.hold", held=False)
        await trio.sleep(1)
        assert b.recorder.calls()[-1]["state"] == "active"
        await a.op("call.mute", muted=True)
        assert a.recorder.calls()[-1]["muted"] is True
        with pytest.raises(LocalError):
            await a.op("answer")
        await a.op("hangup")
        await b.recorder.wait_call("ended")


async def test_media_stream_with_unknown_token_is_closed(
    autojump_clock: trio.testing.MockClock, tmp_path: Path
) -> None:
    async with call_pair(tmp=tmp_path) as (_a, b):
        ours, theirs = trio.testing.memory_stream_pair()
        async with trio.open_nursery() as nursery:
            nursery.start_soon(b.calls.on_media, theirs)
            await ours.send_all(bytes(TOKEN_BYTES))
            assert await ours.receive_some(100) == b""


async def test_media_token_and_keys_are_shared_per_call_and_mix_the_callees_choice(
    autojump_clock: trio.testing.MockClock, tmp_path: Path
) -> None:
    async with call_pair(tmp=tmp_path) as (a, b):
        link_a = await a.node.link_to(b.node.key)
        link_b = b.node.links[a.node.key]
        same = media_context("call-1", "tag-1")
        assert media_token(link_a.session, same) == media_token(link_b.session, same)
        assert len(media_token(link_a.session, same)) == TOKEN_BYTES
        keys_a, keys_b = (
            media_keys(link_a, same, caller=True),
            media_keys(link_b, same, caller=False),
        )
        assert (keys_a.send, keys_a.receive) == (keys_b.receive, keys_b.send)
        # A caller reusing a Call-ID meets a new To tag of the callee: new token, new keys.
        again = media_context("call-1", "tag-2")
        assert media_token(link_a.session, again) != media_token(link_a.session, same)
        assert media_keys(link_a, again, caller=True) != media_keys(link_a, same, caller=True)


async def test_call_needs_an_address(
    autojump_clock: trio.testing.MockClock, tmp_path: Path
) -> None:
    async with call_pair(tmp=tmp_path) as (a, b):
        with pytest.raises(LocalError, match="neither a contact's name nor an address"):
            await a.op("call", peer="nobody", play="/nonexistent.wav")
        with pytest.raises(LocalError, match="own address"):
            await a.op("call", peer=a.address, record=str(tmp_path / "x.wav"))
        with pytest.raises(LocalError, match="cannot read WAV"):
            await a.op("call", peer=b.address, play="/nonexistent.wav")
        with pytest.raises(BadArguments, match="peer"):
            await a.op("call", play="x.wav")


def _rms_of(path: Path, start_s: float, end_s: float) -> float:
    with wave.open(str(path), "rb") as w:
        pcm = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2").astype(np.float64)
    piece = pcm[int(start_s * RATE) : int(end_s * RATE)]
    return float(np.sqrt(np.mean(piece * piece))) if len(piece) else 0.0


async def test_hold_silences_the_holder_too(
    autojump_clock: trio.testing.MockClock, tmp_path: Path
) -> None:
    record = tmp_path / "b-heard.wav"
    async with call_pair(tmp=tmp_path) as (a, b):
        await _ring(a, b, tmp_path, seconds=30)
        await b.op("answer", record=str(record))
        await a.recorder.wait_call("active")
        await trio.sleep(3)
        await a.op("call.hold", held=True)
        await b.recorder.wait_call("held")
        await trio.sleep(3)
        await a.op("hangup")
        await b.recorder.wait_call("ended")
    assert _rms_of(record, 0.5, 2.5) > 1000  # the tone before the hold
    with wave.open(str(record), "rb") as w:
        total = w.getnframes() / RATE
    assert _rms_of(record, total - 1.5, total) < 50  # nothing of the holder's microphone after it


async def test_stopping_the_node_hangs_up_its_calls(
    autojump_clock: trio.testing.MockClock, tmp_path: Path
) -> None:
    async with call_pair(tmp=tmp_path) as (a, b):
        await _ring(a, b, tmp_path)
        await b.op("answer", record=str(tmp_path / "r.wav"))
        await b.recorder.wait_call("active")
        await a.mesh.stop(a.node)  # type: ignore[attr-defined]  # the node shuts down
        assert (await b.recorder.wait_call("ended"))["reason"] == "remote-hung-up"
        assert (await a.recorder.wait_call("ended"))["state"] == "ended"


@asynccontextmanager
async def call_trio(tmp: Path) -> AsyncIterator[tuple[Side, Side, Side]]:
    """alice calls bob; carol is bob's contact (and alice's), the transfer target."""
    async with trio.open_nursery() as nursery:
        mesh = Mesh(nursery, tmp, clock=trio.current_time)
        a = Side(mesh.add("alice", 1), None, 7)
        b = Side(mesh.add("bob", 2), None, 8)
        c = Side(mesh.add("carol", 3), None, 9)
        for x, y in ((a, b), (b, a), (b, c), (c, b), (a, c)):
            x.node.befriend(y.node)
        for side in (a, b, c):
            side.mesh = mesh  # type: ignore[attr-defined]
            await mesh.start(side.node)
        yield a, b, c
        nursery.cancel_scope.cancel()


async def _answered(a: Side, b: Side, tmp_path: Path) -> None:
    await _ring(a, b, tmp_path, seconds=30)
    await b.op("answer", record=str(tmp_path / "b.wav"))
    await a.recorder.wait_call("active")
    await b.recorder.wait_call("active")


async def test_a_transfer_waits_for_consent_then_keeps_the_microphone_muted(
    autojump_clock: trio.testing.MockClock, tmp_path: Path
) -> None:
    async with call_trio(tmp_path) as (a, b, c):
        await _answered(a, b, tmp_path)
        await b.op("call.mute", muted=True)
        await a.op("call.transfer", target=c.address)
        asked = await b.recorder.wait_for("call", lambda d: d["transfer_to"] == c.address)
        assert asked["state"] == "active"
        assert c.recorder.calls() == []  # nothing happens before the user agrees
        await b.op("call.transfer_answer", accept=True)
        ringing = await c.recorder.wait_call("ringing")
        assert ringing["peer"] == b.address
        new_call = [d for d in b.recorder.calls() if d["peer"] == c.address]
        assert new_call
        assert new_call[-1]["muted"] is True  # muted stays muted on the new leg


@pytest.mark.parametrize("how", ["refused", "ignored"])
async def test_a_transfer_the_user_does_not_allow_is_refused(
    autojump_clock: trio.testing.MockClock, tmp_path: Path, how: str
) -> None:
    async with call_trio(tmp_path) as (a, b, c):
        await _answered(a, b, tmp_path)
        await a.op("call.transfer", target=c.address)
        await b.recorder.wait_for("call", lambda d: d["transfer_to"] == c.address)
        if how == "refused":
            await b.op("call.transfer_answer", accept=False)
        report = await a.recorder.wait_for(
            "call", lambda d: (d["transfer"] or 0) >= 300, timeout=120
        )
        assert report["transfer"] == 603
        assert c.recorder.calls() == []
        assert (await b.recorder.wait_call("active"))["transfer_to"] == ""


async def test_a_transfer_to_a_stranger_is_refused_without_asking(
    autojump_clock: trio.testing.MockClock, tmp_path: Path
) -> None:
    async with call_trio(tmp_path) as (a, b, _c):
        stranger = Mesh.add(a.mesh, "mallory", 4)  # type: ignore[attr-defined]
        a.node.befriend(stranger)
        await _answered(a, b, tmp_path)
        await a.op("call.transfer", target=stranger.address)
        report = await a.recorder.wait_for("call", lambda d: (d["transfer"] or 0) >= 300)
        assert report["transfer"] == 403
        assert all(d["transfer_to"] == "" for d in b.recorder.calls())
        with pytest.raises(LocalError, match="no call asks"):
            await b.op("call.transfer_answer", accept=True)


async def test_the_calls_service_refuses_a_contact_state_it_does_not_know(
    autojump_clock: trio.testing.MockClock, tmp_path: Path
) -> None:
    """A requested (not yet accepted) contact may ring us, but is no transfer target."""
    async with call_trio(tmp_path) as (_a, b, c):
        b.node.store.set_state(c.address, ContactState.REQUESTED)
        assert b.calls.may_ring(c.address)
        assert not b.calls.may_transfer_to(c.address)
        assert not b.calls.may_transfer_to(b.address)


async def test_a_call_whose_session_ends_ends_at_once_saying_why(
    autojump_clock: trio.testing.MockClock, tmp_path: Path
) -> None:
    async with call_pair(tmp=tmp_path) as (a, b):
        await _ring(a, b, tmp_path, seconds=30)
        await b.op("answer", record=str(tmp_path / "r.wav"))
        await a.recorder.wait_call("active")
        await a.mesh.cut(a.node, b.node)  # type: ignore[attr-defined]  # the peer's tor died
        ended_a = await a.recorder.wait_call("ended", timeout=5)
        ended_b = await b.recorder.wait_call("ended", timeout=5)
        assert ended_a["reason"] == ended_b["reason"] == "connection-lost"


async def test_the_conversation_keeps_each_call(
    autojump_clock: trio.testing.MockClock, tmp_path: Path
) -> None:
    async with call_pair(tmp=tmp_path) as (a, b):
        await _ring(a, b, tmp_path, seconds=30)
        await b.op("answer", record=str(tmp_path / "r.wav"))
        await a.recorder.wait_call("active")
        await trio.sleep(5)
        await a.op("hangup")
        await b.recorder.wait_call("ended")
        second = await a.op("call", peer=b.address, play=str(tmp_path / "tone.wav"))
        await b.recorder.wait_call("ringing", second["call_id"])
        await a.op("hangup")  # gives up while it rings: a missed call for bob
        await b.recorder.wait_call("ended", second["call_id"])
        await trio.sleep(1)
        mine = [m for m in a.node.store.history(b.address) if m.kind == "call"]
        theirs = [m for m in b.node.store.history(a.address) if m.kind == "call"]
        unread = b.node.store.unread(a.address)
    assert [(m.direction.value, m.text) for m in mine] == [("out", "hung-up"), ("out", "cancelled")]
    assert 4 <= mine[0].duration_s <= 6
    assert [(m.direction.value, m.text) for m in theirs] == [
        ("in", "remote-hung-up"),
        ("in", "missed"),
    ]
    assert unread == 0  # calls are not unread messages


# -- nothing lost at the start of a call ------------------------------------------------


def _slow_media(node: MemoryNode, seconds: float) -> None:
    """Every media path takes ``seconds`` to open, as a new rendezvous circuit does."""
    fast = node.open_media

    async def open_media(peer: bytes) -> trio.abc.Stream:
        await trio.sleep(seconds)
        return await fast(peer)

    node.open_media = open_media  # type: ignore[method-assign]


@pytest.mark.parametrize("answer", ["after ringing", "auto-answer"])
async def test_the_first_100_ms_said_after_the_answer_reach_the_callee(
    autojump_clock: trio.testing.MockClock, tmp_path: Path, answer: str
) -> None:
    """The caller starts talking the moment the call is answered; its media paths
    take 0.6 s to open. The callee's recording still begins with the first word."""
    speech = make_speech(tmp_path / "hello.wav", text="Hello, can you hear me? This is Alice.")
    reference = read_pcm(speech)[1]
    record = tmp_path / "heard.wav"
    auto = answer == "auto-answer"
    settings_b = CallSettings(auto_answer=True, record=record) if auto else None
    async with call_pair(tmp=tmp_path, settings_b=settings_b) as (a, b):
        _slow_media(a.node, 0.6)
        mic = LiveSource(reference)
        audio = CallAudio(source=mic, sink=MemorySink(), description="a microphone")
        await a.calls.place_call(b.address, audio=audio)
        if not auto:
            await b.recorder.wait_call("ringing")
            await trio.sleep(1.5)  # the phone rings a while
            await b.op("answer", record=str(record))
        await a.recorder.wait_call("active")
        mic.start()  # "Hello, ..."
        await trio.sleep(reference.size / RATE + 1.5)
        await a.op("hangup")
        await b.recorder.wait_call("ended")
    heard = read_pcm(record)[1]
    assert first_100_ms_heard(reference, heard)
    assert pesq(RATE, reference.astype(np.float32), heard.astype(np.float32), "wb") >= 3.5


@pytest.mark.parametrize("fewer", ["callee", "caller"])
async def test_a_side_that_wants_one_path_gets_one(
    autojump_clock: trio.testing.MockClock, tmp_path: Path, fewer: str
) -> None:
    one = CallSettings(preferences=MediaPreferences(paths=1))
    settings = {"settings_a": one} if fewer == "caller" else {"settings_b": one}
    async with call_pair(tmp=tmp_path, **settings) as (a, b):
        await _ring(a, b, tmp_path, seconds=20)
        await b.op("answer", record=str(tmp_path / "r.wav"))
        await a.recorder.wait_call("active")
        await trio.sleep(2)
        for side in (a, b):
            (leg,) = side.calls.calls()
            assert leg.media is not None
            assert leg.media.open_paths == 1
        await a.op("hangup")
        assert (await b.recorder.wait_call("ended"))["reason"] == "remote-hung-up"


async def test_a_recording_that_cannot_be_written_ends_that_call_not_the_node(
    autojump_clock: trio.testing.MockClock, tmp_path: Path
) -> None:
    """The caller's sink fills (a disk full under ``--record``) a second into the call:
    the call ends on both sides with a reason, and both nodes go on (it once came out of
    the media pipeline's nursery as a group that took the whole node down)."""
    async with call_pair(tmp=tmp_path, settings_b=CallSettings(auto_answer=True)) as (a, b):
        full = MemorySink(max_bytes=50 * 640)  # one second of 16 kHz audio
        audio = CallAudio(source=SilenceSource(), sink=full, description="a full disk")
        await a.calls.place_call(b.address, audio=audio)
        await a.recorder.wait_call("active")
        ended_a = await a.recorder.wait_call("ended", timeout=10)
        assert "the in-memory audio sink is full" in ended_a["detail"]
        await b.recorder.wait_call("ended", timeout=40)
        assert a.calls.calls() == []
        # Both nodes still call.
        await _ring(a, b, tmp_path, seconds=2)
        await a.op("hangup")
        await b.recorder.wait_call("ended")
