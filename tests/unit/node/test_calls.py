"""Two CallServices joined by real PeerLinks (Noise sessions over memory streams).

Each media stream is an in-memory pair handed to the callee's media handler,
as the node's onion service would. Time is trio's autojump clock.
"""

from __future__ import annotations

import math
import random
import wave
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import trio
import trio.testing
from hypothesis import given
from hypothesis import strategies as st

from anonsip._errors import LocalError, RemoteProtocolError
from anonsip.identity import Address, Identity
from anonsip.node import Session
from anonsip.node._calls import (
    TOKEN_BYTES,
    CallService,
    CallSettings,
    _sipfrag_status,
    media_token,
)
from anonsip.node._link import PeerLink
from anonsip.node._links import sip_uri
from anonsip.sip import SipEndpoint, SipEvent

RATE = 16000


def _rng(seed: int) -> Callable[[int], bytes]:
    r = random.Random(seed)
    return lambda n: r.randbytes(n)


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


class Recorder:
    """Published events, and a way to wait for one without polling."""

    def __init__(self) -> None:
        self.events: list[tuple[str, dict[str, Any]]] = []
        self._changed = trio.Event()

    def __call__(self, event: str, data: dict[str, Any]) -> None:
        self.events.append((event, data))
        self._changed.set()
        self._changed = trio.Event()

    def calls(self, state: str | None = None, call_id: str | None = None) -> list[dict[str, Any]]:
        return [
            d
            for e, d in self.events
            if e == "call"
            and (state is None or d["state"] == state)
            and (call_id is None or d["call_id"] == call_id)
        ]

    async def wait_call(
        self, state: str, call_id: str | None = None, timeout: float = 60
    ) -> dict[str, Any]:
        with trio.fail_after(timeout):
            while True:
                found = self.calls(state, call_id)
                if found:
                    return found[-1]
                await self._changed.wait()

    async def wait_event(self, name: str, timeout: float = 60) -> dict[str, Any]:
        with trio.fail_after(timeout):
            while True:
                found = [d for e, d in self.events if e == name]
                if found:
                    return found[-1]
                await self._changed.wait()


@dataclass
class Side:
    identity: Identity
    recorder: Recorder = field(default_factory=Recorder)
    service: CallService | None = None
    link: PeerLink | None = None
    media_streams: list[trio.testing.MemoryStreamPair] = field(default_factory=list)
    scope: trio.CancelScope = field(default_factory=trio.CancelScope)

    async def run_service(self, *, task_status: trio.TaskStatus[None]) -> None:
        with self.scope:
            await self.calls.run(task_status=task_status)

    @property
    def calls(self) -> CallService:
        assert self.service is not None
        return self.service

    @property
    def address(self) -> str:
        return self.identity.address.text


class _Dialer:
    """The peer's link, and media streams handed straight to the peer's media handler."""

    def __init__(self, me: Side, peer: Side, nursery: trio.Nursery) -> None:
        self.me, self.peer, self.nursery = me, peer, nursery
        self.media_opened = 0

    async def link_to(self, peer: bytes) -> PeerLink:
        assert self.me.link is not None
        assert peer == self.peer.identity.public_key
        return self.me.link

    async def open_media(self, peer: bytes) -> trio.abc.Stream:
        ours, theirs = trio.testing.memory_stream_pair()
        self.me.media_streams.append((ours, theirs))
        self.media_opened += 1
        self.nursery.start_soon(self.peer.calls.on_media, theirs)
        return ours


