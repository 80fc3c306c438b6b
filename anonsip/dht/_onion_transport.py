"""A ``DhtNode`` reachable as a Tor v3 onion service, and the anonymous ``DhtClient`` beside it.

The node's 32-byte Ed25519 seed (after ``puzzle_seed``: the stored seed,
or the first derivation of it whose key solves the id puzzle) is both its
DHT identity (``NodeIdentity.from_seed``) and its onion-service key
(``OnionKey.from_seed``, rend-spec-v3 section 6), so ``NodeId = SHA3-256(onion
public key)``: a node cannot choose its place in the key space, and a
contact whose onion address answers is the node that holds the key.
``start_onion_dht`` publishes the service, hands every incoming stream to
``DhtNode.serve_stream``, follows the consensus's shared random values
(``TorSharedRandom``) and dials contacts through tor's SOCKS port, each
peer on its own isolated circuits and every dial under a deadline (a
vanished peer whose descriptor is still on the HSDirs would otherwise hang
a fresh client for about 120 s). The ``DhtClient`` it makes dials with an
isolation token of each operation's own (``anonymous_dialer``).
"""

from __future__ import annotations

import logging
import random
import secrets
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass

import trio

from anonsip._errors import LocalError
from anonsip.dht._client import AnonymousDialer, DhtClient
from anonsip.dht._identity import Contact, NodeIdentity, puzzle_seed
from anonsip.dht._node import DhtConfig, DhtNode, Dialer
from anonsip.dht._shared_random import TorSharedRandom
from anonsip.dht._store import RecordStore
from anonsip.identity import TOR_TIME_PERIODS, TimePeriods
from onion import OnionError, OnionKey, OnionService, OnionTimeout, Tor

__all__ = [
    "DEFAULT_DHT_PORT",
    "DEFAULT_DIAL_TIMEOUT",
    "DEFAULT_PUBLISH_TIMEOUT",
    "OnionDht",
    "anonymous_dialer",
    "onion_dialer",
    "start_onion_dht",
]

log = logging.getLogger(__name__)

DEFAULT_DHT_PORT = 7044
DEFAULT_DIAL_TIMEOUT = 20.0
DEFAULT_PUBLISH_TIMEOUT = 60.0
# Descriptor-not-found (SOCKS 0xF0) is retried this long: a peer that published
# a moment ago may not be on every HSDir yet.
NOT_FOUND_RETRY = 4.0


@dataclass(frozen=True, slots=True, kw_only=True)
class OnionDht:
    """A running DHT node, the onion service it answers on, the anonymous client for the
    user's own operations, and the shared random values both place records with."""

    node: DhtNode
    service: OnionService
    client: DhtClient
    shared_random: TorSharedRandom

    @property
    def contact(self) -> Contact:
        return self.node.contact


def onion_dialer(tor: Tor, *, timeout: float = DEFAULT_DIAL_TIMEOUT) -> Dialer:
    """A ``Dialer`` opening one onion stream per call, each peer on its own circuits.

    The isolation group is a random per-dialer token plus the peer's address:
    two DHT nodes sharing one tor never share a circuit, and neither do two
    peers of one node, so a rendezvous point cannot link our peers.
    """
    token = secrets.token_hex(8)

    async def dial(contact: Contact) -> trio.abc.Stream:
        return await tor.open_stream(
            contact.onion_address,
            contact.port,
            isolation=f"anonsip-dht-{token}-{contact.onion_address}",
            timeout=timeout,
            not_found_retry=min(NOT_FOUND_RETRY, timeout),
        )

    return dial


def anonymous_dialer(tor: Tor, *, timeout: float = DEFAULT_DIAL_TIMEOUT) -> AnonymousDialer:
    """An ``AnonymousDialer``: every stream on the circuits of the isolation token it is given."""

    async def dial(contact: Contact, isolation: str) -> trio.abc.Stream:
        return await tor.open_stream(
            contact.onion_address,
            contact.port,
            isolation=isolation,
            timeout=timeout,
            not_found_retry=min(NOT_FOUND_RETRY, timeout),
        )

    return dial


@asynccontextmanager
async def start_onion_dht(
    tor: Tor,
    seed: bytes,
    *,
    port: int = DEFAULT_DHT_PORT,
    config: DhtConfig | None = None,
    clock: Callable[[], float] = time.time,
    rng: random.Random | None = None,
    store: RecordStore | None = None,
    dial_timeout: float | None = None,
    publish_timeout: float = DEFAULT_PUBLISH_TIMEOUT,
    periods: TimePeriods = TOR_TIME_PERIODS,
) -> AsyncIterator[OnionDht]:
    """Run a DHT node as the onion service of ``seed`` for the body of the ``async with``.

    The node's key is ``puzzle_seed(seed, config.difficulty)`` (solved in a
    worker thread). Returns once tor has uploaded the service descriptor
    (``OnionTimeout`` after ``publish_timeout`` s). ``dial_timeout``
    (default: the config's ``rpc_timeout``) bounds each outgoing connect;
    ``periods`` numbers the disaster shared random values. Leaving the block
    removes the service first (no new callers), then stops the node.
    """
    if len(seed) != 32:
        raise LocalError("a DHT node's Ed25519 seed is 32 bytes")
    config = config or DhtConfig()
    seed = await trio.to_thread.run_sync(puzzle_seed, seed, config.difficulty)
    identity = NodeIdentity.from_seed(seed, port)
    key = OnionKey.from_seed(seed)
    if key.public_key != identity.public_key:
        # Both derive from RFC 8032 seed expansion; a mismatch is a bug, not bad input.
        raise AssertionError("the onion key and the DHT identity disagree on the public key")
    timeout = config.rpc_timeout if dial_timeout is None else dial_timeout
    shared_random = TorSharedRandom(tor, clock=clock, periods=periods)
    node = DhtNode(
        identity,
        dial=onion_dialer(tor, timeout=timeout),
        config=config,
        clock=clock,
        rng=rng,
        store=store,
        dial_errors=(OnionError,),
        shared_random=shared_random,
    )
    client = DhtClient(
        dial=anonymous_dialer(tor, timeout=timeout),
        seeds=node.seeds,
        shared_random=shared_random,
        config=config,
        clock=clock,
        dial_errors=(OnionError,),
    )
    async with (
        node,
        tor.publish_service(node.serve_stream, virtual_port=port, key=key) as service,
        trio.open_nursery() as watching,
    ):
        await watching.start(shared_random.run)
        if service.address != identity.contact.onion_address:
            raise AssertionError("tor published a different address than the DHT identity's")
        try:
            await service.wait_published(publish_timeout)
        except trio.TooSlowError:
            raise OnionTimeout(
                f"tor did not publish the DHT node's onion service within {publish_timeout:.0f} s;"
                " check that tor finished bootstrapping and the network is up"
            ) from None
        log.info("the DHT node is published on its onion service")
        yield OnionDht(node=node, service=service, client=client, shared_random=shared_random)
        watching.cancel_scope.cancel()
