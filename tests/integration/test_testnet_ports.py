"""A private network's tor that loses its port to another program is told apart.

``testnet up`` picks free ports, lets them go and starts the tors, which bind
them a moment later; another program (or another tor's ``ControlPort auto``)
can take one in between. That is retried with new ports (``PortInUse``),
but tor binds its listeners before it opens its log file, so the reason is
only on its standard output: an ``up`` that read only the log reported
"relay3 exited (status 1)" with nothing more, and did not retry. The real
tor plays it, except for one rare order of events a stand-in program plays.
"""

from __future__ import annotations

import socket
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from onion._errors import PortInUse
from onion._process import find_tor
from onion._torrc import render_torrc
from onion.testnet._join import launch_node
from onion.testnet._network import PlannedNode, _start, exit_error

pytestmark = pytest.mark.integration


@pytest.fixture
def taken_port() -> Iterator[int]:
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        yield held.getsockname()[1]


def _relay(tmp_path: Path, or_port: int, *, also_stdout: bool) -> PlannedNode:
    data_dir = tmp_path / "relay"
    data_dir.mkdir(mode=0o700)
    (data_dir / "torrc-defaults").write_text("")
    config = [
        ("DataDirectory", str(data_dir)),
        ("SocksPort", "0"),
        ("ControlPort", "auto"),
        ("ORPort", f"127.0.0.1:{or_port}"),
        ("Address", "127.0.0.1"),
        ("AssumeReachable", "1"),
        ("PublishServerDescriptor", "0"),
        ("Log", f"notice file {data_dir / 'notice.log'}"),
    ]
    if also_stdout:
        config.append(("Log", "notice stdout"))
    (data_dir / "torrc").write_text(render_torrc(config))
    return PlannedNode(nickname="relay9", role="relay", data_dir=data_dir)


async def test_a_relay_of_up_whose_port_is_taken_is_a_port_collision(
    tmp_path: Path, taken_port: int
) -> None:
    node = _relay(tmp_path, taken_port, also_stdout=False)
    code = await _start(node, find_tor()).wait()
    assert code == 1
    assert not (node.data_dir / "notice.log").exists()  # why it is only on stdout
    error = exit_error(node, code)
    assert isinstance(error, PortInUse), error
    assert f"127.0.0.1:{taken_port}" in str(error)


async def test_a_joining_relay_whose_port_is_taken_is_a_port_collision(
    tmp_path: Path, taken_port: int
) -> None:
    node = _relay(tmp_path, taken_port, also_stdout=True)
    with pytest.raises(PortInUse) as caught:
        await launch_node(node, find_tor())
    assert f"127.0.0.1:{taken_port}" in str(caught.value)


_EXITS_WITH_CONTROL_OPEN = """\
import socket, sys
with socket.socket() as listener:
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    port = listener.getsockname()[1]
    print(f"[notice] Opened Control listener connection (ready) on 127.0.0.1:{port}", flush=True)
    connection, _ = listener.accept()
    print("[warn] Could not bind to 127.0.0.1:9: Address already in use", flush=True)
    connection.close()
sys.exit(1)
"""


async def test_a_joining_relay_that_exits_with_our_control_connection_open_is_told_apart(
    tmp_path: Path,
) -> None:
    """The kernel can accept our control connection before tor exits on a later port.

    tor then closes it mid-handshake (CI saw ``ControlClosed`` escape instead of
    ``PortInUse``). The race is rare with the real tor, so a stand-in program
    plays that order of events: listen, print the control line, take our
    connection, print the bind failure, close, exit.
    """
    node = _relay(tmp_path, 9, also_stdout=True)
    stand_in = tmp_path / "tor"
    stand_in.write_text(f"#!{sys.executable}\n{_EXITS_WITH_CONTROL_OPEN}")
    stand_in.chmod(0o700)
    with pytest.raises(PortInUse) as caught:
        await launch_node(node, str(stand_in))
    assert "127.0.0.1:9" in str(caught.value)
