"""torrc generation: pure functions from settings to tor(1) configuration lines.

A config is an ordered list of ``(option, value)`` pairs (tor(1) "THE
CONFIGURATION FILE FORMAT"); options may repeat (``DirAuthority``,
``SocksPort``). Nothing here touches the disk or starts a process.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path

from onion._errors import OnionLocalError

__all__ = [
    "TorConfig",
    "authority_config",
    "bridge_config",
    "client_config",
    "private_network_config",
    "relay_config",
    "render_torrc",
]

TorConfig = list[tuple[str, str]]

CONTROL_PORT_FILE = "control.port"
# tor's minimum in a testing network: vote delay + dist delay + 1 (2 + 2 + 1).
INITIAL_VOTING_INTERVAL = 5
MIN_VOTE_DELAY = 2


def render_torrc(options: Iterable[tuple[str, str]]) -> str:
    """The text of a torrc; refuses values that would inject another line."""
    lines = []
    for key, value in options:
        if not key or any(ch in key for ch in " \t\r\n#") or any(ch in value for ch in "\r\n\0"):
            raise OnionLocalError(f"bad torrc option {key!r} {value!r}")
        lines.append(f"{key} {value}".rstrip())
    return "\n".join(lines) + "\n"


def client_config(
    data_dir: Path,
    *,
    owner_pid: int,
    extra: Sequence[tuple[str, str]] = (),
    network: Sequence[tuple[str, str]] = (),
) -> TorConfig:
    """A client tor we own: private data dir, ports chosen by the OS, cookie auth.

    ``network`` holds the lines that join a private network (``TestnetInfo``);
    ``extra`` comes last so a caller can add to anything above.
    """
    config: TorConfig = [
        ("DataDirectory", str(data_dir)),
        ("ControlPort", "auto"),
        ("ControlPortWriteToFile", str(data_dir / CONTROL_PORT_FILE)),
        ("ControlPortFileGroupReadable", "0"),
        ("CookieAuthentication", "1"),
        ("CookieAuthFile", str(data_dir / "control_auth_cookie")),
        # ExtendedErrors: onion failures as 0xF0-0xF7 (tor 0.4.3+);
        # IsolateSOCKSAuth: each SOCKS username/password gets its own circuits.
        ("SocksPort", "auto ExtendedErrors IsolateSOCKSAuth"),
        # tor exits when this process does, even after a SIGKILL of us.
        ("__OwningControllerProcess", str(owner_pid)),
        ("Log", "notice stdout"),
        ("AvoidDiskWrites", "1"),
    ]
    config += network
    config += extra
    return config


def private_network_config(
    data_dir: Path,
    *,
    nickname: str,
    address: str,
    authorities: Sequence[str],
    vote_range: str,
    voting_interval: int,
    empty_file: Path,
) -> TorConfig:
    """Lines shared by every node of a private network (authority or relay).

    The first consensus comes after at most ``INITIAL_VOTING_INTERVAL`` s;
    later ones every ``voting_interval`` s. ``empty_file`` stands in for the
    GeoIP databases: parsing them costs each tor a second of CPU at start.
    """
    vote_delay = max(MIN_VOTE_DELAY, voting_interval // 5)
    initial = min(INITIAL_VOTING_INTERVAL, voting_interval)
    config: TorConfig = [
        ("TestingTorNetwork", "1"),
        ("DataDirectory", str(data_dir)),
        ("Nickname", nickname),
        ("Address", address),
        ("AssumeReachable", "1"),
        ("ExitRelay", "0"),
        ("ExitPolicy", "reject *:*"),
        ("RunAsDaemon", "0"),
        ("PidFile", str(data_dir / "pid")),
        ("Log", f"notice file {data_dir / 'notice.log'}"),
        ("SafeLogging", "0"),
        ("ShutdownWaitLength", "0"),
        ("ControlPort", "auto"),  # always loopback-only, even on a LAN network
        ("ControlPortWriteToFile", str(data_dir / CONTROL_PORT_FILE)),
        ("CookieAuthentication", "1"),
        ("SocksPort", "0"),
        # Short voting so a consensus exists within seconds, not minutes.
        ("TestingV3AuthInitialVotingInterval", str(initial)),
        ("TestingV3AuthInitialVoteDelay", str(MIN_VOTE_DELAY)),
        ("TestingV3AuthInitialDistDelay", str(MIN_VOTE_DELAY)),
        ("V3AuthVotingInterval", str(voting_interval)),
        ("V3AuthVoteDelay", str(vote_delay)),
        ("V3AuthDistDelay", str(vote_delay)),
        ("TestingV3AuthVotingStartOffset", "0"),
        # Without forced Guard flags clients can stall at 50% ("0% of guards bw").
        ("TestingDirAuthVoteGuard", vote_range),
        ("TestingDirAuthVoteGuardIsStrict", "1"),
        ("TestingDirAuthVoteHSDir", vote_range),
        ("TestingDirAuthVoteHSDirIsStrict", "1"),
        ("TestingMinTimeToReportBandwidth", "0"),
        ("GeoIPFile", str(empty_file)),
        ("GeoIPv6File", str(empty_file)),
    ]
    config += [("DirAuthority", line) for line in authorities]
    return config


def _or_ports(address: str, or_port: int, listen_or_port: int | None) -> TorConfig:
    """The ORPort: advertised and listened on, or (a shaped link in front) advertised on
    ``or_port`` without listening there, and listened on ``listen_or_port`` unadvertised."""
    if listen_or_port is None:
        return [("ORPort", f"{address}:{or_port}")]
    return [
        ("ORPort", f"{address}:{or_port} NoListen"),
        ("ORPort", f"{address}:{listen_or_port} NoAdvertise"),
    ]


def authority_config(
    common: Sequence[tuple[str, str]],
    *,
    or_port: int,
    dir_port: int,
    address: str,
    listen_or_port: int | None = None,
) -> TorConfig:
    """A directory authority: votes on the consensus of the private network."""
    return [
        *common,
        *_or_ports(address, or_port, listen_or_port),
        ("DirPort", f"{address}:{dir_port}"),
        ("AuthoritativeDirectory", "1"),
        ("V3AuthoritativeDirectory", "1"),
        ("ContactInfo", "anonsip testnet"),
    ]


def relay_config(
    common: Sequence[tuple[str, str]],
    *,
    or_port: int,
    dir_port: int,
    address: str,
    listen_or_port: int | None = None,
) -> TorConfig:
    """A middle relay that is also a guard and an HSDir (flags forced by the authorities)."""
    return [
        *common,
        *_or_ports(address, or_port, listen_or_port),
        ("DirPort", f"{address}:{dir_port}"),
    ]


def bridge_config(
    common: Sequence[tuple[str, str]], *, address: str, transport_port: int, program: str
) -> TorConfig:
    """An obfs4 bridge: reachable only through obfs4 on ``address:transport_port``.

    It publishes its descriptor nowhere (``PublishServerDescriptor 0``): no
    consensus lists it, a client learns it from its bridge line only. Its
    ORPort, which speaks plain Tor TLS, listens on loopback alone, so a
    censor probing the address finds obfs4 and nothing that looks like Tor.
    """
    return [
        *common,
        ("BridgeRelay", "1"),
        ("PublishServerDescriptor", "0"),
        ("BridgeDistribution", "none"),
        ("ORPort", "127.0.0.1:auto"),
        ("ServerTransportPlugin", f"obfs4 exec {program}"),
        ("ServerTransportListenAddr", f"obfs4 {address}:{transport_port}"),
        ("ExtORPort", "auto"),
    ]
