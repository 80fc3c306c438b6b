"""Links with WAN delay between the tors of a private network, made in user space.

This kernel has no netem (``tc qdisc ... netem`` is "unknown"), so the
delay is made by a forwarder: each relay and authority advertises one
ORPort that it does not listen on (tor(1) ``ORPort ... NoListen``) and
listens on another that it does not advertise (``NoAdvertise``). This
process listens on every advertised port and forwards each connection to
the real one, holding every chunk, in each direction, until its arrival
time (``_linkshape.LinkDelay``, one per direction of each connection).
Every TCP connection to a relay goes through here: relay to relay, and a
client to its first relay, so each hop of a circuit is one shaped link.
Directory uploads to the authorities' DirPorts are not shaped (they are
not on any circuit).

Run as ``python -m onion.testnet._shaper CONFIG`` by ``testnet up --wan``:
it binds every port, says ``shaper ready`` on stdout once, and serves
until it is stopped. Each direction's queue is bounded: a reader that is
ahead of its delay waits (back-pressure), as a real link's window would.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import random
import sys
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import trio

from onion._errors import TestnetError, unwrapped_errors
from onion.testnet._linkshape import LinkDelay, LinkProfile, parse_profile

__all__ = ["CONFIG_FILE", "READY", "Route", "ShaperConfig", "serve_routes"]

log = logging.getLogger(__name__)

CONFIG_FILE = "shaper.json"
READY = "shaper ready"
RECEIVE_SIZE = 65536
QUEUED_CHUNKS = 256  # per direction; at most 16 MiB held at once per connection direction
MAX_CONFIG = 1024 * 1024


@dataclass(frozen=True, kw_only=True)
class Route:
    """Connections to ``listen`` go on to ``target``, both ways shaped."""

    name: str
    listen_host: str
    listen_port: int
    target_host: str
    target_port: int


@dataclass(frozen=True, kw_only=True)
class ShaperConfig:
    profile: str  # LinkProfile.spec() or a profile name
    seed: int
    routes: tuple[Route, ...]
    log_file: str

    def save(self, path: Path) -> None:
        path.write_text(json.dumps(asdict(self), indent=1))

    @classmethod
    def load(cls, path: Path) -> ShaperConfig:
        raw = path.read_bytes()[:MAX_CONFIG]
        try:
            data = json.loads(raw)
            routes = tuple(Route(**r) for r in data.pop("routes"))
            return cls(routes=routes, **data)
        except (ValueError, TypeError, KeyError) as exc:
            raise TestnetError(f"{path} is not a shaper configuration: {exc}") from exc


async def serve_routes(
    routes: Sequence[Route],
    profile: LinkProfile,
    seed: int,
    *,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Listen on every route and forward, shaped, until cancelled."""
    listeners = []
    for route in routes:
        listeners.append(
            (route, await trio.open_tcp_listeners(route.listen_port, host=route.listen_host))
        )
    counter = 0

    def seeds() -> random.Random:
        nonlocal counter
        counter += 1
        return random.Random(f"{seed}/{counter}")  # noqa: S311 -- a seeded model, not a secret

    async with trio.open_nursery() as nursery:
        for route, bound in listeners:

            async def handle(stream: trio.SocketStream, route: Route = route) -> None:
                await _forward(stream, route, profile, seeds())

            nursery.start_soon(trio.serve_listeners, handle, bound)
        task_status.started()


async def _forward(
    downstream: trio.SocketStream, route: Route, profile: LinkProfile, rng: random.Random
) -> None:
    try:
        upstream = await trio.open_tcp_stream(route.target_host, route.target_port)
    except OSError as exc:
        log.info("%s: cannot reach the relay's real port: %s", route.name, exc)
        await downstream.aclose()
        return
    async with downstream, upstream, trio.open_nursery() as nursery:
        for source, sink in ((downstream, upstream), (upstream, downstream)):
            delay = LinkDelay(profile, random.Random(rng.random()))  # noqa: S311 -- seeded model
            nursery.start_soon(_pump, source, sink, delay, nursery.cancel_scope)


_BROKEN = (trio.BrokenResourceError, trio.ClosedResourceError, OSError)


async def _pump(
    source: trio.SocketStream,
    sink: trio.SocketStream,
    delay: LinkDelay,
    connection: trio.CancelScope,
) -> None:
    """Read from ``source``; hand each chunk to ``sink`` at its arrival time, in order.
    Either side breaking takes the link down both ways, and only this link: each task
    catches its own error (a nursery would wrap it in a group no ``except`` here sees)."""
    send, receive = trio.open_memory_channel[tuple[float, bytes]](QUEUED_CHUNKS)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(_deliver, receive, sink, connection)
        async with send:
            try:
                while chunk := await source.receive_some(RECEIVE_SIZE):
                    now_ms = trio.current_time() * 1000
                    await send.send((delay.arrival(now_ms) / 1000, chunk))
            except _BROKEN:
                connection.cancel()


async def _deliver(
    receive: trio.MemoryReceiveChannel[tuple[float, bytes]],
    sink: trio.SocketStream,
    connection: trio.CancelScope,
) -> None:
    try:
        async with receive:
            async for at, chunk in receive:
                await trio.sleep_until(at)
                await sink.send_all(chunk)
    except _BROKEN:
        connection.cancel()
        return
    with contextlib.suppress(*_BROKEN):
        await sink.send_eof()  # the other side finished sending: pass the half-close on


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m onion.testnet._shaper")
    parser.add_argument("config", type=Path)
    args = parser.parse_args(argv)
    config = ShaperConfig.load(args.config)
    logging.basicConfig(
        filename=config.log_file,
        level=logging.INFO,
        format="%(asctime)s %(name)s %(levelname)s %(message)s",
    )
    profile = parse_profile(config.profile)

    async def run() -> None:
        async with trio.open_nursery() as nursery:
            await nursery.start(serve_routes, config.routes, profile, config.seed)
            log.info("shaping %d routes: %s", len(config.routes), profile.spec())
            print(READY, flush=True)
            # Whoever started us stops reading now: nothing may reach stdout or stderr again.
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, 1)
            os.dup2(devnull, 2)
            os.close(devnull)

    try:
        with unwrapped_errors():  # a bind error comes out of our nursery grouped
            trio.run(run)
    except OSError as exc:
        print(f"shaper: cannot listen: {exc}", file=sys.stderr, flush=True)
        return 1
    except Exception:
        log.exception("the link shaper stopped")  # stderr is gone: say it in the log
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
