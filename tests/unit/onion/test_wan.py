"""The WAN-shaped private network: the link model, its profiles, the forwarder, the torrc."""

from __future__ import annotations

import os
import random
import socket
import statistics
import struct
from pathlib import Path

import pytest
import trio
from hypothesis import given
from hypothesis import strategies as st

from onion._errors import TestnetError
from onion._torrc import authority_config, relay_config, render_torrc
from onion.testnet._linkshape import PROFILES, LinkDelay, LinkProfile, parse_profile
from onion.testnet._shaper import Route, ShaperConfig, main, serve_routes


def test_the_default_profile_puts_an_onion_circuit_near_a_quarter_second_one_way() -> None:
    tor = PROFILES["tor"]
    seven_links = 7 * tor.mean_one_way()
    assert 240 <= seven_links <= 300
    assert parse_profile("tor") is tor


def test_a_profile_written_out_reads_back() -> None:
    profile = parse_profile("delay=12.5, jitter=3,loss=0.02")
    assert profile == LinkProfile(delay=12.5, jitter=3.0, loss=0.02)
    assert parse_profile(profile.spec()) == profile
    for name, known in PROFILES.items():
        assert parse_profile(known.spec()) == LinkProfile(**{**known.__dict__, "name": "custom"})
        assert name == known.name


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("satellite", "takes a profile"),
        ("jitter=3", "needs at least delay"),
        ("delay=x", "is not a number"),
        ("delay=-1", ">= 0"),
        ("delay=nan", "finite"),
        ("delay=10,loss=1", "below 1"),
        ("delay=20000", "at most"),
        ("delay=10,rate=5", "takes a profile"),
    ],
)
def test_a_bad_profile_says_what_is_wrong(text: str, says: str) -> None:
    with pytest.raises(TestnetError, match=says):
        parse_profile(text)


@given(
    st.lists(st.floats(0, 50, allow_nan=False), min_size=1, max_size=200),
    st.integers(0, 2**32),
    st.sampled_from(sorted(PROFILES)),
)
def test_arrivals_keep_order_and_never_beat_the_base_delay(
    gaps: list[float], seed: int, name: str
) -> None:
    profile = PROFILES[name]
    link = LinkDelay(profile, random.Random(seed))
    now = 0.0
    last = -1.0
    for gap in gaps:
        now += gap
        arrival = link.arrival(now)
        assert arrival >= now + profile.delay
        assert arrival >= last
        last = arrival


def test_the_model_gives_its_mean_and_its_losses() -> None:
    profile = LinkProfile(delay=30, walk=8, jitter=4, loss=0.01, retransmit=200)
    link = LinkDelay(profile, random.Random(7))
    # Sends 200 ms apart: nothing queues behind a retransmission, each delay stands alone.
    delays = [link.arrival(200.0 * i) - 200.0 * i for i in range(20_000)]
    lost = sum(d > 200 for d in delays)
    assert 150 <= lost <= 250  # 1 % of 20,000
    kept = [d for d in delays if d <= 200]
    assert 30 + 4 <= statistics.mean(kept) <= 30 + 8 + 4
    with pytest.raises(ValueError, match="time order"):
        link.arrival(0.0)


def test_shaped_ports_advertise_one_port_and_listen_on_another() -> None:
    common = [("Nickname", "relay0")]
    for make in (authority_config, relay_config):
        text = render_torrc(
            make(common, or_port=5000, dir_port=5001, address="127.0.0.1", listen_or_port=5002)
        )
        assert "ORPort 127.0.0.1:5000 NoListen\n" in text
        assert "ORPort 127.0.0.1:5002 NoAdvertise\n" in text
        plain = render_torrc(make(common, or_port=5000, dir_port=5001, address="127.0.0.1"))
        assert "ORPort 127.0.0.1:5000\n" in plain
        assert "NoListen" not in plain


