"""A shared file of DHT bootstrap contacts (``dht-bootstrap.json`` in a directory).

Kademlia needs one known node to join (Maymounkov & Mazieres 2002, 2.3).
On a private Tor network the network's directory (written by
``anonsip testnet up``) holds this file: every node that runs there adds
its own contact, keeping the newest ``keep``, so each node becomes a
bootstrap contact for the ones that start after it.

The file is plain JSON, newest contact last::

    {"version": 1, "contacts": [{"onion_address": "...", "port": 7044,
                                 "public_key": "<64 hex digits>"}]}

It is read strictly and boundedly (size, entry count, exact keys and
types; the address must derive from the key) and garbage is skipped with a
log line, never raised: whoever can write the directory can at worst make
us miss contacts, and a contact only says where a node claims to be (Tor
authenticates the onion service when we dial it). Writers serialise on an
``fcntl`` lock and replace the file atomically (temp file, fsync, rename),
so readers never see half a file and concurrent writers never lose an entry.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from anonsip._errors import LocalError
from anonsip.dht._identity import Contact

__all__ = [
    "BOOTSTRAP_FILE",
    "MAX_BOOTSTRAP_BYTES",
    "MAX_BOOTSTRAP_CONTACTS",
    "BootstrapList",
    "decode_bootstrap_list",
    "encode_bootstrap_list",
]

log = logging.getLogger(__name__)

BOOTSTRAP_FILE = "dht-bootstrap.json"
FORMAT_VERSION = 1
DEFAULT_KEEP = 16
MAX_BOOTSTRAP_CONTACTS = 256
MAX_BOOTSTRAP_BYTES = 64 * 1024
_ENTRY_KEYS = frozenset({"onion_address", "port", "public_key"})


def encode_bootstrap_list(contacts: Sequence[Contact]) -> bytes:
    """The file's bytes for ``contacts`` (oldest first)."""
    if len(contacts) > MAX_BOOTSTRAP_CONTACTS:
        raise LocalError(f"a bootstrap list holds at most {MAX_BOOTSTRAP_CONTACTS} contacts")
    entries = [
        {"onion_address": c.onion_address, "port": c.port, "public_key": c.public_key.hex()}
        for c in contacts
    ]
    return json.dumps({"version": FORMAT_VERSION, "contacts": entries}, indent=1).encode() + b"\n"


def decode_bootstrap_list(raw: bytes, *, source: str = "bootstrap list") -> list[Contact]:
    """The valid contacts in ``raw``, oldest first, deduplicated; garbage is logged, skipped.

    Never raises on bad input: a missing, damaged or hostile file means
    fewer (or no) contacts, not a node that cannot start.
    """
    if len(raw) > MAX_BOOTSTRAP_BYTES:
        log.warning("ignoring %s: larger than %d bytes", source, MAX_BOOTSTRAP_BYTES)
        return []
    try:
        document = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        log.warning("ignoring %s: not UTF-8 JSON", source)
        return []
    entries = document.get("contacts") if isinstance(document, dict) else None
    if (
        not isinstance(document, dict)
        or document.get("version") != FORMAT_VERSION
        or not isinstance(entries, list)
    ):
        log.warning("ignoring %s: not a version %d bootstrap list", source, FORMAT_VERSION)
        return []
    if len(entries) > MAX_BOOTSTRAP_CONTACTS:
        log.warning(
            "%s has %d entries; reading the newest %d", source, len(entries), MAX_BOOTSTRAP_CONTACTS
        )
        entries = entries[-MAX_BOOTSTRAP_CONTACTS:]
    contacts: dict[bytes, Contact] = {}
    skipped = 0
    for entry in entries:
        contact = _contact(entry)
        if contact is None:
            skipped += 1
            continue
        contacts.pop(contact.public_key, None)  # a later entry for the same key wins
        contacts[contact.public_key] = contact
    if skipped:
        log.warning(
            "ignored %d malformed entr%s in %s", skipped, "y" if skipped == 1 else "ies", source
        )
    return list(contacts.values())


def _contact(entry: Any) -> Contact | None:
    if not isinstance(entry, dict) or set(entry) != _ENTRY_KEYS:
        return None
    address, port, key_hex = entry["onion_address"], entry["port"], entry["public_key"]
    if not (
        isinstance(address, str)
        and type(port) is int  # bool is an int subclass; true is not a port
        and isinstance(key_hex, str)
        and len(key_hex) == 64
        and all(c in "0123456789abcdef" for c in key_hex)
    ):
        return None
    try:
        contact = Contact.from_public_key(bytes.fromhex(key_hex), port)
    except ValueError:  # port out of range
        return None
    return contact if contact.onion_address == address else None


class BootstrapList:
    """The bootstrap file in ``directory``; keeps the newest ``keep`` contacts."""

    def __init__(self, directory: Path | str, *, keep: int = DEFAULT_KEEP) -> None:
        if not 1 <= keep <= MAX_BOOTSTRAP_CONTACTS:
            raise LocalError(f"keep between 1 and {MAX_BOOTSTRAP_CONTACTS} bootstrap contacts")
        self.directory = Path(directory)
        self.path = self.directory / BOOTSTRAP_FILE
        self.keep = keep

    def contacts(self) -> list[Contact]:
        """The newest ``keep`` valid contacts, oldest first ([] if there is no file yet)."""
        return self._read()[-self.keep :]

    def add_self(self, contact: Contact) -> None:
        """Add (or move to newest) ``contact``, dropping the oldest beyond ``keep``; atomic."""
        self.directory.mkdir(parents=True, exist_ok=True)
        with self._locked():
            current = [c for c in self._read() if c.public_key != contact.public_key]
            self._write([*current, contact][-self.keep :])

    def _read(self) -> list[Contact]:
        try:
            with self.path.open("rb") as f:
                raw = f.read(MAX_BOOTSTRAP_BYTES + 1)
        except FileNotFoundError:
            return []
        except OSError as exc:
            log.warning("cannot read the DHT bootstrap list %s: %s", self.path, exc)
            return []
        return decode_bootstrap_list(raw, source=str(self.path))

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        lock_path = self.directory / f".{BOOTSTRAP_FILE}.lock"
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # closing the descriptor releases the lock

    def _write(self, contacts: Sequence[Contact]) -> None:
        fd, tmp = tempfile.mkstemp(dir=self.directory, prefix=f".{BOOTSTRAP_FILE}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(encode_bootstrap_list(contacts))
                f.flush()
                os.fsync(f.fileno())
            os.chmod(tmp, 0o644)  # other local users' nodes on the testnet read it too
            os.replace(tmp, self.path)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise
