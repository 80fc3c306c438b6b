"""The store's SQLite schema as an ordered list of migrations.

``schema_version`` holds how many entries of ``MIGRATIONS`` were applied; a
new release appends a migration, never edits an old one. Columns ending in
``_sealed`` hold ``FieldCipher`` ciphertexts; ``peer`` columns hold the keyed
hash of an address.
"""

from __future__ import annotations

from typing import Final

__all__ = ["MIGRATIONS"]

MIGRATIONS: Final[tuple[str, ...]] = (
    """
    CREATE TABLE meta (
        name TEXT PRIMARY KEY,
        value BLOB NOT NULL
    );
    CREATE TABLE conversations (
        peer BLOB PRIMARY KEY,
        address_sealed BLOB NOT NULL,
        next_seq INTEGER NOT NULL DEFAULT 1,
        last_read_seq INTEGER NOT NULL DEFAULT 0
    );
    CREATE TABLE contacts (
        peer BLOB PRIMARY KEY REFERENCES conversations(peer),
        nick_sealed BLOB,
        note_sealed BLOB,
        state TEXT NOT NULL CHECK (state IN ('accepted', 'requested', 'blocked')),
        verified INTEGER NOT NULL DEFAULT 0 CHECK (verified IN (0, 1)),
        cache_sealed BLOB,
        cache_seq INTEGER,
        added REAL NOT NULL
    );
    CREATE TABLE messages (
        peer BLOB NOT NULL REFERENCES conversations(peer),
        direction TEXT NOT NULL CHECK (direction IN ('in', 'out')),
        message_id TEXT NOT NULL,
        seq INTEGER NOT NULL,
        text_sealed BLOB NOT NULL,
        time REAL NOT NULL,
        state TEXT NOT NULL
            CHECK (state IN ('queued', 'sent', 'delivered', 'received', 'failed')),
        PRIMARY KEY (peer, direction, message_id),
        UNIQUE (peer, seq)
    );
    CREATE UNIQUE INDEX messages_out_id ON messages (message_id) WHERE direction = 'out';
    CREATE TABLE outbox (
        message_id TEXT PRIMARY KEY,
        peer BLOB NOT NULL REFERENCES conversations(peer),
        seq INTEGER NOT NULL,
        attempts INTEGER NOT NULL DEFAULT 0,
        next_attempt REAL NOT NULL
    );
    CREATE INDEX outbox_peer ON outbox (peer, seq);
    CREATE TABLE requests (
        peer BLOB PRIMARY KEY REFERENCES conversations(peer),
        text_sealed BLOB NOT NULL,
        first_time REAL NOT NULL,
        last_time REAL NOT NULL,
        count INTEGER NOT NULL
    );
    """,
    # 2: honest delivery states (a request not yet accepted, a message in a
    # DHT mailbox), and sealed settings (our own presence survives a restart).
    """
    CREATE TABLE messages_v2 (
        peer BLOB NOT NULL REFERENCES conversations(peer),
        direction TEXT NOT NULL CHECK (direction IN ('in', 'out')),
        message_id TEXT NOT NULL,
        seq INTEGER NOT NULL,
        text_sealed BLOB NOT NULL,
        time REAL NOT NULL,
        state TEXT NOT NULL CHECK (state IN (
            'queued', 'request', 'sent', 'in_mailbox', 'delivered', 'received', 'failed')),
        PRIMARY KEY (peer, direction, message_id),
        UNIQUE (peer, seq)
    );
    INSERT INTO messages_v2 SELECT peer, direction, message_id, seq, text_sealed, time, state
        FROM messages;
    DROP TABLE messages;
    ALTER TABLE messages_v2 RENAME TO messages;
    CREATE UNIQUE INDEX messages_out_id ON messages (message_id) WHERE direction = 'out';
    CREATE TABLE settings (
        name TEXT PRIMARY KEY,
        value_sealed BLOB NOT NULL
    );
    ALTER TABLE requests ADD COLUMN message_id TEXT
    """,
    # 3: DHT nodes to join through at the next start (saved from the routing
    # table, from invites, or given by the user), sealed: a seized disk must
    # not list the DHT nodes this user talked to.
    """
    CREATE TABLE dht_seeds (
        id BLOB PRIMARY KEY,
        seed_sealed BLOB NOT NULL,
        source TEXT NOT NULL CHECK (source IN ('saved', 'invite', 'configured')),
        last_seen REAL NOT NULL
    );
    CREATE INDEX dht_seeds_source ON dht_seeds (source, last_seen)
    """,
    # 4: a conversation keeps its calls too (kind 'call': who called, how it
    # ended, how long), shown in order with the messages.
    """
    ALTER TABLE messages ADD COLUMN kind TEXT NOT NULL DEFAULT 'text'
    """,
    # 5: a contact's mailbox secret (sealed), which it gave us so that our mail
    # to it goes where strangers cannot reach.
    """
    ALTER TABLE contacts ADD COLUMN mailbox_sealed BLOB
    """,
)