def test_the_shaper_configuration_round_trips(tmp_path: Path) -> None:
    config = ShaperConfig(
        profile="tor",
        seed=3,
        routes=(
            Route(name="r", listen_host="127.0.0.1", listen_port=1, target_host="h", target_port=2),
        ),
        log_file="x.log",
    )
    config.save(tmp_path / "c.json")
    assert ShaperConfig.load(tmp_path / "c.json") == config
    (tmp_path / "bad.json").write_text('{"profile": "tor"}')
    with pytest.raises(TestnetError, match="not a shaper configuration"):
        ShaperConfig.load(tmp_path / "bad.json")


async def _echo_server(task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED) -> None:
    async def echo(stream: trio.SocketStream) -> None:
        async for chunk in stream:
            await stream.send_all(chunk)
        await stream.send_eof()

    listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
    task_status.started(listeners[0].socket.getsockname()[1])
    await trio.serve_listeners(echo, listeners)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


async def _shaped_echo(nursery: trio.Nursery, profile: LinkProfile) -> int:
    """An echo server behind a forwarder that shapes its link with ``profile``: the
    forwarder's port."""
    target = await nursery.start(_echo_server)
    front = _free_port()
    route = Route(
        name="relay0",
        listen_host="127.0.0.1",
        listen_port=front,
        target_host="127.0.0.1",
        target_port=target,
    )
    await nursery.start(serve_routes, [route], profile, 1)
    return front


async def test_the_forwarder_delays_both_ways_keeps_every_byte_and_passes_the_end_on() -> None:
    profile = LinkProfile(delay=40.0, jitter=1.0)
    async with trio.open_nursery() as nursery:
        front = await _shaped_echo(nursery, profile)
        stream = await trio.open_tcp_stream("127.0.0.1", front)
        async with stream:
            start = trio.current_time()
            await stream.send_all(b"ping")
            assert await stream.receive_some(4) == b"ping"
            assert trio.current_time() - start >= 2 * profile.delay / 1000  # there and back
            payload = os.urandom(300_000)
            async with trio.open_nursery() as io:
                io.start_soon(stream.send_all, payload)
                got = bytearray()
                while len(got) < len(payload):
                    got += await stream.receive_some(65536)
            assert bytes(got) == payload
            await stream.send_eof()
            assert await stream.receive_some(1) == b""  # the echo's end came back through
        nursery.cancel_scope.cancel()


async def test_a_connection_reset_mid_delivery_leaves_the_forwarder_serving() -> None:
    """A relay's peer that vanishes (reset) while chunks are still delayed for it: that
    link ends, the forwarder serves the next connection (it once died of it, silently)."""
    profile = LinkProfile(delay=40.0, jitter=1.0)
    async with trio.open_nursery() as nursery:
        front = await _shaped_echo(nursery, profile)
        for _ in range(3):
            rude = await trio.open_tcp_stream("127.0.0.1", front)
            await rude.send_all(os.urandom(200_000))  # echoed back, delayed for 40 ms
            await trio.sleep(0.02)
            rude.socket.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            rude.socket.close()  # a reset, with the echo still on its way
            await trio.sleep(0.1)
        stream = await trio.open_tcp_stream("127.0.0.1", front)
        async with stream:
            await stream.send_all(b"still there?")
            got = b""
            while len(got) < 12:
                got += await stream.receive_some(12)
            assert got == b"still there?"
        nursery.cancel_scope.cancel()


def test_a_port_in_use_is_said_on_stderr_where_up_looks_for_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``testnet up`` retries with other ports when the shaper says it cannot listen
    (it once said nothing: the bind error came out of a nursery as a group)."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        config = ShaperConfig(
            profile="delay=1",
            seed=1,
            routes=(
                Route(
                    name="r",
                    listen_host="127.0.0.1",
                    listen_port=port,
                    target_host="127.0.0.1",
                    target_port=1,
                ),
            ),
            log_file=str(tmp_path / "shaper.log"),
        )
        config.save(tmp_path / "c.json")
        assert main([str(tmp_path / "c.json")]) == 1
    said = capsys.readouterr().err
    assert "shaper: cannot listen:" in said
    assert "Address already in use" in said
