"""Durable daemon state in one SQLite file: chain identity, cursor, handled events, outbox.

The daemon rules (DESIGN.md, "Daemon rules") need at-least-once event handling with dedup of
completed events and sign-once transactions; both reduce to a few small tables whose writes
are single SQLite transactions, so a `kill -9` at any instant leaves a consistent state.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from daemons.errors import FedchainError

SCHEMA_VERSION = 1
DEFAULT_BLOCK_WINDOW = 128

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS kv (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS blocks (number INTEGER PRIMARY KEY, hash TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS handled (
    key TEXT PRIMARY KEY, block_number INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS handled_block ON handled (block_number);
CREATE TABLE IF NOT EXISTS outbox (
    key TEXT PRIMARY KEY, raw BLOB NOT NULL, tx_hash TEXT NOT NULL,
    nonce INTEGER NOT NULL, status TEXT NOT NULL, detail TEXT NOT NULL DEFAULT '');
CREATE TABLE IF NOT EXISTS outbox_superseded (tx_hash TEXT PRIMARY KEY, key TEXT NOT NULL);
"""

OUTBOX_PENDING = "pending"
OUTBOX_DONE = "done"
OUTBOX_DEAD = "dead"
OUTBOX_STATUSES = (OUTBOX_PENDING, OUTBOX_DONE, OUTBOX_DEAD)


class StoreError(FedchainError):
    """The state file is unreadable, from a newer version, or used inconsistently."""


@dataclass(frozen=True)
class ChainIdentity:
    """Which chain a state directory belongs to: its id and the hash of block 0."""

    chain_id: int
    genesis_hash: str


@dataclass(frozen=True)
class Cursor:
    """The last block whose events were handled (all of them, or some in log order)."""

    block_number: int
    block_hash: str


@dataclass(frozen=True)
class OutboxEntry:
    """A signed transaction persisted before it was sent, keyed by the caller's intent."""

    key: str
    raw: bytes
    tx_hash: str
    nonce: int
    status: str
    detail: str = ""


