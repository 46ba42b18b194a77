"""Round records and the report built from real event dataclasses and manifest dicts."""

from pathlib import Path

from contracts.events import LogMeta, RoundClosed, RoundFailed, RoundOpened, UpdateSubmitted
from daemons.testnet.records import BlobFacts, build_rounds, round_wall_times, update_offsets
from daemons.testnet.report import (
    heldout_rows,
    rich_table,
    summarize,
    table_rows,
    write_report,
)

A, B = "0x" + "aa" * 20, "0x" + "bb" * 20


def meta(n: int) -> LogMeta:
    return LogMeta(block_number=n, block_hash="0x" + "00" * 32, tx_hash=f"0x{n:064x}", log_index=0)


EVENTS = [
    RoundOpened(1, "base1", b"\x01" * 32, 100, 1, 2, "cfg", meta(1)),
    UpdateSubmitted(1, A, "uA1", b"\x02" * 32, 30, meta(2)),
    UpdateSubmitted(1, B, "uB1", b"\x03" * 32, 10, meta(3)),
    RoundClosed(1, "model1", b"\x04" * 32, "man1", 2, meta(4)),
    RoundOpened(2, "model1", b"\x04" * 32, 200, 1, 2, "cfg", meta(5)),
    RoundFailed(2, 0, meta(6)),
]
MANIFEST = {
    "round_id": 1,
    "included": [{"client": A, "cid": "uA1", "digest": "0x", "num_samples": 30, "weight": 1.0}],
    "excluded": [{"client": B, "cid": "uB1", "reason": "norm", "detail": "too big"}],
    "metrics": {"accuracy": 0.81, "loss": 0.55, "num_samples": 100},
    "timings_s": {"aggregate_s": 0.1},
}
BLOBS = {
    "base1": BlobFacts(1000),
    "uA1": BlobFacts(2000, {"loss": 0.7, "train_s": 1.5}),
    "uB1": BlobFacts(2000, {"loss": 9.0, "train_s": 2.5}),
    "model1": BlobFacts(1000),
}
SEEN = {f"0x{n:064x}:0": t for n, t in [(1, 10.0), (2, 11.0), (4, 13.25), (5, 14.0), (6, 20.0)]}


def rounds():
    wall, offsets = round_wall_times(EVENTS, SEEN), update_offsets(EVENTS, SEEN)
    return build_rounds(EVENTS, {"man1": MANIFEST}, BLOBS, wall, offsets)


def test_records_fold_events_manifest_and_blobs() -> None:
    r1, r2 = rounds()
    assert (r1.status, r2.status) == ("closed", "failed")
    assert [u.status for u in r1.updates] == ["included", "excluded"]
    assert r1.updates[1].reason == "norm"
    assert r1.accuracy == 0.81 and r1.loss == 0.55
    # 2 submitters download base (2 x 1000) + 2 updates (4000) + model (1000)
    assert r1.bytes_moved == 7000
    assert r1.wall_s == 3.25 and r2.wall_s == 6.0
    assert r1.slowest_train_s == 2.5
    assert r1.updates[0].train["loss"] == 0.7
    # B's update was never seen by the watcher: only A's arrival time is known
    assert [u.seen_s for u in r1.updates] == [1.0, None]
    assert r1.last_update_s == 1.0 and r2.last_update_s is None


def test_table_and_summary() -> None:
    rs = rounds()
    rows = table_rows(rs)
    assert rows[0][:6] == ("1", "closed", "2/2", "1", "0.8100", "0.5500")
    assert rows[0][6] == "n/a"  # no receipts were read: no gas
    assert rows[0][9] == "0.75"  # overhead = 3.25 wall - 2.5 slowest training
    assert rows[1][4] == "n/a"
    s = summarize(rs)
    assert (s.rounds_closed, s.rounds_failed, s.final_accuracy) == (1, 1, 0.81)
    assert rich_table(rs).row_count == 2


def test_write_report_makes_html_and_pngs(tmp_path: Path) -> None:
    path = write_report(rounds(), [A, B], tmp_path, {"clients": "2"})
    text = path.read_text()
    assert "0.8100" in text and "uB1" in text and "norm" in text
    pngs = sorted(p.name for p in (tmp_path / "plots").glob("*.png"))
    assert pngs == sorted(
        [
            "headline.png",
            "loss.png",
            "participation.png",
            "train_loss.png",
            "bytes_moved.png",
            "round_time.png",
        ]
    )
    for name in pngs:
        assert (tmp_path / "plots" / name).read_bytes()[:4] == b"\x89PNG"
        assert f'src="plots/{name}"' in text


def test_the_forgetting_ledger_shows_per_round(tmp_path: Path) -> None:
    ledger = {"task-a": {"accuracy": 0.61, "loss": 1.2, "num_samples": 50.0}}
    manifest = MANIFEST | {"heldout": ledger}
    wall, offsets = round_wall_times(EVENTS, SEEN), update_offsets(EVENTS, SEEN)
    r1, r2 = build_rounds(EVENTS, {"man1": manifest}, BLOBS, wall, offsets)
    assert r1.heldout == ledger and r2.heldout == {}
    assert heldout_rows([r1, r2]) == (["task-a"], [("1", "0.6100")])
    page = write_report([r1, r2], [A, B], tmp_path, {}).read_text()
    assert "Forgetting ledger" in page and "<td>0.6100</td>" in page
    assert "Forgetting ledger" not in write_report(rounds(), [A, B], tmp_path, {}).read_text()
