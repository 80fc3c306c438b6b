"""ControlServer with the trio and asyncio clients over a real Unix socket."""

import asyncio
import logging
import os
import socket
import stat
import struct
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import msgpack
import pytest
import trio
import trio.testing

from anonsip import AnonsipError, LocalError
from anonsip.control import (
    AsyncioControlClient,
    ControlConnectionClosed,
    ControlServer,
    Event,
    Handler,
    NodeError,
    NodeNotRunning,
    TrioControlClient,
)


@pytest.fixture
def home(tmp_path: Path) -> Path:
    tmp_path.chmod(0o700)
    return tmp_path


async def echo(args: Mapping[str, Any]) -> Any:
    return dict(args)


async def refuse(args: Mapping[str, Any]) -> Any:
    raise LocalError("no such contact: bob")


async def crash(args: Mapping[str, Any]) -> Any:
    raise ZeroDivisionError("secret detail")


async def unsendable(args: Mapping[str, Any]) -> Any:
    return object()


HANDLERS: dict[str, Handler] = {
    "echo": echo,
    "refuse": refuse,
    "crash": crash,
    "unsendable": unsendable,
}


async def test_call_returns_the_handler_result(home: Path) -> None:
    sock = home / "control.sock"
    async with ControlServer(sock, HANDLERS), TrioControlClient.connect(sock) as client:
        assert await client.call("echo", peer="bob", n=3, blob=b"\x00") == {
            "peer": "bob",
            "n": 3,
            "blob": b"\x00",
        }
    assert not sock.exists()  # removed on exit


async def test_error_replies(home: Path, caplog: pytest.LogCaptureFixture) -> None:
    sock = home / "control.sock"
    caplog.set_level(logging.ERROR)
    async with ControlServer(sock, HANDLERS), TrioControlClient.connect(sock) as client:
        with pytest.raises(NodeError, match="no such contact: bob") as info:
            await client.call("refuse")
        assert info.value.kind == "LocalError"
        assert isinstance(info.value, AnonsipError)

        with pytest.raises(NodeError, match="no operation 'nope'") as info:
            await client.call("nope")
        assert info.value.kind == "UnknownOperation"

        with pytest.raises(NodeError, match="log has the details") as info:
            await client.call("crash")
        assert info.value.kind == "InternalError"
        assert "secret detail" not in str(info.value)
        assert "ZeroDivisionError" in caplog.text

        with pytest.raises(NodeError) as info:
            await client.call("unsendable")
        assert info.value.kind == "InternalError"

        # the server survived all of that
        assert await client.call("echo", x=1) == {"x": 1}


async def test_socket_is_private(home: Path) -> None:
    sock = home / "control.sock"
    async with ControlServer(sock, HANDLERS):
        mode = os.stat(sock).st_mode
        assert stat.S_ISSOCK(mode)
        assert stat.S_IMODE(mode) == 0o600


async def test_refuses_a_directory_others_can_enter(home: Path) -> None:
    home.chmod(0o750)
    with pytest.raises(LocalError, match="chmod 700"):
        async with ControlServer(home / "control.sock", HANDLERS):
            pass


async def test_stale_socket_is_replaced_but_a_live_one_is_not(home: Path) -> None:
    sock = home / "control.sock"
    dead = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    dead.bind(str(sock))
    dead.close()  # the file stays, nothing listens
    async with ControlServer(sock, HANDLERS):
        with pytest.raises(LocalError, match="already running"):
            async with ControlServer(sock, HANDLERS):
                pass
        async with TrioControlClient.connect(sock) as client:
            assert await client.call("echo") == {}


async def test_refuses_to_replace_a_regular_file(home: Path) -> None:
    sock = home / "control.sock"
    sock.write_text("precious")
    with pytest.raises(LocalError, match="not a socket"):
        async with ControlServer(sock, HANDLERS):
            pass
    assert sock.read_text() == "precious"


async def test_no_node_running_says_how_to_start_one(home: Path) -> None:
    with pytest.raises(NodeNotRunning, match=f"anonsip --home {home} run"):
        async with TrioControlClient.connect(home / "control.sock"):
            pass


async def test_calls_on_one_connection_run_concurrently(home: Path) -> None:
    release = trio.Event()

    async def slow(args: Mapping[str, Any]) -> Any:
        await release.wait()
        return "slow"

    sock = home / "control.sock"
    async with (
        ControlServer(sock, {**HANDLERS, "slow": slow}),
        TrioControlClient.connect(sock) as client,
        trio.open_nursery() as nursery,
    ):
        results: list[str] = []

        async def call_slow() -> None:
            results.append(await client.call("slow"))

        nursery.start_soon(call_slow)
        await trio.testing.wait_all_tasks_blocked()
        assert await client.call("echo", a=1) == {"a": 1}  # not stuck behind "slow"
        assert results == []
        release.set()
    assert results == ["slow"]


async def test_events_reach_every_subscriber_in_order(home: Path) -> None:
    sock = home / "control.sock"
    async with (
        ControlServer(sock, HANDLERS) as server,
        TrioControlClient.connect(sock) as a,
        TrioControlClient.connect(sock) as b,
        TrioControlClient.connect(sock) as quiet,
    ):
        await a.subscribe()
        await b.subscribe()
        assert await quiet.call("echo") == {}
        assert server.statistics().subscribers == 2
        for i in range(5):
            server.publish("message", {"i": i})
        for client in (a, b):
            got = []
            async for event in client.events():
                got.append(event)
                if len(got) == 5:
                    break
            assert got == [Event(event="message", data={"i": i}) for i in range(5)]


