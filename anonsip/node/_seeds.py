"""Where a node finds the DHT when it starts, and what it keeps for the next start.

Kademlia needs one node to join through. A node tries its sources in this
order, and stops at the first that brings it into the DHT:

1. ``saved``: good contacts of its own routing table, kept (sealed) in its
   store and refreshed while it runs, so a restarted node rejoins alone;
2. ``invite``: the DHT contacts of invites the user added;
3. ``configured``: contacts the user gave (``anonsip bootstrap add``,
   ``run --bootstrap FILE_OR_DIR``);
4. the private network's own list (its directory's ``dht-bootstrap.json``).

A contact written by a person is ``ONION[:PORT]`` (a v3 onion address,
with or without ``.onion``; the DHT's port 7044 if none) or an invite.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from anonsip._errors import LocalError
from anonsip.dht import BOOTSTRAP_FILE, BootstrapList, Contact, decode_bootstrap_list
from anonsip.invite import InvalidInvite, Invite, looks_like_invite
from anonsip.store import MessageStore
from onion import InvalidOnionAddress, public_key_from_onion_address

__all__ = [
    "DEFAULT_DHT_PORT",
    "SOURCES",
    "SeedSource",
    "parse_seed",
    "read_seed_file",
    "seed_sources",
]

DEFAULT_DHT_PORT = 7044
SOURCES = ("saved", "invite", "configured", "network")
MAX_SEED_FILE = 64 * 1024


@dataclass(frozen=True, kw_only=True)
class SeedSource:
    name: str
    contacts: tuple[Contact, ...]


def parse_seed(text: str) -> list[Contact]:
    """``ONION[:PORT]`` or an invite (its DHT contacts) -> contacts; ``LocalError`` if neither."""
    text = text.strip()
    if looks_like_invite(text):
        try:
            invite = Invite.parse(text)
        except InvalidInvite as exc:
            raise LocalError(str(exc)) from exc
        return [Contact.from_public_key(s.key, s.port) for s in invite.seeds]
    host, _, port_text = text.partition(":")
    host = host.removesuffix(".onion")
    try:
        key = public_key_from_onion_address(host)
        port = int(port_text) if port_text else DEFAULT_DHT_PORT
        return [Contact.from_public_key(key, port)]
    except (InvalidOnionAddress, ValueError) as exc:
        raise LocalError(
            f"{text[:80]!r} is neither a DHT contact (ONION[:PORT]) nor an invite"
        ) from exc


def read_seed_file(path: Path) -> list[Contact]:
    """A bootstrap list (JSON, as a private network's directory holds) or one contact a line."""
    if path.is_dir():
        return BootstrapList(path).contacts()
    try:
        raw = path.read_bytes()[: MAX_SEED_FILE + 1]
    except OSError as exc:
        raise LocalError(f"cannot read the bootstrap source {path}: {exc.strerror}") from exc
    if len(raw) > MAX_SEED_FILE:
        raise LocalError(f"the bootstrap source {path} is larger than {MAX_SEED_FILE} bytes")
    if raw.lstrip().startswith(b"{"):
        try:
            json.loads(raw)
        except ValueError as exc:
            raise LocalError(f"{path} is not a bootstrap list: {exc}") from exc
        return decode_bootstrap_list(raw, source=str(path))
    contacts: list[Contact] = []
    for line in raw.decode("utf-8", errors="replace").splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            contacts += parse_seed(line)
    return contacts


def seed_sources(
    store: MessageStore, configured: Sequence[Path], network: Path | None
) -> list[SeedSource]:
    """Every source, in the order a starting node tries them (see the module docstring)."""
    by_source: dict[str, list[Contact]] = {name: [] for name in SOURCES}
    for key, port, source in store.dht_seeds():
        try:
            by_source[source].append(Contact.from_public_key(key, port))
        except ValueError:
            continue  # a sealed row we wrote ourselves; a bad key cannot come from outside
    for path in configured:
        by_source["configured"] += read_seed_file(path)
    if network is not None and (network / BOOTSTRAP_FILE).exists():
        by_source["network"] += BootstrapList(network).contacts()
    return [SeedSource(name=name, contacts=tuple(by_source[name])) for name in SOURCES]
