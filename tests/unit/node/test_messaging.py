"""The messenger keeps a message in the outbox when the peer cannot be reached,
also on the stranger path where a proof of work is solved during the dial
(a regression: the dial's error escaped through that nursery and stopped
the node)."""

import random
from collections.abc import Callable
from pathlib import Path

import trio

from anonsip.identity import Identity
from anonsip.node._links import LinkTable
from anonsip.node._messaging import Messenger
from anonsip.registration import Contact
from anonsip.store import MessageState, MessageStore

ONION = "25njqamcweflpvkl73j4szahhihoc4xt3ktcgjnpaingr5yhkenl5sid.onion"


def _rng(seed: int) -> Callable[[int], bytes]:
    r = random.Random(seed)
    return lambda n: r.randbytes(n)


async def test_unreachable_stranger_keeps_the_message_queued(tmp_path: Path) -> None:
    me = Identity.generate("me", rng=_rng(1))
    peer = Identity.generate("peer", rng=_rng(2))
    store = MessageStore.open(tmp_path / "store.sqlite", bytes(32))
    dials: list[str] = []

    async def open_stream(onion: str, port: int, *, isolation: str) -> trio.abc.Stream:
        dials.append(onion)
        raise OSError("no route to the peer")

    async def lookup(key: bytes) -> tuple[Contact, ...]:
        return (Contact(onion=ONION, port=5061),)

    async def nothing(*args: object) -> None:
        return None

    events: list[tuple[str, dict[str, object]]] = []
    async with trio.open_nursery() as nursery:
        links = LinkTable(
            me,
            open_stream=open_stream,
            lookup=lookup,
            on_incoming=nothing,
            on_media=nothing,
            on_contact=lambda *a: None,
            rng=_rng(3),
            nursery=nursery,
        )
        messenger = Messenger(
            me,
            store,
            links,
            clock=lambda: 1_800_000_000.0,
            publish=lambda name, data: events.append((name, data)),
            pow_difficulty=4,
        )
        message = await messenger.send(peer.address.text, "are you there?")
        delivered = await messenger._deliver_one(
            peer.address.text, message.message_id, message.text
        )
        nursery.cancel_scope.cancel()
    assert delivered is False
    assert dials == [ONION]
    [stored] = store.history(peer.address.text)
    assert stored.state is MessageState.SENT
    assert store.outbox_size() == 1
    store.close()