async def test_slow_subscriber_is_disconnected(home: Path) -> None:
    sock = home / "control.sock"
    async with ControlServer(sock, HANDLERS, subscriber_queue=4) as server:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as raw:
            raw.connect(str(sock))
            payload = msgpack.packb({"id": 1, "op": "subscribe", "args": {}})
            raw.sendall(struct.pack(">I", len(payload)) + payload)
            with trio.fail_after(5):
                while server.statistics().subscribers == 0:
                    await trio.testing.wait_all_tasks_blocked()
                    await trio.sleep(0.001)  # the raw socket is outside trio's view
            # never read: kernel buffers fill, then the 4-frame queue, then we're cut off
            blob = b"x" * 65536
            for _ in range(1000):
                server.publish("call.stats", {"blob": blob})
                await trio.testing.wait_all_tasks_blocked()
                if server.statistics().connections == 0:
                    break
            assert server.statistics().subscribers == 0
            assert server.statistics().connections == 0


async def test_client_that_stops_reading_events_is_told(home: Path) -> None:
    sock = home / "control.sock"
    async with (
        ControlServer(sock, HANDLERS) as server,
        TrioControlClient.connect(sock, event_queue=3) as client,
    ):
        await client.subscribe()
        for i in range(10):
            server.publish("message", {"i": i})
        # the reply follows the ten events, which nobody reads
        with pytest.raises(ControlConnectionClosed, match="not read fast enough"):
            await client.call("echo")
        got = []
        with pytest.raises(ControlConnectionClosed, match="not read fast enough"):  # noqa: PT012
            async for event in client.events():
                got.append(event.data["i"])
        assert got == [0, 1, 2]


async def test_garbage_closes_only_that_connection(home: Path) -> None:
    sock = home / "control.sock"
    async with ControlServer(sock, HANDLERS), TrioControlClient.connect(sock) as good:
        for garbage in (b"\xff\xff\xff\xff", b"\x00\x00\x00\x01\xc1"):
            stream = await trio.open_unix_socket(str(sock))
            async with stream:
                await stream.send_all(garbage)
                with trio.fail_after(5):
                    assert await stream.receive_some(100) == b""  # closed on us
        assert await good.call("echo", ok=1) == {"ok": 1}


async def test_node_stopping_ends_event_stream_and_fails_calls(home: Path) -> None:
    sock = home / "control.sock"
    subscribed, stop = trio.Event(), trio.Event()

    async def node(task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        async with ControlServer(sock, HANDLERS) as server:
            task_status.started()
            await subscribed.wait()
            server.publish("status", {"n": 1})
            await stop.wait()

    async with trio.open_nursery() as nursery:
        await nursery.start(node)
        async with TrioControlClient.connect(sock) as client:
            await client.subscribe()
            subscribed.set()
            stop.set()
            # the server goes away: events end cleanly after what was sent
            got = [event async for event in client.events()]
            assert got == [Event(event="status", data={"n": 1})]
            with pytest.raises(ControlConnectionClosed, match="closed the control connection"):
                await client.call("echo")


async def test_reply_to_shutdown_is_delivered_before_the_server_stops(home: Path) -> None:
    sock = home / "control.sock"
    stop = trio.Event()

    async def shutdown(args: Mapping[str, Any]) -> Any:
        stop.set()
        await trio.sleep(0)  # the node starts tearing down while we reply
        return None

    async with trio.open_nursery() as nursery:

        async def node(task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
            async with ControlServer(sock, {"shutdown": shutdown}):
                task_status.started()
                await stop.wait()

        await nursery.start(node)
        async with TrioControlClient.connect(sock) as client:
            assert await client.call("shutdown") is None


async def test_asyncio_client(home: Path) -> None:
    sock = home / "control.sock"

    async def use_from_asyncio() -> list[Any]:
        seen: list[Any] = []
        async with AsyncioControlClient.connect(sock) as client:
            seen.append(await client.call("echo", text="hi"))
            try:
                await client.call("refuse")
            except NodeError as exc:
                seen.append((exc.kind, str(exc)))
            results = await asyncio.gather(*(client.call("echo", i=i) for i in range(5)))
            seen.append(results)
            await client.subscribe()
            await client.call("echo", publish=True)
            async for event in client.events():
                seen.append(event)
                break
        try:
            async with AsyncioControlClient.connect(home / "absent.sock"):
                pass
        except NodeNotRunning as exc:
            seen.append(str(exc))
        return seen

    servers: list[ControlServer] = []

    async def echo_and_publish(args: Mapping[str, Any]) -> Any:
        if args.get("publish"):  # publish from inside a handler, as the node will
            servers[0].publish("request", {"address": "asip1x"})
        return dict(args)

    async with ControlServer(sock, {**HANDLERS, "echo": echo_and_publish}) as server:
        servers.append(server)
        seen = await trio.to_thread.run_sync(asyncio.run, use_from_asyncio())

    assert seen[0] == {"text": "hi"}
    assert seen[1] == ("LocalError", "no such contact: bob")
    assert seen[2] == [{"i": i} for i in range(5)]
    assert seen[3] == Event(event="request", data={"address": "asip1x"})
    assert "no node is running" in seen[4]