@asynccontextmanager
async def call_pair(
    settings_a: CallSettings | None = None,
    settings_b: CallSettings | None = None,
    *,
    b_accepts: bool = True,
) -> AsyncIterator[tuple[Side, Side]]:
    a = Side(Identity.generate("alice", rng=_rng(1)))
    b = Side(Identity.generate("bob", rng=_rng(2)))
    a_stream, b_stream = trio.testing.memory_stream_pair()
    sessions: dict[str, Session] = {}

    async def accept() -> None:
        sessions["b"] = await Session.accept(b_stream, b.identity, rng=_rng(3))

    async with trio.open_nursery() as nursery:
        async with trio.open_nursery() as handshake:
            handshake.start_soon(accept)
            sessions["a"] = await Session.connect(
                a_stream, a.identity, b.identity.public_key, rng=_rng(4)
            )

        def incoming(side: Side) -> Callable[[PeerLink, SipEvent], Any]:
            async def handle(link: PeerLink, event: SipEvent) -> None:
                await side.calls.on_sip(link, event)

            return handle

        for side, peer, key, settings in (
            (a, b, "a", settings_a),
            (b, a, "b", settings_b),
        ):
            endpoint = SipEndpoint(
                local_aor=sip_uri(side.identity.public_key),
                peer_aor=sip_uri(peer.identity.public_key),
                rng=_rng(10 + len(key)) if key == "a" else _rng(20),
            )
            side.link = PeerLink(sessions[key], endpoint, incoming(side))
            side.service = CallService(
                dialer=_Dialer(side, peer, nursery),
                publish=side.recorder,
                own_public_key=side.identity.public_key,
                settings=settings,
                accepts=(lambda _address: b_accepts) if side is b else (lambda _address: True),
                rng=random.Random(7 if side is a else 8),
                wall_clock=trio.current_time,
            )
            await nursery.start(side.run_service)
            await nursery.start(side.link.run)
        yield a, b
        nursery.cancel_scope.cancel()


async def _ring(a: Side, b: Side, tmp_path: Path, seconds: float = 8.0) -> tuple[str, str]:
    """A calls B with a tone; returns (A's call id, B's call id) once B rings."""
    tone = _tone(tmp_path / "tone.wav", seconds)
    result = await a.calls.op_call({"peer": b.address, "play": str(tone)})
    ringing = await b.recorder.wait_call("ringing")
    assert ringing["direction"] == "in"
    assert ringing["peer"] == a.address
    await a.recorder.wait_call("ringing")  # the 180 arrived
    return result["call_id"], ringing["call_id"]


@pytest.mark.parametrize("hangs_up", ["caller", "callee"])
async def test_answered_call_carries_audio_and_ends_on_both_sides(
    autojump_clock: trio.testing.MockClock, tmp_path: Path, hangs_up: str
) -> None:
    async with call_pair() as (a, b):
        a_id, b_id = await _ring(a, b, tmp_path)
        assert a_id == b_id  # the local id is the SIP Call-ID
        record = tmp_path / "heard.wav"
        await b.calls.op_answer({"record": str(record)})
        await a.recorder.wait_call("active")
        await b.recorder.wait_call("active")
        await trio.sleep(4)
        stats = await a.recorder.wait_event("call.stats")
        assert {"round_trip_ms", "jitter_ms", "playout_delay_ms", "concealed_frames", "mos"} <= set(
            stats
        )
        live = await b.calls.op_calls({})
        assert live[0]["state"] == "active"
        assert live[0]["stats"]["received_frames"] > 100
        first, second = (a, b) if hangs_up == "caller" else (b, a)
        await first.calls.op_hangup({})
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
    async with call_pair(settings_b=settings) as (a, b):
        a_heard = tmp_path / "a-heard.wav"
        tone = _tone(tmp_path / "tone.wav", 3.0)
        await a.calls.op_call(
            {"peer": b.address, "play": str(tone), "record": str(a_heard), "seconds": 3}
        )
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
    async with call_pair() as (a, b):
        await _ring(a, b, tmp_path)
        await b.calls.op_decline({"busy": busy})
        assert (await a.recorder.wait_call("ended"))["reason"] == reason
        assert (await b.recorder.wait_call("ended"))["reason"] == reason


