"""A node's home directory: where its keystore, store, tor and socket live.

Layout (the directory is 0700)::

    keystore        identities and secrets, encrypted under the passphrase
    store.sqlite    contacts, history and outbox (sensitive columns sealed)
    control.sock    the control API (0600)
    tor/            the DataDirectory of the tor this node launches
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

_SEED_BYTES = 32


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
