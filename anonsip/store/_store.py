"""The node's message store: contacts, conversations, the outbox and contact requests.

One SQLite file per home (stdlib ``sqlite3``), WAL journal with
``synchronous=FULL`` so a write that returned survives a crash or power cut.
Text, nicks, notes, request texts, contact caches and addresses are sealed
with ``FieldCipher``; addresses are found through their keyed hash.

Thread safety: one connection opened with ``check_same_thread=False`` and a
lock around every public method, so any thread may call (the node calls it
from trio directly or via ``trio.to_thread``); calls run one at a time.
The API is synchronous because every call is one short transaction. Time is
always passed in (``now``), randomness comes from the injected ``rng``.
"""

from __future__ import annotations

import contextlib
import math
import os
import sqlite3
import threading
import uuid
from collections.abc import Callable, Iterator, Sequence
from types import TracebackType
from typing import Any, Final, Self

from anonsip.store._backoff import retry_delay
from anonsip.store._crypto import FieldCipher
from anonsip.store._errors import (
    StoreCorruptError,
    StoreError,
    StoreFullError,
    StoreKeyError,
    StoreLimitError,
    StoreLockedError,
)
from anonsip.store._records import (
    Contact,
    ContactRequest,
    ContactState,
    Direction,
    Message,
    MessageState,
    OutboxItem,
)
from anonsip.store._schema import MIGRATIONS

__all__ = [
    "MAX_CONTACTS",
    "MAX_NICK_BYTES",
    "MAX_NOTE_BYTES",
    "MAX_OUTBOX_PER_PEER",
    "MAX_PENDING_REQUESTS",
    "MAX_REQUEST_TEXT_BYTES",
    "MAX_TEXT_BYTES",
    "MessageStore",
]

MAX_TEXT_BYTES: Final = 8192
MAX_REQUEST_TEXT_BYTES: Final = 1024
MAX_NICK_BYTES: Final = 64
MAX_NOTE_BYTES: Final = 1024
MAX_CACHE_BYTES: Final = 4096
MAX_OUTBOX_PER_PEER: Final = 500
MAX_PENDING_REQUESTS: Final = 100
MAX_DHT_SEEDS: Final = 64  # per source
DHT_SEED_SOURCES: Final = ("saved", "invite", "configured")
MAX_CONTACTS: Final = 5000
MAX_HISTORY: Final = 1000
DEFAULT_MAX_BYTES: Final = 512 * 1024 * 1024

_KEYCHECK: Final = b"anonsip message store v1"


def _map_sqlite_error(exc: sqlite3.Error, path: str) -> StoreError:
    text = str(exc).lower()
    if isinstance(exc, sqlite3.OperationalError):
        if "full" in text:  # "database or disk is full": SQLITE_FULL, disk or quota
            return StoreFullError(
                f"no space left for the message store {path}: free some disk space; "
                "messages already saved are intact, the last change was not made"
            )
        if "locked" in text or "busy" in text:
            return StoreLockedError(
                f"the message store {path} is in use by another process; "
                "is another node running in this home?"
            )
    if isinstance(exc, sqlite3.DatabaseError) and (
        "not a database" in text or "malformed" in text or "corrupt" in text
    ):
        return StoreCorruptError(
            f"the message store {path} is damaged ({exc}); move it away to start afresh, "
            "or restore it from a backup"
        )
    return StoreError(f"the message store {path} failed: {exc}")


def _check_incoming(message_id: str, text: str) -> None:
    _check_size("message", text, MAX_TEXT_BYTES)
    if not message_id or len(message_id) > 64:
        raise StoreError("an incoming message id must be 1 to 64 characters")


def _check_size(what: str, value: str, limit: int) -> None:
    size = len(value.encode())
    if size > limit:
        raise StoreLimitError(f"the {what} is {size} bytes; at most {limit} are allowed")


# How far an outbox message got; its state only moves up this order.
_OUTBOX_STATES = {
    MessageState.QUEUED: 0,
    MessageState.SENT: 1,
    MessageState.IN_MAILBOX: 2,
    MessageState.REQUEST: 3,
}


class MessageStore:
    """A home's contacts and messages. Open with ``MessageStore.open(path, key)``."""

    def __init__(
        self,
        db: sqlite3.Connection,
        path: str,
        cipher: FieldCipher,
        rng: Callable[[int], bytes],
    ) -> None:
        self._db = db
        self.path = path
        self._cipher = cipher
        self._rng = rng
        self._lock = threading.Lock()

    # -- opening and closing -------------------------------------------------

    @classmethod
    def open(
        cls,
        path: str | os.PathLike[str],
        key: bytes,
        *,
        rng: Callable[[int], bytes] = os.urandom,
        max_bytes: int = DEFAULT_MAX_BYTES,
    ) -> MessageStore:
        """Open or create the store at ``path`` with the 32-byte ``key`` from the keystore.

        ``max_bytes`` caps the file; writes beyond it fail with ``StoreFullError``
        exactly as a full disk does.
        """
        path = os.fspath(path)
        cipher = FieldCipher(key, rng)
        # Born private: SQLite gives the -wal and -shm files the main file's mode.
        os.close(os.open(path, os.O_RDWR | os.O_CREAT, 0o600))
        try:
            db = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=1.0)
        except sqlite3.Error as exc:
            raise _map_sqlite_error(exc, path) from exc
        store = cls(db, path, cipher, rng)
        try:
            with store._errors():
                db.execute("PRAGMA journal_mode = WAL").fetchone()
                db.execute("PRAGMA synchronous = FULL")
                db.execute("PRAGMA foreign_keys = ON")
                db.execute("PRAGMA secure_delete = ON")
                page_size = db.execute("PRAGMA page_size").fetchone()[0]
                db.execute(f"PRAGMA max_page_count = {max(16, max_bytes // page_size)}")
                store._migrate()
                store._check_key()
        except BaseException:
            db.close()
            raise
        return store

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    @contextlib.contextmanager
    def _errors(self) -> Iterator[None]:
        try:
            yield
        except sqlite3.Error as exc:
            raise _map_sqlite_error(exc, self.path) from exc

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        """One locked, immediate transaction: committed on success, rolled back on error."""
        with self._lock, self._errors():
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                with contextlib.suppress(sqlite3.Error):
                    self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def _migrate(self) -> None:
        db = self._db
        db.execute("BEGIN IMMEDIATE")
        try:
            db.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
            row = db.execute("SELECT version FROM schema_version").fetchone()
            version = 0 if row is None else int(row[0])
            if row is None:
                db.execute("INSERT INTO schema_version VALUES (0)")
            self._check_version(version)
            for script in MIGRATIONS[version:]:
                for statement in script.split(";"):
                    if statement.strip():
                        db.execute(statement)
            db.execute("UPDATE schema_version SET version = ?", (len(MIGRATIONS),))
        except BaseException:
            with contextlib.suppress(sqlite3.Error):
                db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")

    def _check_version(self, version: int) -> None:
        if version > len(MIGRATIONS):
            raise StoreError(
                f"the message store {self.path} was written by a newer anonsip "
                f"(schema {version}); upgrade anonsip to open it"
            )

    def _check_key(self) -> None:
        db = self._db
        row = db.execute("SELECT value FROM meta WHERE name = 'keycheck'").fetchone()
        if row is None:
            sealed = self._cipher.seal("meta.keycheck", b"", _KEYCHECK)
            db.execute("INSERT INTO meta VALUES ('keycheck', ?)", (sealed,))
            return
        try:
            ok = self._cipher.open("meta.keycheck", b"", row[0]) == _KEYCHECK
        except StoreCorruptError:
            ok = False
        if not ok:
            raise StoreKeyError(
                f"the message store {self.path} was written with a different key: "
                "wrong passphrase, or this home belongs to another identity"
            )

    # -- conversations (the peer's sealed address and sequence numbers) -------

    def _peer(self, db: sqlite3.Connection, address: str, *, create: bool) -> bytes | None:
        peer = self._cipher.peer_hash(address)
        exists = db.execute("SELECT 1 FROM conversations WHERE peer = ?", (peer,)).fetchone()
        if exists is None:
            if not create:
                return None
            sealed = self._cipher.seal_text("conversations.address", peer, address)
            db.execute(
                "INSERT INTO conversations (peer, address_sealed) VALUES (?, ?)", (peer, sealed)
            )
        return peer

    def _address(self, peer: bytes, sealed: bytes) -> str:
        return self._cipher.open_text("conversations.address", peer, sealed)

    @staticmethod
    def _next_seq(db: sqlite3.Connection, peer: bytes) -> int:
        (seq,) = db.execute("SELECT next_seq FROM conversations WHERE peer = ?", (peer,)).fetchone()
        db.execute("UPDATE conversations SET next_seq = next_seq + 1 WHERE peer = ?", (peer,))
        return int(seq)

    # -- contacts --------------------------------------------------------------

    _SELECT_CONTACTS = (
        "SELECT c.peer, v.address_sealed, c.nick_sealed, c.note_sealed, c.state, c.verified, "
        "c.cache_sealed, c.cache_seq, c.added FROM contacts c "
        "JOIN conversations v ON v.peer = c.peer"
    )

    def _contact(self, row: Any) -> Contact:
        peer, address, nick, note, state, verified, cache, cache_seq, added = row
        c = self._cipher
        return Contact(
            address=self._address(peer, address),
            nick="" if nick is None else c.open_text("contacts.nick", peer, nick),
            state=ContactState(state),
            verified=bool(verified),
            note="" if note is None else c.open_text("contacts.note", peer, note),
            cache=None if cache is None else c.open("contacts.cache", peer, cache),
            cache_seq=cache_seq,
            added=added,
        )

    def _all_contacts(self, db: sqlite3.Connection) -> list[Contact]:
        rows = db.execute(self._SELECT_CONTACTS).fetchall()
        return [self._contact(row) for row in rows]

    def _get_contact(self, db: sqlite3.Connection, address: str) -> Contact | None:
        row = db.execute(
            self._SELECT_CONTACTS + " WHERE c.peer = ?",
            (self._cipher.peer_hash(address),),
        ).fetchone()
        return None if row is None else self._contact(row)

    def _require_contact(self, db: sqlite3.Connection, address: str) -> Contact:
        contact = self._get_contact(db, address)
        if contact is None:
            raise StoreError(f"{address} is not among your contacts")
        return contact

    def add_contact(
        self,
        address: str,
        nick: str,
        now: float,
        *,
        state: ContactState = ContactState.ACCEPTED,
        note: str = "",
    ) -> Contact:
        """Add a contact, or update the nick, state and note of an existing one."""
        _check_size("nick", nick, MAX_NICK_BYTES)
        _check_size("note", note, MAX_NOTE_BYTES)
        if not nick and state is not ContactState.REQUESTED:
            raise StoreError("a contact needs a nick")  # only someone we wrote to may have none
        c = self._cipher
        with self._transaction() as db:
            others = self._all_contacts(db)
            if nick and any(o.nick == nick and o.address != address for o in others):
                raise StoreError(f"another contact is already called {nick!r}; pick another nick")
            if len(others) >= MAX_CONTACTS and all(o.address != address for o in others):
                raise StoreLimitError(f"you already have {MAX_CONTACTS} contacts")
            peer = self._peer(db, address, create=True)
            assert peer is not None
            nick_sealed = c.seal_text("contacts.nick", peer, nick)
            note_sealed = c.seal_text("contacts.note", peer, note)
            db.execute(
                "INSERT INTO contacts (peer, nick_sealed, note_sealed, state, added) "
                "VALUES (?, ?, ?, ?, ?) ON CONFLICT (peer) DO UPDATE SET "
                "nick_sealed = excluded.nick_sealed, note_sealed = excluded.note_sealed, "
                "state = excluded.state",
                (peer, nick_sealed, note_sealed, state.value, now),
            )
            db.execute("DELETE FROM requests WHERE peer = ?", (peer,))
            return self._require_contact(db, address)

    def contact(self, address: str) -> Contact | None:
        with self._transaction() as db:
            return self._get_contact(db, address)

    def contact_by_nick(self, nick: str) -> Contact | None:
        with self._transaction() as db:
            return next((c for c in self._all_contacts(db) if c.nick == nick), None)

    def contacts(self) -> list[Contact]:
        """All contacts (blocked ones included), sorted by nick."""
        with self._transaction() as db:
            return sorted(self._all_contacts(db), key=lambda c: (c.nick.casefold(), c.address))

    def remove_contact(self, address: str) -> bool:
        """Forget a contact (the conversation history stays); False if unknown."""
        with self._transaction() as db:
            cur = db.execute(
                "DELETE FROM contacts WHERE peer = ?", (self._cipher.peer_hash(address),)
            )
            return cur.rowcount > 0

    def set_verified(self, address: str, verified: bool) -> Contact:
        with self._transaction() as db:
            self._require_contact(db, address)
            db.execute(
                "UPDATE contacts SET verified = ? WHERE peer = ?",
                (int(verified), self._cipher.peer_hash(address)),
            )
            return self._require_contact(db, address)

    def contact_mailbox(self, address: str) -> bytes | None:
        """The mailbox secret a contact gave us, or None if it gave none (or is none)."""
        with self._transaction() as db:
            peer = self._cipher.peer_hash(address)
            row = db.execute(
                "SELECT mailbox_sealed FROM contacts WHERE peer = ?", (peer,)
            ).fetchone()
            if row is None or row[0] is None:
                return None
            return self._cipher.open("contacts.mailbox", peer, row[0])

    def set_contact_mailbox(self, address: str, secret: bytes) -> bool:
        """Keep the mailbox secret a contact gave us; False if it is not a contact."""
        with self._transaction() as db:
            peer = self._cipher.peer_hash(address)
            sealed = self._cipher.seal("contacts.mailbox", peer, secret)
            cur = db.execute(
                "UPDATE contacts SET mailbox_sealed = ? WHERE peer = ?", (sealed, peer)
            )
            return cur.rowcount > 0

    def set_note(self, address: str, note: str) -> Contact:
        _check_size("note", note, MAX_NOTE_BYTES)
        with self._transaction() as db:
            self._require_contact(db, address)
            peer = self._cipher.peer_hash(address)
            sealed = self._cipher.seal_text("contacts.note", peer, note)
            db.execute("UPDATE contacts SET note_sealed = ? WHERE peer = ?", (sealed, peer))
            return self._require_contact(db, address)

    def set_state(self, address: str, state: ContactState) -> Contact:
        with self._transaction() as db:
            self._require_contact(db, address)
            db.execute(
                "UPDATE contacts SET state = ? WHERE peer = ?",
                (state.value, self._cipher.peer_hash(address)),
            )
            return self._require_contact(db, address)

    def set_contact_cache(self, address: str, blob: bytes, seq: int) -> bool:
        """Remember the peer's newest contact blob; older or equal ``seq`` is ignored."""
        if len(blob) > MAX_CACHE_BYTES:
            raise StoreLimitError(f"a contact cache is at most {MAX_CACHE_BYTES} bytes")
        with self._transaction() as db:
            current = self._require_contact(db, address)
            if current.cache_seq is not None and seq <= current.cache_seq:
                return False
            peer = self._cipher.peer_hash(address)
            sealed = self._cipher.seal("contacts.cache", peer, blob)
            db.execute(
                "UPDATE contacts SET cache_sealed = ?, cache_seq = ? WHERE peer = ?",
                (sealed, seq, peer),
            )
            return True

    # -- blocking and contact requests ------------------------------------------

    def block(self, address: str, now: float) -> None:
        """Drop everything from ``address`` from now on, and any request it made."""
        with self._transaction() as db:
            peer = self._peer(db, address, create=True)
            assert peer is not None
            db.execute(
                "INSERT INTO contacts (peer, state, added) VALUES (?, 'blocked', ?) "
                "ON CONFLICT (peer) DO UPDATE SET state = 'blocked'",
                (peer, now),
            )
            db.execute("DELETE FROM requests WHERE peer = ?", (peer,))

    def unblock(self, address: str) -> bool:
        """Lift a block: a former contact (it has a nick) is accepted again, else forgotten."""
        with self._transaction() as db:
            peer = self._cipher.peer_hash(address)
            row = db.execute(
                "SELECT nick_sealed FROM contacts WHERE peer = ? AND state = 'blocked'", (peer,)
            ).fetchone()
            if row is None:
                return False
            if row[0] is None:
                db.execute("DELETE FROM contacts WHERE peer = ?", (peer,))
            else:
                db.execute("UPDATE contacts SET state = 'accepted' WHERE peer = ?", (peer,))
            return True

    def is_blocked(self, address: str) -> bool:
        with self._transaction() as db:
            row = db.execute(
                "SELECT 1 FROM contacts WHERE peer = ? AND state = 'blocked'",
                (self._cipher.peer_hash(address),),
            ).fetchone()
            return row is not None

    def record_request(
        self, address: str, text: str, now: float, *, message_id: str | None = None
    ) -> bool:
        """Store a contact request; True if it is new (worth telling the user about).

        A repeat only bumps its count and time; one from a blocked address or an
        existing contact is ignored (False). With ``MAX_PENDING_REQUESTS``
        already waiting, the oldest is dropped to make room: one sender cannot
        lock every newcomer out.
        """
        _check_size("request text", text, MAX_REQUEST_TEXT_BYTES)
        with self._transaction() as db:
            peer = self._cipher.peer_hash(address)
            if db.execute("SELECT 1 FROM contacts WHERE peer = ?", (peer,)).fetchone():
                return False
            cur = db.execute(
                "UPDATE requests SET count = count + 1, last_time = ? WHERE peer = ?",
                (now, peer),
            )
            if cur.rowcount:
                return False
            (pending,) = db.execute("SELECT count(*) FROM requests").fetchone()
            if pending >= MAX_PENDING_REQUESTS:
                db.execute(
                    "DELETE FROM requests WHERE peer IN (SELECT peer FROM requests "
                    "ORDER BY first_time, rowid LIMIT ?)",
                    (pending - MAX_PENDING_REQUESTS + 1,),
                )
            self._peer(db, address, create=True)
            sealed = self._cipher.seal_text("requests.text", peer, text)
            db.execute(
                "INSERT INTO requests (peer, text_sealed, first_time, last_time, count, "
                "message_id) VALUES (?, ?, ?, ?, 1, ?)",
                (peer, sealed, now, now, message_id),
            )
            return True

    def requests(self) -> list[ContactRequest]:
        """Waiting contact requests, oldest first."""
        with self._transaction() as db:
            rows = db.execute(
                "SELECT r.peer, v.address_sealed, r.text_sealed, r.first_time, r.last_time, "
                "r.count, r.message_id FROM requests r JOIN conversations v ON v.peer = r.peer "
                "ORDER BY r.first_time, r.rowid"
            ).fetchall()
            return [
                ContactRequest(
                    address=self._address(peer, address),
                    text=self._cipher.open_text("requests.text", peer, text),
                    time=first,
                    last_time=last,
                    count=count,
                    message_id=message_id or f"request-{int(first * 1000)}",
                )
                for peer, address, text, first, last, count, message_id in rows
            ]

    def pending_requests(self) -> int:
        with self._transaction() as db:
            (count,) = db.execute("SELECT count(*) FROM requests").fetchone()
            return int(count)

    def accept_request(self, address: str, nick: str, now: float) -> Contact:
        """Turn a waiting request into an accepted contact."""
        with self._lock:
            peer = self._cipher.peer_hash(address)
            with self._errors():
                row = self._db.execute("SELECT 1 FROM requests WHERE peer = ?", (peer,)).fetchone()
        if row is None:
            raise StoreError(f"there is no contact request from {address}")
        return self.add_contact(address, nick, now)

    def decline_request(self, address: str) -> bool:
        with self._transaction() as db:
            cur = db.execute(
                "DELETE FROM requests WHERE peer = ?", (self._cipher.peer_hash(address),)
            )
            return cur.rowcount > 0

    # -- messages and the outbox ---------------------------------------------------

    def _new_message_id(self) -> str:
        return str(uuid.UUID(bytes=self._rng(16), version=4))

    def enqueue(self, address: str, text: str, now: float) -> Message:
        """Save an outgoing message and put it in the outbox; durable when this returns."""
        _check_size("message", text, MAX_TEXT_BYTES)
        message_id = self._new_message_id()
        with self._transaction() as db:
            peer = self._peer(db, address, create=True)
            assert peer is not None
            (queued,) = db.execute("SELECT count(*) FROM outbox WHERE peer = ?", (peer,)).fetchone()
            if queued >= MAX_OUTBOX_PER_PEER:
                raise StoreLimitError(
                    f"{MAX_OUTBOX_PER_PEER} messages to {address} are still waiting to be "
                    "delivered; wait until the contact comes online"
                )
            seq = self._add_message(
                db, peer, Direction.OUT, message_id, text, now, MessageState.QUEUED
            )
            db.execute(
                "INSERT INTO outbox (message_id, peer, seq, attempts, next_attempt) "
                "VALUES (?, ?, ?, 0, ?)",
                (message_id, peer, seq, now),
            )
        return Message(
            message_id=message_id,
            peer=address,
            direction=Direction.OUT,
            seq=seq,
            text=text,
            time=now,
            state=MessageState.QUEUED,
        )

    def _seal_message(self, peer: bytes, direction: Direction, message_id: str, text: str) -> bytes:
        row = peer + direction.value.encode() + message_id.encode()
        return self._cipher.seal_text("messages.text", row, text)

    def _open_message(
        self, peer: bytes, direction: Direction, message_id: str, sealed: bytes
    ) -> str:
        row = peer + direction.value.encode() + message_id.encode()
        return self._cipher.open_text("messages.text", row, sealed)

    def record_incoming(self, address: str, message_id: str, text: str, time: float) -> bool:
        """Store a received message once: False if (peer, message_id) was already stored."""
        _check_incoming(message_id, text)
        with self._transaction() as db:
            return self._insert_incoming(db, address, message_id, text, time)

    def record_incoming_many(
        self, address: str, messages: Sequence[tuple[str, str]], time: float
    ) -> list[bool | StoreError]:
        """Store a peer's ``(message_id, text)`` in order, in one commit (one disk
        sync for a burst, which is as safe: nothing is answered before it).

        One outcome each, as ``record_incoming`` would give it: True (stored),
        False (had it), or the error, never raised: a message too long fails
        alone. If the store fills up, those that fit are kept one by one and
        every message from the first that does not fit on is ``StoreFullError``,
        so the sender's retries cannot land out of order.
        """
        checked: list[StoreError | None] = []
        for message_id, text in messages:
            try:
                _check_incoming(message_id, text)
            except StoreError as exc:
                checked.append(exc)
            else:
                checked.append(None)
        try:
            with self._transaction() as db:
                return [
                    error or self._insert_incoming(db, address, message_id, text, time)
                    for (message_id, text), error in zip(messages, checked, strict=True)
                ]
        except StoreFullError:
            pass
        outcomes: list[bool | StoreError] = []
        for (message_id, text), error in zip(messages, checked, strict=True):
            if error is not None:
                outcomes.append(error)
                continue
            try:
                outcomes.append(self.record_incoming(address, message_id, text, time))
            except StoreFullError as full:
                outcomes.extend([full] * (len(messages) - len(outcomes)))
                break
        return outcomes

    def _insert_incoming(
        self, db: sqlite3.Connection, address: str, message_id: str, text: str, time: float
    ) -> bool:
        peer = self._peer(db, address, create=True)
        assert peer is not None
        seen = db.execute(
            "SELECT 1 FROM messages WHERE peer = ? AND direction = 'in' AND message_id = ?",
            (peer, message_id),
        ).fetchone()
        if seen is not None:
            return False
        self._add_message(db, peer, Direction.IN, message_id, text, time, MessageState.RECEIVED)
        return True

    def record_call(
        self,
        address: str,
        call_id: str,
        *,
        outgoing: bool,
        ended: str,
        duration_s: float,
        time: float,
    ) -> bool:
        """Keep a finished call in the conversation (once per call); False if already kept."""
        if not call_id or len(call_id) > 128:
            raise StoreError("a call id must be 1 to 128 characters")
        direction = Direction.OUT if outgoing else Direction.IN
        summary = f"{ended[:64]}|{max(0.0, duration_s):.1f}"
        with self._transaction() as db:
            peer = self._peer(db, address, create=True)
            assert peer is not None
            seen = db.execute(
                "SELECT 1 FROM messages WHERE peer = ? AND direction = ? AND message_id = ?",
                (peer, direction.value, call_id),
            ).fetchone()
            if seen is not None:
                return False
            state = MessageState.DELIVERED if outgoing else MessageState.RECEIVED
            self._add_message(db, peer, direction, call_id, summary, time, state, kind="call")
            return True

    def _add_message(
        self,
        db: sqlite3.Connection,
        peer: bytes,
        direction: Direction,
        message_id: str,
        text: str,
        time: float,
        state: MessageState,
        *,
        kind: str = "text",
    ) -> int:
        """One line of a conversation, sealed, at its next sequence number (returned)."""
        seq = self._next_seq(db, peer)
        sealed = self._seal_message(peer, direction, message_id, text)
        db.execute(
            "INSERT INTO messages (peer, direction, message_id, seq, text_sealed, time, state, "
            "kind) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (peer, direction.value, message_id, seq, sealed, time, state.value, kind),
        )
        return seq

    def _message(self, address: str, row: Any) -> Message:
        peer, direction, message_id, seq, sealed, time, state, kind = row
        direction = Direction(direction)
        if kind == "call":
            text = self._open_message(peer, direction, message_id, sealed)
            ended, _, duration = text.partition("|")
            return Message(
                message_id=message_id,
                peer=address,
                direction=direction,
                seq=seq,
                text=ended,
                time=time,
                state=MessageState(state),
                kind="call",
                duration_s=float(duration or 0),
            )
        return Message(
            message_id=message_id,
            peer=address,
            direction=direction,
            seq=seq,
            text=self._open_message(peer, direction, message_id, sealed),
            time=time,
            state=MessageState(state),
        )

    _SELECT_MESSAGES = (
        "SELECT peer, direction, message_id, seq, text_sealed, time, state, kind, address_sealed "
        "FROM messages JOIN conversations USING (peer)"
    )

    def history(self, address: str, limit: int = 100) -> list[Message]:
        """The last ``limit`` messages with ``address`` (at most 1000), oldest first."""
        limit = max(0, min(limit, MAX_HISTORY))
        with self._transaction() as db:
            rows = db.execute(
                self._SELECT_MESSAGES + " WHERE peer = ? ORDER BY seq DESC LIMIT ?",
                (self._cipher.peer_hash(address), limit),
            ).fetchall()
            return [self._message(address, row[:-1]) for row in reversed(rows)]

    def outgoing(self, message_id: str) -> Message | None:
        """One of our messages by id, whatever its state."""
        with self._transaction() as db:
            row = db.execute(
                self._SELECT_MESSAGES
                + " WHERE direction = 'out' AND kind = 'text' AND message_id = ?",
                (message_id,),
            ).fetchone()
            if row is None:
                return None
            return self._message(self._address(row[0], row[-1]), row[:-1])

    def due(self, now: float) -> list[OutboxItem]:
        """Messages to try now: per peer in sequence order, peers with the oldest first.

        A peer's messages are returned only up to the first one still waiting
        out its back-off, so they never overtake each other.
        """
        return [item for address in self.due_peers(now) for item in self.due_for(address, now)]

    def due_peers(self, now: float) -> list[str]:
        """The peers ``due`` would return messages for, in its order, without opening
        a message (the outbox is read on every send: a burst opened every queued
        message once per send)."""
        with self._transaction() as db:
            rows = db.execute(
                "SELECT o.peer, o.next_attempt, v.address_sealed FROM outbox o "
                "JOIN conversations v ON v.peer = o.peer ORDER BY o.peer, o.seq"
            ).fetchall()
            oldest: dict[bytes, float] = {}
            sealed: dict[bytes, bytes] = {}
            waiting: set[bytes] = set()
            for peer, next_attempt, address in rows:
                if peer in waiting:
                    continue
                if next_attempt > now:
                    waiting.add(peer)  # what follows it waits too, in order
                    continue
                oldest[peer] = min(oldest.get(peer, math.inf), next_attempt)
                sealed[peer] = address
            addresses = {peer: self._address(peer, sealed[peer]) for peer in oldest}
        order = sorted(oldest, key=lambda peer: (oldest[peer], addresses[peer]))
        return [addresses[peer] for peer in order]

    def due_for(self, address: str, now: float, limit: int = -1) -> list[OutboxItem]:
        """``address``'s messages to try now, in order, up to the first still backing
        off; at most ``limit`` (-1: all)."""
        peer = self._cipher.peer_hash(address)
        with self._transaction() as db:
            rows = db.execute(
                "SELECT o.message_id, o.seq, o.attempts, o.next_attempt, m.text_sealed "
                "FROM outbox o JOIN messages m ON m.direction = 'out' "
                "AND m.message_id = o.message_id WHERE o.peer = ? ORDER BY o.seq LIMIT ?",
                (peer, limit),
            ).fetchall()
            items = []
            for message_id, seq, attempts, next_attempt, text in rows:
                if next_attempt > now:
                    break
                items.append(
                    OutboxItem(
                        message_id=message_id,
                        peer=address,
                        seq=seq,
                        text=self._open_message(peer, Direction.OUT, message_id, text),
                        attempts=attempts,
                        next_attempt=next_attempt,
                    )
                )
            return items

    def next_due(self) -> float | None:
        """The earliest ``next_attempt`` in the outbox (to sleep until), or None if empty."""
        with self._transaction() as db:
            (when,) = db.execute("SELECT min(next_attempt) FROM outbox").fetchone()
            return None if when is None else float(when)

    def outbox_size(self) -> int:
        with self._transaction() as db:
            (count,) = db.execute("SELECT count(*) FROM outbox").fetchone()
            return int(count)

    def count_outgoing(self, state: MessageState) -> int:
        """How many of our messages still in the outbox are in ``state``."""
        with self._transaction() as db:
            (count,) = db.execute(
                "SELECT count(*) FROM outbox o JOIN messages m ON m.direction = 'out' "
                "AND m.message_id = o.message_id WHERE m.state = ?",
                (state.value,),
            ).fetchone()
            return int(count)

    def queued_for(self, address: str) -> int:
        """How many of our messages to ``address`` wait in the outbox."""
        with self._transaction() as db:
            (count,) = db.execute(
                "SELECT count(*) FROM outbox WHERE peer = ?", (self._cipher.peer_hash(address),)
            ).fetchone()
            return int(count)

    def cancel_outbox(self, address: str) -> int:
        """Give up on every message waiting for ``address`` (state ``failed``); how many."""
        with self._transaction() as db:
            peer = self._cipher.peer_hash(address)
            ids = [
                row[0]
                for row in db.execute(
                    "SELECT message_id FROM outbox WHERE peer = ?", (peer,)
                ).fetchall()
            ]
            for message_id in ids:
                db.execute(
                    "UPDATE messages SET state = 'failed' WHERE direction = 'out' "
                    "AND message_id = ?",
                    (message_id,),
                )
            db.execute("DELETE FROM outbox WHERE peer = ?", (peer,))
            return len(ids)

    def mark_sent(self, message_id: str, now: float) -> bool:
        """Record an attempt: state ``sent``, retry after the back-off unless delivered first.

        False (and no change) if the message is no longer in the outbox.
        """
        with self._transaction() as db:
            row = db.execute(
                "SELECT attempts FROM outbox WHERE message_id = ?", (message_id,)
            ).fetchone()
            if row is None:
                return False
            attempts = int(row[0]) + 1
            db.execute(
                "UPDATE outbox SET attempts = ?, next_attempt = ? WHERE message_id = ?",
                (attempts, now + retry_delay(attempts), message_id),
            )
            db.execute(
                "UPDATE messages SET state = 'sent' WHERE direction = 'out' AND message_id = ?",
                (message_id,),
            )
            return True

    def note_attempt(self, message_id: str, now: float) -> bool:
        """Count a delivery attempt and set its back-off; the state does not change.

        False if the message is no longer in the outbox.
        """
        with self._transaction() as db:
            row = db.execute(
                "SELECT attempts FROM outbox WHERE message_id = ?", (message_id,)
            ).fetchone()
            if row is None:
                return False
            attempts = int(row[0]) + 1
            db.execute(
                "UPDATE outbox SET attempts = ?, next_attempt = ? WHERE message_id = ?",
                (attempts, now + retry_delay(attempts), message_id),
            )
            return True

    def note_attempts(self, message_ids: list[str], now: float) -> None:
        """``note_attempt`` for several messages in one transaction."""
        with self._transaction() as db:
            for message_id in message_ids:
                row = db.execute(
                    "SELECT attempts FROM outbox WHERE message_id = ?", (message_id,)
                ).fetchone()
                if row is None:
                    continue
                attempts = int(row[0]) + 1
                db.execute(
                    "UPDATE outbox SET attempts = ?, next_attempt = ? WHERE message_id = ?",
                    (attempts, now + retry_delay(attempts), message_id),
                )

    def finish_many(
        self, delivered: Sequence[str], failed: Sequence[str], sent: Sequence[str] = ()
    ) -> None:
        """Take settled messages out of the outbox, and move those of ``sent`` still in
        it forward to ``sent`` (as ``set_outgoing_state``), in one transaction."""
        if not delivered and not failed and not sent:
            return
        with self._transaction() as db:
            for message_id in sent:
                self._move_forward(db, message_id, MessageState.SENT)
            for ids, state in ((delivered, "delivered"), (failed, "failed")):
                for message_id in ids:
                    cur = db.execute("DELETE FROM outbox WHERE message_id = ?", (message_id,))
                    if cur.rowcount:
                        db.execute(
                            "UPDATE messages SET state = ? WHERE direction = 'out' "
                            "AND message_id = ?",
                            (state, message_id),
                        )

    def set_outgoing_state(self, message_id: str, state: MessageState) -> bool:
        """Move a message still in the outbox forward to ``state`` (sent, request, mailbox).

        A state never moves back (``sent`` stays ``sent`` if a later attempt
        only reaches a mailbox); False if nothing changed.
        """
        if state not in _OUTBOX_STATES:
            raise StoreError(f"an outbox message cannot be {state.value!r}")
        with self._transaction() as db:
            return self._move_forward(db, message_id, state)

    @staticmethod
    def _move_forward(db: sqlite3.Connection, message_id: str, state: MessageState) -> bool:
        row = db.execute(
            "SELECT m.state FROM messages m JOIN outbox o ON o.message_id = m.message_id "
            "WHERE m.direction = 'out' AND m.message_id = ?",
            (message_id,),
        ).fetchone()
        if row is None or _OUTBOX_STATES[MessageState(row[0])] >= _OUTBOX_STATES[state]:
            return False
        db.execute(
            "UPDATE messages SET state = ? WHERE direction = 'out' AND message_id = ?",
            (state.value, message_id),
        )
        return True

    def mark_delivered(self, message_id: str) -> bool:
        """The peer confirmed it: out of the outbox. False if it already was."""
        return self._finish(message_id, MessageState.DELIVERED)

    def mark_request(self, message_id: str) -> bool:
        """The peer's node holds it as a contact request: out of the outbox, state ``request``."""
        return self._finish(message_id, MessageState.REQUEST)

    def requests_accepted(self, address: str) -> list[str]:
        """The peer accepted us: our messages it held as a request are delivered; their ids."""
        with self._transaction() as db:
            peer = self._cipher.peer_hash(address)
            ids = [
                row[0]
                for row in db.execute(
                    "SELECT message_id FROM messages WHERE peer = ? AND direction = 'out' "
                    "AND state = 'request'",
                    (peer,),
                ).fetchall()
            ]
            db.execute(
                "UPDATE messages SET state = 'delivered' WHERE peer = ? AND direction = 'out' "
                "AND state = 'request'",
                (peer,),
            )
            return ids

    def mark_failed(self, message_id: str) -> bool:
        """Give up on a message: out of the outbox, state ``failed``."""
        return self._finish(message_id, MessageState.FAILED)

    def _finish(self, message_id: str, state: MessageState) -> bool:
        with self._transaction() as db:
            cur = db.execute("DELETE FROM outbox WHERE message_id = ?", (message_id,))
            if not cur.rowcount:
                return False
            db.execute(
                "UPDATE messages SET state = ? WHERE direction = 'out' AND message_id = ?",
                (state.value, message_id),
            )
            return True

    # -- DHT seeds -------------------------------------------------------------------

    def _seed_id(self, key: bytes, port: int) -> bytes:
        return self._cipher.peer_hash("dht-seed:" + key.hex() + f":{port}")

    def add_dht_seeds(self, source: str, seeds: list[tuple[bytes, int]], now: float) -> None:
        """Remember DHT nodes to join through; each source keeps its newest ``MAX_DHT_SEEDS``."""
        if source not in DHT_SEED_SOURCES:
            raise StoreError(f"unknown DHT seed source {source!r}")
        with self._transaction() as db:
            for key, port in seeds:
                if len(key) != 32 or not 0 < port < 65536:
                    raise StoreError("a DHT seed is a 32-byte key and a port")
                seed_id = self._seed_id(key, port)
                sealed = self._cipher.seal("dht_seeds.seed", seed_id, key + port.to_bytes(2, "big"))
                db.execute(
                    "INSERT INTO dht_seeds VALUES (?, ?, ?, ?) ON CONFLICT (id) DO UPDATE SET "
                    "last_seen = max(last_seen, excluded.last_seen)",
                    (seed_id, sealed, source, now),
                )
            db.execute(
                "DELETE FROM dht_seeds WHERE source = ? AND id NOT IN (SELECT id FROM dht_seeds "
                "WHERE source = ? ORDER BY last_seen DESC LIMIT ?)",
                (source, source, MAX_DHT_SEEDS),
            )

    def dht_seeds(self, source: str | None = None) -> list[tuple[bytes, int, str]]:
        """(key, port, source), newest first, optionally of one source."""
        with self._transaction() as db:
            rows = db.execute(
                "SELECT id, seed_sealed, source FROM dht_seeds "
                "WHERE ? IS NULL OR source = ? ORDER BY last_seen DESC",
                (source, source),
            ).fetchall()
        out = []
        for seed_id, sealed, where in rows:
            raw = self._cipher.open("dht_seeds.seed", seed_id, sealed)
            out.append((raw[:32], int.from_bytes(raw[32:34], "big"), where))
        return out

    def remove_dht_seed(self, key: bytes, port: int) -> bool:
        with self._transaction() as db:
            cur = db.execute("DELETE FROM dht_seeds WHERE id = ?", (self._seed_id(key, port),))
            return cur.rowcount > 0

    # -- settings ----------------------------------------------------------------

    def setting(self, name: str) -> str | None:
        """A sealed setting (e.g. our own presence), or None if never set."""
        with self._transaction() as db:
            row = db.execute("SELECT value_sealed FROM settings WHERE name = ?", (name,)).fetchone()
            if row is None:
                return None
            return self._cipher.open_text("settings.value", name.encode(), row[0])

    def set_setting(self, name: str, value: str) -> None:
        _check_size("setting", value, MAX_NOTE_BYTES)
        sealed = self._cipher.seal_text("settings.value", name.encode(), value)
        with self._transaction() as db:
            db.execute(
                "INSERT INTO settings VALUES (?, ?) ON CONFLICT (name) DO UPDATE SET "
                "value_sealed = excluded.value_sealed",
                (name, sealed),
            )

    # -- unread counts ---------------------------------------------------------

    def mark_read(self, address: str) -> None:
        with self._transaction() as db:
            db.execute(
                "UPDATE conversations SET last_read_seq = next_seq - 1 WHERE peer = ?",
                (self._cipher.peer_hash(address),),
            )

    def unread(self, address: str) -> int:
        with self._transaction() as db:
            (count,) = db.execute(
                "SELECT count(*) FROM messages m JOIN conversations v USING (peer) "
                "WHERE m.peer = ? AND m.direction = 'in' AND m.kind = 'text' "
                "AND m.seq > v.last_read_seq",
                (self._cipher.peer_hash(address),),
            ).fetchone()
            return int(count)

    def unread_counts(self) -> dict[str, int]:
        """Unread incoming messages per address, for every conversation that has any."""
        with self._transaction() as db:
            rows = db.execute(
                "SELECT v.peer, v.address_sealed, count(*) FROM messages m "
                "JOIN conversations v USING (peer) "
                "WHERE m.direction = 'in' AND m.kind = 'text' AND m.seq > v.last_read_seq "
                "GROUP BY v.peer"
            ).fetchall()
            return {self._address(peer, address): int(n) for peer, address, n in rows}