async def test_caller_gives_up_while_ringing(
    autojump_clock: trio.testing.MockClock, tmp_path: Path
) -> None:
    async with call_pair() as (a, b):
        await _ring(a, b, tmp_path)
        await a.calls.op_hangup({})
        assert (await a.recorder.wait_call("ended"))["reason"] == "cancelled"
        assert (await b.recorder.wait_call("ended"))["reason"] == "remote-cancelled"
        with pytest.raises(LocalError, match="no call is ringing"):
            await b.calls.op_answer({})


async def test_ring_timeout_ends_both_sides(
    autojump_clock: trio.testing.MockClock, tmp_path: Path
) -> None:
    async with call_pair(settings_b=CallSettings(ring_timeout_s=5)) as (a, b):
        await _ring(a, b, tmp_path)
        assert (await b.recorder.wait_call("ended"))["reason"] == "no-answer"
        assert (await a.recorder.wait_call("ended"))["reason"] == "no-answer"


async def test_strangers_cannot_ring(
    autojump_clock: trio.testing.MockClock, tmp_path: Path
) -> None:
    async with call_pair(b_accepts=False) as (a, b):
        await a.calls.op_call({"peer": b.address, "play": str(_tone(tmp_path / "t.wav", 1))})
        ended = await a.recorder.wait_call("ended")
        assert ended["reason"] == "failed"
        assert b.recorder.calls() == []


async def test_calls_beyond_the_limit_get_busy(
    autojump_clock: trio.testing.MockClock, tmp_path: Path
) -> None:
    async with call_pair(settings_b=CallSettings(max_calls=1)) as (a, b):
        await _ring(a, b, tmp_path)
        second = await a.calls.op_call({"peer": b.address, "play": str(tmp_path / "tone.wav")})
        ended = await a.recorder.wait_call("ended", second["call_id"])
        assert ended["reason"] == "busy"
        assert len(b.calls.calls()) == 1


@pytest.mark.parametrize("breaks", ["caller", "callee"])
async def test_broken_media_stream_ends_the_call_with_bye(
    autojump_clock: trio.testing.MockClock, tmp_path: Path, breaks: str
) -> None:
    async with call_pair() as (a, b):
        await _ring(a, b, tmp_path, seconds=20)
        await b.calls.op_answer({"record": str(tmp_path / "r.wav")})
        await a.recorder.wait_call("active")
        await b.recorder.wait_call("active")
        await trio.sleep(2)
        ours, theirs = a.media_streams[0]
        await trio.aclose_forcefully(ours if breaks == "caller" else theirs)
        ended_a = await a.recorder.wait_call("ended")
        ended_b = await b.recorder.wait_call("ended")
        reasons = {ended_a["reason"], ended_b["reason"]}
        assert reasons <= {"media-failed", "remote-hung-up"}
        assert "media-failed" in reasons
        # Both dialogs are gone: the BYE went through the SIP link.
        assert a.link is not None
        assert b.link is not None
        assert a.link.endpoint.statistics()["dialogs"] == 0
        assert b.link.endpoint.statistics()["dialogs"] == 0


async def test_hold_and_resume_and_mute(
    autojump_clock: trio.testing.MockClock, tmp_path: Path
) -> None:
    async with call_pair() as (a, b):
        await _ring(a, b, tmp_path, seconds=30)
        await b.calls.op_answer({"record": str(tmp_path / "r.wav")})
        await a.recorder.wait_call("active")
        await a.calls.op_hold({"held": True})
        held_b = await b.recorder.wait_call("held")
        assert held_b["held"] is True
        await a.recorder.wait_call("held")
        await a.calls.op_hold({"held": False})
        await trio.sleep(1)
        assert b.recorder.calls()[-1]["state"] == "active"
        await a.calls.op_mute({"muted": True})
        assert a.recorder.calls()[-1]["muted"] is True
        with pytest.raises(LocalError):
            await a.calls.op_answer({})
        await a.calls.op_hangup({})
        await b.recorder.wait_call("ended")


