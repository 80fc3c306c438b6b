"""The state file of a private Tor network (``testnet.json`` in its directory).

Written by ``up`` (the machine that runs the authorities) or by ``join``
(another machine, from a join code; ``joined`` is then true and ``nodes``
lists only the relays this machine started). Read by ``status``, ``down``,
``share`` and by clients (``TestnetInfo.load(dir).client_config()``). Plain
JSON, never pickle.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from onion._errors import TestnetError
from onion._torrc import TorConfig
from onion.testnet._joincode import DirAuthority

__all__ = ["STATE_FILE", "NodeInfo", "TestnetInfo"]

STATE_FILE = "testnet.json"
EMPTY_FILE = "empty"
MAX_STATE_BYTES = 1024 * 1024


@dataclass(frozen=True, kw_only=True)
class NodeInfo:
    """One tor process of the network."""

    nickname: str
    role: str  # "authority", "relay", "bridge", or "shaper" (the WAN links, no tor)
    data_dir: str
    pid: int
    or_port: int
    dir_port: int
    fingerprint: str
    control_port: int | None = None


@dataclass(frozen=True, kw_only=True)
class TestnetInfo:
    """What a client needs to join the network, and what ``down`` needs to stop it."""

    __test__ = False  # not a pytest test class despite the name

    directory: str
    address: str
    authorities: tuple[str, ...]  # DirAuthority lines
    nodes: tuple[NodeInfo, ...] = field(default=())
    ready: bool = False
    up_seconds: float | None = None
    joined: bool = False  # made by `testnet join`: the authorities run elsewhere
    wan: str | None = None  # the link profile in front of every ORPort (`up --wan`), if any

    def dir_authorities(self) -> list[DirAuthority]:
        """The authorities, read back from their ``DirAuthority`` lines."""
        return [DirAuthority.from_torrc_line(line) for line in self.authorities]

    def client_config(self) -> TorConfig:
        """torrc lines that make a client use this network instead of the real one."""
        config: TorConfig = [("TestingTorNetwork", "1")]
        config += [("DirAuthority", line) for line in self.authorities]
        empty = Path(self.directory) / EMPTY_FILE
        if empty.exists():
            # Saves each client a second of CPU parsing country databases it never uses here.
            config += [("GeoIPFile", str(empty)), ("GeoIPv6File", str(empty))]
        return config

    @property
    def pids(self) -> list[int]:
        return [node.pid for node in self.nodes]

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True)

    def save(self) -> None:
        path = Path(self.directory) / STATE_FILE
        tmp = path.with_suffix(".tmp")
        tmp.write_text(self.to_json())
        tmp.replace(path)

    @classmethod
    def load(cls, directory: Path | str) -> TestnetInfo:
        path = Path(directory) / STATE_FILE
        try:
            with path.open("rb") as f:
                raw = f.read(MAX_STATE_BYTES + 1)
        except FileNotFoundError:
            raise TestnetError(
                f"no private Tor network in {directory}: run `anonsip testnet up --dir {directory}`"
            ) from None
        if len(raw) > MAX_STATE_BYTES:
            raise TestnetError(f"{path} is too large to be a testnet state file")
        try:
            data: dict[str, Any] = json.loads(raw)
            nodes = tuple(NodeInfo(**n) for n in data.pop("nodes", []))
            authorities = tuple(str(a) for a in data.pop("authorities"))
            return cls(nodes=nodes, authorities=authorities, **data)
        except (ValueError, TypeError, KeyError) as exc:
            raise TestnetError(f"{path} is not a valid testnet state file: {exc}") from exc
