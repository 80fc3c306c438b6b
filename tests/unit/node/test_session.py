"""The session adapter over in-memory stream pairs: handshake, messages both
ways, clean close, a broken stream, and tampering on the wire."""

import random
from collections.abc import Callable

import pytest
import trio
import trio.testing

from anonsip.identity import Identity
from anonsip.node import Session, SessionBroken, SessionClosed


def _rng(seed: int) -> Callable[[int], bytes]:
    r = random.Random(seed)
    return lambda n: r.randbytes(n)


@pytest.fixture
def pair() -> tuple[Identity, Identity]:
    return (
        Identity.generate("alice", rng=_rng(1)),
        Identity.generate("bob", rng=_rng(2)),
    )


async def _open(
    alice: Identity, bob: Identity, a_stream: trio.abc.Stream, b_stream: trio.abc.Stream
) -> tuple[Session, Session]:
    result: dict[str, Session] = {}

    async def accept() -> None:
        result["b"] = await Session.accept(b_stream, bob, rng=_rng(3))

    async with trio.open_nursery() as nursery:
        nursery.start_soon(accept)
        result["a"] = await Session.connect(a_stream, alice, bob.public_key, rng=_rng(4))
    return result["a"], result["b"]


async def test_messages_both_ways_and_clean_close(pair: tuple[Identity, Identity]) -> None:
    alice, bob = pair
    a_stream, b_stream = trio.testing.memory_stream_pair()
    a, b = await _open(alice, bob, a_stream, b_stream)
    assert b.remote_public_key == alice.public_key
    assert a.remote_public_key == bob.public_key
    assert a.export_key(b"media") == b.export_key(b"media")
    await a.send(b"hello")
    assert await b.receive() == b"hello"
    await b.send(b"hi there")
    assert await a.receive() == b"hi there"
    await a.aclose()
    with pytest.raises(SessionClosed):
        await b.receive()
    with pytest.raises(SessionClosed):
        await a.send(b"late")


async def test_wrong_callee_key_is_refused(pair: tuple[Identity, Identity]) -> None:
    alice, bob = pair
    mallory = Identity.generate("mallory", rng=_rng(9))
    a_stream, b_stream = trio.testing.memory_stream_pair()

    async def accept() -> None:
        with pytest.raises(SessionBroken):
            await Session.accept(b_stream, mallory, rng=_rng(3))

    with trio.fail_after(5):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(accept)
            with pytest.raises(SessionBroken):
                await Session.connect(a_stream, alice, bob.public_key, rng=_rng(4))


async def test_stream_that_breaks_reports_broken(pair: tuple[Identity, Identity]) -> None:
    alice, bob = pair
    a_stream, b_stream = trio.testing.memory_stream_pair()
    _a, b = await _open(alice, bob, a_stream, b_stream)
    await a_stream.aclose()
    with pytest.raises(SessionBroken):
        await b.receive()
    assert not b.is_open


async def test_tampered_byte_breaks_the_session(pair: tuple[Identity, Identity]) -> None:
    alice, bob = pair
    a_end, a_far = trio.testing.memory_stream_pair()
    b_near, b_end = trio.testing.memory_stream_pair()

    async def relay(src: trio.abc.Stream, dst: trio.abc.Stream, flip: bool) -> None:
        while data := await src.receive_some(65536):
            if flip and len(data) > 300:  # the data frame, not a handshake message
                data = data[:-1] + bytes([data[-1] ^ 1])
            await dst.send_all(data)

    with trio.fail_after(5):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(relay, a_far, b_near, True)
            nursery.start_soon(relay, b_near, a_far, False)
            a, b = await _open(alice, bob, a_end, b_end)
            await a.send(b"x" * 300)
            with pytest.raises(SessionBroken):
                await b.receive()
            assert not b.is_open
            nursery.cancel_scope.cancel()


async def test_a_send_cancelled_midway_breaks_the_session(pair: tuple[Identity, Identity]) -> None:
    """Part of a Noise frame may be on the wire: nothing may follow it (h11's rule)."""
    alice, bob = pair
    a_stream, b_stream = trio.testing.lockstep_stream_pair()  # a send waits for the reader
    sessions: dict[str, Session] = {}

    async def accept() -> None:
        sessions["b"] = await Session.accept(b_stream, bob, rng=_rng(3))

    async with trio.open_nursery() as nursery:
        nursery.start_soon(accept)
        sessions["a"] = await Session.connect(a_stream, alice, bob.public_key, rng=_rng(4))
    a = sessions["a"]
    with trio.move_on_after(0.5) as scope:
        await a.send(b"x" * 60000)  # nobody reads: the send is cut off
    assert scope.cancelled_caught
    assert not a.is_open
    with pytest.raises(SessionBroken, match="interrupted"):
        await a.send(b"after")