async def test_media_stream_with_unknown_token_is_closed(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with call_pair() as (_a, b):
        ours, theirs = trio.testing.memory_stream_pair()
        async with trio.open_nursery() as nursery:
            nursery.start_soon(b.calls.on_media, theirs)
            await ours.send_all(bytes(TOKEN_BYTES))
            assert await ours.receive_some(100) == b""


async def test_media_token_is_the_same_on_both_ends_and_per_call(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with call_pair() as (a, b):
        assert a.link is not None
        assert b.link is not None
        assert media_token(a.link, "x") == media_token(b.link, "x")
        assert media_token(a.link, "x") != media_token(a.link, "y")
        assert len(media_token(a.link, "x")) == TOKEN_BYTES


async def test_call_needs_an_address(autojump_clock: trio.testing.MockClock) -> None:
    async with call_pair() as (a, _b):
        with pytest.raises(LocalError, match="not an address"):
            await a.calls.op_call({"peer": "nobody", "play": "/nonexistent.wav"})
        with pytest.raises(LocalError, match="own address"):
            await a.calls.op_call(
                {"peer": Address(a.identity.public_key).text, "record": "/tmp/x.wav"}
            )
        with pytest.raises(LocalError, match="cannot read WAV"):
            await a.calls.op_call({"peer": _b.address, "play": "/nonexistent.wav"})


def test_sipfrag_status_line() -> None:
    assert _sipfrag_status(b"SIP/2.0 200 OK\r\n") == (200, "OK")
    assert _sipfrag_status(b"SIP/2.0 100 Trying") == (100, "Trying")
    body = b"SIP/2.0 486 Busy Here\r\n"
    for cut in range(len(b"SIP/2.0 486")):
        with pytest.raises(RemoteProtocolError):
            _sipfrag_status(body[:cut])
    for bad in (b"SIP/2.0 99 x", b"SIP/3.0 200 OK", b"SIP/2.0 2000 OK", b"x" * 300):
        with pytest.raises(RemoteProtocolError):
            _sipfrag_status(bad)


@given(st.binary(max_size=400))
def test_sipfrag_raises_only_remote_errors(data: bytes) -> None:
    try:
        status, reason = _sipfrag_status(data)
    except RemoteProtocolError:
        return
    assert 100 <= status <= 699
    assert len(reason) <= 64


def _rms_of(path: Path, start_s: float, end_s: float) -> float:
    with wave.open(str(path), "rb") as w:
        pcm = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2").astype(np.float64)
    piece = pcm[int(start_s * RATE) : int(end_s * RATE)]
    return float(np.sqrt(np.mean(piece * piece))) if len(piece) else 0.0


async def test_hold_silences_the_holder_too(
    autojump_clock: trio.testing.MockClock, tmp_path: Path
) -> None:
    record = tmp_path / "b-heard.wav"
    async with call_pair() as (a, b):
        await _ring(a, b, tmp_path, seconds=30)
        await b.calls.op_answer({"record": str(record)})
        await a.recorder.wait_call("active")
        await trio.sleep(3)
        await a.calls.op_hold({"held": True})
        await b.recorder.wait_call("held")
        await trio.sleep(3)
        await a.calls.op_hangup({})
        await b.recorder.wait_call("ended")
    assert _rms_of(record, 0.5, 2.5) > 1000  # the tone before the hold
    with wave.open(str(record), "rb") as w:
        total = w.getnframes() / RATE
    assert _rms_of(record, total - 1.5, total) < 50  # nothing of the holder's microphone after it


async def test_stopping_the_node_hangs_up_its_calls(
    autojump_clock: trio.testing.MockClock, tmp_path: Path
) -> None:
    async with call_pair() as (a, b):
        await _ring(a, b, tmp_path)
        await b.calls.op_answer({"record": str(tmp_path / "r.wav")})
        await b.recorder.wait_call("active")
        a.scope.cancel()  # the node shuts down: its call service says goodbye
        assert (await b.recorder.wait_call("ended"))["reason"] == "remote-hung-up"
        assert (await a.recorder.wait_call("ended"))["state"] == "ended"
