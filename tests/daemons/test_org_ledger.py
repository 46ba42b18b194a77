"""The org's ledger: one row per submission (a round's cost is linear in its clients), and
the one-document-per-round layout of older state files still read."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import pytest

from daemons.chain.store import StateStore
from daemons.org.ledger import ACCEPTED, Ledger, Submission


def sub(i: int) -> Submission:
    return Submission(f"0x{i:040x}", f"bafy{i}", "0x" + f"{i:02x}" * 32, 100 + i)


def test_each_event_and_verdict_writes_one_row(tmp_path: Path) -> None:
    with StateStore(tmp_path / "s.db") as store:
        ledger = Ledger(store)
        for i in (3, 1, 2):
            assert ledger.record(7, sub(i))
        assert not ledger.record(7, sub(1))  # a replayed event changes nothing
        ledger.judge(7, sub(2).client, ACCEPTED, train={"train_s": 1.5})
        assert ledger.record(8, sub(1))  # another round is another row
        rows = store.items("org:sub:7:")
        assert [k for k, _ in rows] == [f"org:sub:7:{sub(i).client}" for i in (1, 2, 3)]
        assert store.get("org:subs:7") is None  # no whole-round document any more
        subs = Ledger(store).submissions(7)  # a restarted org reads the same
        assert list(subs) == [sub(i).client for i in (1, 2, 3)]  # client order
        assert subs[sub(2).client].accepted and subs[sub(2).client].train == {"train_s": 1.5}
        assert subs[sub(1).client].verdict is None
        assert list(ledger.submissions(8)) == [sub(1).client]
        with pytest.raises(KeyError, match="no submission"):
            ledger.judge(7, sub(9).client, ACCEPTED)


def test_a_state_file_with_whole_round_documents_is_still_read(tmp_path: Path) -> None:
    with StateStore(tmp_path / "s.db") as store:
        old = {s.client: asdict(s) for s in (sub(1), sub(2))}
        old[sub(1).client]["verdict"] = "digest"
        store.put("org:subs:4", json.dumps(old, sort_keys=True))  # as the org wrote it before
        ledger = Ledger(store)
        assert not ledger.record(4, sub(2))  # recorded in the old document: a replay
        assert ledger.record(4, sub(3))
        ledger.judge(4, sub(2).client, ACCEPTED)  # a verdict on an old entry: now a row
        subs = ledger.submissions(4)
        assert list(subs) == [sub(i).client for i in (1, 2, 3)]
        assert [s.verdict for s in subs.values()] == ["digest", ACCEPTED, None]
