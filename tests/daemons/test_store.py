"""StateStore: identity, cursor + handled keys in one transaction, rewind, outbox, kv."""

from __future__ import annotations

import multiprocessing
import os
import sqlite3
from pathlib import Path

import pytest

from daemons.chain.store import (
    OUTBOX_DEAD,
    OUTBOX_DONE,
    OUTBOX_PENDING,
    ChainIdentity,
    Cursor,
    OutboxEntry,
    StateStore,
    StoreError,
)


def _h(n: int) -> str:
    return "0x" + f"{n:064x}"


def test_fresh_store_is_empty(tmp_path: Path) -> None:
    with StateStore(tmp_path / "s.db") as store:
        assert store.identity() is None
        assert store.cursor() is None
        assert store.contract() is None
        assert store.handled_count() == 0
        assert store.outbox_entries() == []


def test_identity_contract_and_cursor_survive_reopen(tmp_path: Path) -> None:
    path = tmp_path / "state" / "s.db"
    with StateStore(path) as store:
        store.set_identity(ChainIdentity(31337, _h(0)))
        store.set_contract("0x" + "ab" * 20)
        store.advance(Cursor(5, _h(5)), ("0xaa:0", "0xaa:1"))
    with StateStore(path) as store:
        assert store.identity() == ChainIdentity(31337, _h(0))
        assert store.contract() == "0x" + "ab" * 20
        assert store.cursor() == Cursor(5, _h(5))
        assert store.is_handled("0xaa:1") and not store.is_handled("0xaa:2")
        assert store.block_hash(5) == _h(5)


def test_advance_rejects_moving_back(tmp_path: Path) -> None:
    with StateStore(tmp_path / "s.db") as store:
        store.advance(Cursor(7, _h(7)))
        store.advance(Cursor(7, _h(7)), ("k:0",))  # same block, more events: fine
        with pytest.raises(StoreError, match="rewind"):
            store.advance(Cursor(6, _h(6)))


def test_block_window_keeps_only_recent_hashes(tmp_path: Path) -> None:
    with StateStore(tmp_path / "s.db", block_window=3) as store:
        for n in range(10):
            store.advance(Cursor(n, _h(n)))
        assert [c.block_number for c in store.recent_blocks()] == [9, 8, 7]
        assert store.block_hash(6) is None


def test_rewind_drops_orphaned_keys_and_blocks(tmp_path: Path) -> None:
    with StateStore(tmp_path / "s.db") as store:
        store.advance(Cursor(3, _h(3)), ("a:0",))
        store.advance(Cursor(4, _h(4)), ("b:0", "b:1"))
        store.advance(Cursor(6, _h(6)), ("c:0",))
        dropped = store.rewind(Cursor(3, _h(3)))
        assert sorted(dropped) == ["b:0", "b:1", "c:0"]
        assert store.cursor() == Cursor(3, _h(3))
        assert store.is_handled("a:0") and not store.is_handled("c:0")
        assert [c.block_number for c in store.recent_blocks()] == [3]
        store.rewind(None)
        assert store.cursor() is None and store.handled_count() == 0


def test_advance_is_atomic_when_a_write_fails(tmp_path: Path) -> None:
    with StateStore(tmp_path / "s.db") as store:
        store.advance(Cursor(1, _h(1)), ("a:0",))
        store._db.execute(
            "CREATE TRIGGER boom BEFORE INSERT ON blocks BEGIN "
            "SELECT RAISE(ABORT, 'disk full'); END"
        )
        with pytest.raises(sqlite3.DatabaseError, match="disk full"):
            store.advance(Cursor(2, _h(2)), ("b:0",))
        assert not store.is_handled("b:0")
        assert store.cursor() == Cursor(1, _h(1))


def _advance_then_die(path: str) -> None:
    store = StateStore(path)
    store.advance(Cursor(9, _h(9)), ("x:0", "x:1"))
    os._exit(0)  # no close(), no checkpoint: like kill -9 right after the commit


def test_committed_advance_survives_abrupt_exit(tmp_path: Path) -> None:
    path = str(tmp_path / "s.db")
    proc = multiprocessing.get_context("spawn").Process(target=_advance_then_die, args=(path,))
    proc.start()
    proc.join(60)
    assert proc.exitcode == 0
    with StateStore(path) as store:
        assert store.cursor() == Cursor(9, _h(9))
        assert store.is_handled("x:0") and store.is_handled("x:1")


def test_outbox_roundtrip_mark_and_pending_nonce(tmp_path: Path) -> None:
    with StateStore(tmp_path / "s.db") as store:
        assert store.max_pending_nonce() is None
        store.outbox_put(OutboxEntry("open:1", b"\x01\x02", _h(1), 4, OUTBOX_PENDING))
        store.outbox_put(OutboxEntry("close:1", b"\x03", _h(2), 5, OUTBOX_PENDING))
        assert store.max_pending_nonce() == 5
        store.outbox_mark("close:1", OUTBOX_DONE)
        assert store.max_pending_nonce() == 4
        store.outbox_mark("open:1", OUTBOX_DEAD, "nonce 4 used by another transaction")
        assert store.max_pending_nonce() is None
        dead = store.outbox_get("open:1")
        assert dead is not None and dead.raw == b"\x01\x02" and dead.detail.startswith("nonce")
        assert [e.key for e in store.outbox_entries(OUTBOX_DONE)] == ["close:1"]
        assert store.outbox_get("missing") is None


def test_outbox_rejects_unknown_status_and_key(tmp_path: Path) -> None:
    with StateStore(tmp_path / "s.db") as store:
        with pytest.raises(StoreError, match="pending, done, dead"):
            store.outbox_put(OutboxEntry("k", b"", _h(1), 0, "sent"))
        with pytest.raises(StoreError, match="no outbox entry"):
            store.outbox_mark("nope", OUTBOX_DONE)


def test_kv_table(tmp_path: Path) -> None:
    with StateStore(tmp_path / "s.db") as store:
        assert store.get("model_cid") is None
        assert store.get("model_cid", "none") == "none"
        store.put("model_cid", "bafy1")
        store.put("model_cid", "bafy2")
        assert store.get("model_cid") == "bafy2"
        store.delete("model_cid")
        store.delete("model_cid")
        assert store.get("model_cid") is None


def test_kv_items_are_a_key_prefix_range(tmp_path: Path) -> None:
    with StateStore(tmp_path / "s.db") as store:
        for key in ["org:sub:1:0xB", "org:sub:1:0xA", "org:sub:10:0xA", "org:subs:1", "org:x"]:
            store.put(key, key.upper())
        assert store.items("org:sub:1:") == [
            ("org:sub:1:0xA", "ORG:SUB:1:0XA"),
            ("org:sub:1:0xB", "ORG:SUB:1:0XB"),
        ]
        assert store.items("org:sub:2:") == []
        assert [k for k, _ in store.items("org:")] == [
            "org:sub:10:0xA",
            "org:sub:1:0xA",
            "org:sub:1:0xB",
            "org:subs:1",
            "org:x",
        ]


def test_newer_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    StateStore(path).close()
    db = sqlite3.connect(path)
    db.execute("UPDATE meta SET value = '99' WHERE key = 'schema_version'")
    db.commit()
    db.close()
    with pytest.raises(StoreError, match="schema 99, newer"):
        StateStore(path)


def test_garbage_file_gives_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    path.write_bytes(b"this is not a database" * 100)
    with pytest.raises(StoreError, match="cannot open state file"):
        StateStore(path)
