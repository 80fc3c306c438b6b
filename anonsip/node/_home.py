"""A node's home directory: where its keystore, store, tor and socket live.

Layout (the directory is 0700)::

    keystore        identities and secrets, encrypted under the passphrase
    store.sqlite    contacts, history and outbox (sensitive columns sealed)
    control.sock    the control API (0600)
    tor/            the DataDirectory of the tor this node launches
    bridges         the bridge lines the node's tor enters the network through
                    (0600; one per line; empty or absent: no bridges)
    node.log        the node's log (no secrets)

``init`` makes one identity and the node's other secrets: the seed of the
identity's onion service, the seed of the DHT node's onion service (its
node id derives from it) and the message-store key. They are independent
random values, so nothing on the wire links the identity, its onion
service and the DHT node.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from anonsip._errors import LocalError
from anonsip.identity import (
    DHT_NODE_KEY,
    MESSAGE_STORE_KEY,
    MODERATE_KDF,
    ONION_SERVICE_KEY,
    Identity,
    KdfParams,
    Keystore,
    RandomSource,
)
from onion import Bridge, InvalidBridgeLine, parse_bridge_line

_SEED_BYTES = 32
MAX_BRIDGES = 64
MAX_BRIDGES_FILE = 256 * 1024


@dataclass(frozen=True, kw_only=True)
class Unlocked:
    """What an opened keystore gives the node."""

    identity: Identity
    onion_seed: bytes
    dht_seed: bytes
    store_key: bytes


class Home:
    """The files of one node."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path).expanduser().absolute()

    @property
    def keystore_path(self) -> Path:
        return self.path / "keystore"

    @property
    def store_path(self) -> Path:
        return self.path / "store.sqlite"

    @property
    def control_path(self) -> Path:
        return self.path / "control.sock"

    @property
    def tor_dir(self) -> Path:
        return self.path / "tor"

    @property
    def bridges_path(self) -> Path:
        return self.path / "bridges"

    @property
    def log_path(self) -> Path:
        return self.path / "node.log"

    def exists(self) -> bool:
        return self.keystore_path.exists()

    def _make_private_dir(self) -> None:
        self.path.mkdir(mode=0o700, parents=True, exist_ok=True)
        mode = stat.S_IMODE(self.path.stat().st_mode)
        if mode & 0o077:
            os.chmod(self.path, 0o700)

    def init(
        self,
        nick: str,
        passphrase: str | None,
        *,
        rng: RandomSource,
        allow_unencrypted: bool = False,
        kdf: KdfParams = MODERATE_KDF,
    ) -> Identity:
        """Create the keystore with a new identity and the node's secrets."""
        if self.exists():
            raise LocalError(f"{self.path} already holds an anonsip identity")
        self._make_private_dir()
        keystore = Keystore.create(
            self.keystore_path,
            passphrase,
            rng=rng,
            allow_unencrypted=allow_unencrypted,
            kdf=kdf,
        )
        identity = Identity.generate(nick, rng=rng)
        keystore.add_identity(identity)
        keystore.set_secret(ONION_SERVICE_KEY, rng(_SEED_BYTES))
        keystore.set_secret(DHT_NODE_KEY, rng(_SEED_BYTES))
        keystore.set_secret(MESSAGE_STORE_KEY, rng(_SEED_BYTES))
        return identity

    def unlock(self, passphrase: str | None, *, rng: RandomSource) -> Unlocked:
        """Open the keystore; ``WrongPassphrase`` leaves everything untouched."""
        if not self.exists():
            raise LocalError(
                f"no anonsip identity in {self.path}; create one with: "
                f"anonsip --home {self.path} init --nick NAME"
            )
        self._make_private_dir()
        keystore = Keystore.open(self.keystore_path, passphrase, rng=rng)
        identities = keystore.identities()
        if not identities:
            raise LocalError(f"the keystore in {self.path} holds no identity")
        # One identity per node for now; the keystore already holds many.
        identity = identities[sorted(identities)[0]]
        return Unlocked(
            identity=identity,
            onion_seed=keystore.secret(ONION_SERVICE_KEY),
            dht_seed=keystore.secret(DHT_NODE_KEY),
            store_key=keystore.secret(MESSAGE_STORE_KEY),
        )

    def public_identity(self, passphrase: str | None, *, rng: RandomSource) -> Identity:
        return self.unlock(passphrase, rng=rng).identity

    # -- bridges -----------------------------------------------------------------------

    def bridges(self) -> list[Bridge]:
        """The bridges kept here, in the order they were added (none if the file is absent)."""
        try:
            with self.bridges_path.open("rb") as f:
                raw = f.read(MAX_BRIDGES_FILE + 1)
        except FileNotFoundError:
            return []
        except OSError as exc:
            raise LocalError(f"cannot read {self.bridges_path}: {exc.strerror}") from exc
        if len(raw) > MAX_BRIDGES_FILE:
            raise LocalError(f"{self.bridges_path} is too large to be a list of bridges")
        found: list[Bridge] = []
        for number, line in enumerate(raw.decode("utf-8", "replace").splitlines(), 1):
            if not line.strip() or line.lstrip().startswith("#"):
                continue
            try:
                found.append(parse_bridge_line(line))
            except InvalidBridgeLine as exc:
                raise LocalError(
                    f"{self.bridges_path}, line {number}: {exc}; fix or remove it"
                    " (anonsip bridges remove N)"
                ) from exc
        return found[:MAX_BRIDGES]

    def add_bridges(self, lines: Iterable[str]) -> list[Bridge]:
        """Keep ``lines`` (validated) for the next starts; the whole list afterwards.

        A line already kept is not added twice; a new line for a kept
        transport and address replaces the old one (a bridge's new cert).
        """
        new = [parse_bridge_line(line) for line in lines]
        kept = self.bridges()
        for bridge in new:
            kept = [
                k for k in kept if (k.transport, k.address) != (bridge.transport, bridge.address)
            ]
            kept.append(bridge)
        if len(kept) > MAX_BRIDGES:
            raise LocalError(f"at most {MAX_BRIDGES} bridges can be kept; remove some first")
        self._write_bridges(kept)
        return kept

    def remove_bridges(self, which: str) -> list[Bridge]:
        """Forget the bridges ``which`` names (its number in the list, its address, its
        fingerprint or its line, or ``all``); the ones removed."""
        kept = self.bridges()
        if which == "all":
            gone, left = kept, []
        else:
            gone = [b for i, b in enumerate(kept, 1) if _names(b, i, which)]
            left = [b for b in kept if b not in gone]
        if not gone:
            raise LocalError(
                f"no kept bridge is {which!r}: give its number, address or fingerprint"
                " (anonsip bridges list)"
            )
        self._write_bridges(left)
        return gone

    def _write_bridges(self, bridges: list[Bridge]) -> None:
        self._make_private_dir()
        text = "".join(f"{b.line()}\n" for b in bridges)
        tmp = self.bridges_path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        tmp.replace(self.bridges_path)


def _names(bridge: Bridge, number: int, which: str) -> bool:
    which = which.strip()
    if which.isdigit():
        return int(which) == number
    return which in (bridge.address, bridge.line()) or (
        bridge.fingerprint is not None and which.upper() == bridge.fingerprint
    )