class StateStore:
    """SQLite-backed state (WAL, one connection, used from the event loop's thread)."""

    def __init__(self, path: str | Path, block_window: int = DEFAULT_BLOCK_WINDOW) -> None:
        self.path = Path(path)
        self.block_window = block_window
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(self.path, isolation_level=None)
        try:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.executescript(_SCHEMA)
        except sqlite3.DatabaseError as exc:
            self._db.close()
            raise StoreError(f"cannot open state file {self.path}: {exc}") from exc
        try:
            self._check_version()
        except StoreError:
            self._db.close()
            raise

    def _check_version(self) -> None:
        found = self._meta("schema_version")
        if found is None:
            self._set_meta({"schema_version": str(SCHEMA_VERSION)})
        elif int(found) > SCHEMA_VERSION:
            raise StoreError(
                f"state file {self.path} has schema {found}, newer than this fedchain "
                f"({SCHEMA_VERSION}); upgrade fedchain or use another state directory"
            )

    def close(self) -> None:
        """Close the connection (the WAL is checkpointed by SQLite)."""
        self._db.close()

    def __enter__(self) -> StateStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        """One write transaction: all or nothing, even under `kill -9`."""
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield self._db
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    def _meta(self, key: str) -> str | None:
        row = self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def _set_meta(self, values: dict[str, str]) -> None:
        with self._tx() as db:
            _upsert_meta(db, values)

    # chain identity and contract --------------------------------------------------------

    def identity(self) -> ChainIdentity | None:
        """The recorded chain identity, or None before the first start."""
        chain_id, genesis = self._meta("chain_id"), self._meta("genesis_hash")
        if chain_id is None or genesis is None:
            return None
        return ChainIdentity(int(chain_id), genesis)

    def set_identity(self, identity: ChainIdentity) -> None:
        """Record the chain identity (first start)."""
        values = {"chain_id": str(identity.chain_id), "genesis_hash": identity.genesis_hash}
        self._set_meta(values)

    def contract(self) -> str | None:
        """The contract address this state belongs to, if recorded."""
        return self._meta("contract")

    def set_contract(self, address: str) -> None:
        """Record the contract address (after deploying or attaching)."""
        self._set_meta({"contract": address})

    # cursor, block hashes, handled events ------------------------------------------------

    def cursor(self) -> Cursor | None:
        """The tailing cursor, or None before any block was processed."""
        number, block_hash = self._meta("cursor_block"), self._meta("cursor_hash")
        if number is None or block_hash is None:
            return None
        return Cursor(int(number), block_hash)

    def block_hash(self, number: int) -> str | None:
        """The stored hash of a recently processed block."""
        row = self._db.execute("SELECT hash FROM blocks WHERE number = ?", (number,)).fetchone()
        return None if row is None else str(row[0])

    def recent_blocks(self) -> list[Cursor]:
        """Stored (number, hash) pairs of the reorg window, newest first."""
        rows = self._db.execute("SELECT number, hash FROM blocks ORDER BY number DESC")
        return [Cursor(int(n), str(h)) for n, h in rows]

    def is_handled(self, key: str) -> bool:
        """Whether the event with this key was handled to completion."""
        row = self._db.execute("SELECT 1 FROM handled WHERE key = ?", (key,)).fetchone()
        return row is not None

    def handled_count(self) -> int:
        """How many event keys are recorded (for status and tests)."""
        return int(self._db.execute("SELECT COUNT(*) FROM handled").fetchone()[0])

    def advance(self, cursor: Cursor, handled_keys: tuple[str, ...] = ()) -> None:
        """Record handled event keys (all in the cursor block) and the new cursor, atomically."""
        current = self.cursor()
        if current is not None and cursor.block_number < current.block_number:
            raise StoreError(
                f"cursor would move back from {current.block_number} to "
                f"{cursor.block_number}; use rewind() for reorgs"
            )
        with self._tx() as db:
            db.executemany(
                "INSERT OR IGNORE INTO handled (key, block_number) VALUES (?, ?)",
                [(key, cursor.block_number) for key in handled_keys],
            )
            _record_block(db, cursor, self.block_window)

    def rewind(self, ancestor: Cursor | None) -> list[str]:
        """Forget blocks and handled keys after `ancestor` (a reorg); returns the dropped keys."""
        above = -1 if ancestor is None else ancestor.block_number
        with self._tx() as db:
            rows = db.execute("SELECT key FROM handled WHERE block_number > ?", (above,))
            dropped = [str(r[0]) for r in rows]
            db.execute("DELETE FROM handled WHERE block_number > ?", (above,))
            db.execute("DELETE FROM blocks WHERE number > ?", (above,))
            if ancestor is None:
                db.execute("DELETE FROM meta WHERE key IN ('cursor_block', 'cursor_hash')")
            else:
                _record_block(db, ancestor, self.block_window)
        return dropped

    # outbox ----------------------------------------------------------------------------

    def outbox_get(self, key: str) -> OutboxEntry | None:
        """The outbox entry for an intent key, if any."""
        row = self._db.execute(
            "SELECT key, raw, tx_hash, nonce, status, detail FROM outbox WHERE key = ?", (key,)
        ).fetchone()
        return None if row is None else _entry(row)

    def outbox_entries(self, status: str | None = None) -> list[OutboxEntry]:
        """All outbox entries (optionally of one status), by nonce."""
        sql = "SELECT key, raw, tx_hash, nonce, status, detail FROM outbox"
        args: tuple[str, ...] = ()
        if status is not None:
            sql, args = sql + " WHERE status = ?", (status,)
        return [_entry(r) for r in self._db.execute(sql + " ORDER BY nonce, key", args)]

    def outbox_put(self, entry: OutboxEntry) -> None:
        """Persist a signed transaction before it is sent (replaces a dead entry's row)."""
        _check_status(entry.status)
        with self._tx() as db:
            db.execute("DELETE FROM outbox_superseded WHERE key = ?", (entry.key,))
            db.execute(
                "INSERT OR REPLACE INTO outbox (key, raw, tx_hash, nonce, status, detail) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (entry.key, entry.raw, entry.tx_hash, entry.nonce, entry.status, entry.detail),
            )

    def outbox_supersede(self, key: str, raw: bytes, tx_hash: str) -> OutboxEntry:
        """Replace a pending entry's transaction by a re-signed one (same nonce, higher fees).

        The old hash is kept: whichever version is mined settles the entry.
        """
        with self._tx() as db:
            old = self.outbox_get(key)
            if old is None or old.status != OUTBOX_PENDING:
                raise StoreError(f"no pending outbox entry with key {key!r} to supersede")
            db.execute(
                "INSERT OR IGNORE INTO outbox_superseded (tx_hash, key) VALUES (?, ?)",
                (old.tx_hash, key),
            )
            db.execute("UPDATE outbox SET raw = ?, tx_hash = ? WHERE key = ?", (raw, tx_hash, key))
        return replace(old, raw=raw, tx_hash=tx_hash)

    def outbox_superseded(self, key: str) -> list[str]:
        """Hashes of the earlier versions of an entry's transaction, oldest first."""
        rows = self._db.execute(
            "SELECT tx_hash FROM outbox_superseded WHERE key = ? ORDER BY rowid", (key,)
        )
        return [str(r[0]) for r in rows]

    def outbox_mark(self, key: str, status: str, detail: str = "") -> None:
        """Set an outbox entry's status (done once mined, dead if it can never be mined)."""
        _check_status(status)
        with self._tx() as db:
            cur = db.execute(
                "UPDATE outbox SET status = ?, detail = ? WHERE key = ?", (status, detail, key)
            )
            if cur.rowcount != 1:
                raise StoreError(f"no outbox entry with key {key!r}")

    def max_pending_nonce(self) -> int | None:
        """The highest nonce among pending (signed, maybe sent, not yet mined) entries."""
        row = self._db.execute(
            "SELECT MAX(nonce) FROM outbox WHERE status = ?", (OUTBOX_PENDING,)
        ).fetchone()
        return None if row[0] is None else int(row[0])

    # the daemon's own durable facts -------------------------------------------------------

    def get(self, key: str, default: str | None = None) -> str | None:
        """A value from the daemon's key/value table."""
        row = self._db.execute("SELECT value FROM kv WHERE key = ?", (key,)).fetchone()
        return default if row is None else str(row[0])

    def put(self, key: str, value: str) -> None:
        """Store a value in the daemon's key/value table."""
        with self._tx() as db:
            db.execute("INSERT OR REPLACE INTO kv (key, value) VALUES (?, ?)", (key, value))

    def items(self, prefix: str) -> list[tuple[str, str]]:
        """Every (key, value) whose key starts with `prefix`, by key (a range of the index)."""
        rows = self._db.execute(
            "SELECT key, value FROM kv WHERE key >= ? AND key < ? ORDER BY key",
            (prefix, prefix + "\U0010ffff"),
        ).fetchall()
        return [(str(k), str(v)) for k, v in rows]

    def delete(self, key: str) -> None:
        """Remove a key from the daemon's key/value table (no error if absent)."""
        with self._tx() as db:
            db.execute("DELETE FROM kv WHERE key = ?", (key,))


def _upsert_meta(db: sqlite3.Connection, values: dict[str, str]) -> None:
    db.executemany("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", values.items())


def _record_block(db: sqlite3.Connection, cursor: Cursor, window: int) -> None:
    """Set the cursor, remember its hash, and drop hashes older than the reorg window."""
    _upsert_meta(db, {"cursor_block": str(cursor.block_number), "cursor_hash": cursor.block_hash})
    db.execute(
        "INSERT OR REPLACE INTO blocks (number, hash) VALUES (?, ?)",
        (cursor.block_number, cursor.block_hash),
    )
    db.execute("DELETE FROM blocks WHERE number <= ?", (cursor.block_number - window,))


def _entry(row: Any) -> OutboxEntry:
    key, raw, tx_hash, nonce, status, detail = row
    return OutboxEntry(str(key), bytes(raw), str(tx_hash), int(nonce), str(status), str(detail))


def _check_status(status: str) -> None:
    if status not in OUTBOX_STATUSES:
        raise StoreError(f"outbox status {status!r} is not one of {', '.join(OUTBOX_STATUSES)}")
