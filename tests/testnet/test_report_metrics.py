"""The improved report: headline metric by name, round-0 baseline, client names, gas, classes."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from contracts.events import LogMeta, RoundClosed, RoundOpened, UpdateSubmitted
from daemons.testnet.facts import Gas, fold_gas, headline_of, lower_is_better
from daemons.testnet.plots import data_limits, metric_series, per_class_grid
from daemons.testnet.records import build_rounds
from daemons.testnet.report import summarize, table_rows, write_report

A, B = "0x" + "aa" * 20, "0x" + "bb" * 20


def meta(n: int, tx: int | None = None) -> LogMeta:
    return LogMeta(n, "0x" + "00" * 32, f"0x{tx or n:064x}", 0)


EVENTS = [
    RoundOpened(1, "base1", b"\x01" * 32, 100, 1, 2, "cfg", meta(1)),
    UpdateSubmitted(1, A, "uA1", b"\x02" * 32, 30, meta(2)),
    UpdateSubmitted(1, B, "uB1", b"\x03" * 32, 10, meta(3)),
    RoundClosed(1, "model1", b"\x04" * 32, "man1", 2, meta(4)),
    RoundOpened(2, "model1", b"\x04" * 32, 200, 1, 2, "cfg", meta(5)),
    UpdateSubmitted(2, A, "uA2", b"\x05" * 32, 30, meta(6)),
    RoundClosed(2, "model2", b"\x06" * 32, "man2", 1, meta(7)),
]


def manifest(rid: int, acc: list[float | None], **extra: object) -> dict[str, object]:
    inc = [{"client": A, "cid": f"uA{rid}", "digest": "0x", "num_samples": 30, "weight": 1.0}]
    return {
        "round_id": rid,
        "included": inc,
        "excluded": [],
        "metrics": {"accuracy": 0.5 + 0.1 * rid, "loss": 1.0 / rid, "num_samples": 100},
        "headline_metric": "accuracy",
        "per_class": {"accuracy": acc, "num_samples": [60, 40]},
        **extra,
    }


MANIFESTS = {
    "man1": manifest(
        1,
        [0.7, 0.45],
        baseline={
            "metrics": {"accuracy": 0.1, "loss": 2.3},
            "per_class": {"accuracy": [0.0, 0.25]},
        },
    ),
    "man2": manifest(2, [0.9, None]),
}
# tx hash -> (gas used, effective gas price)
RECEIPTS = {f"0x{n:064x}": (1000 * n, 2) for n in range(1, 8)}


def rounds():  # type: ignore[no-untyped-def]
    gas = fold_gas(EVENTS, RECEIPTS)
    return build_rounds(EVENTS, MANIFESTS, {}, {}, None, gas)


def test_gas_per_round_is_split_org_and_clients_and_counted_once() -> None:
    gas = fold_gas(EVENTS, RECEIPTS)
    # round 1: org open (1000) + close (4000); clients 2000 + 3000; fee = 2 wei per gas
    assert gas[1] == Gas(org=5000, clients=5000, fee_wei=20000)
    assert gas[2] == Gas(org=12000, clients=6000, fee_wei=36000)
    # a round missing one receipt gets no (partial) figure
    partial = {k: v for k, v in RECEIPTS.items() if not k.endswith("3")}
    assert 1 not in fold_gas(EVENTS, partial) and 2 in fold_gas(EVENTS, partial)
    # two events of one transaction are counted once
    twice = [*EVENTS[:2], replace(EVENTS[2], meta=meta(3, tx=2))]
    assert fold_gas(twice, RECEIPTS)[1].clients == 2000


def test_headline_baseline_and_table() -> None:
    rs = rounds()
    assert [r.headline for r in rs] == ["accuracy", "accuracy"]
    assert metric_series(rs, "accuracy") == [(0, 0.1), (1, 0.6), (2, 0.7)]
    rows = table_rows(rs)
    assert rows[0][:5] == ("0", "initial", "-", "-", "0.1000")  # the round-0 baseline
    assert rows[1][4] == "0.6000" and rows[1][6] == "10000"
    s = summarize(rs)
    assert (s.headline, s.final, s.best, s.baseline, s.total_gas) == (
        "accuracy",
        0.7,
        0.7,
        0.1,
        28000,
    )


def test_regression_headline_is_read_from_the_manifest() -> None:
    assert headline_of("rmse", {"rmse": 0.3, "loss": 0.09}) == "rmse"
    assert headline_of("", {"accuracy": 0.3, "loss": 0.9}) == "accuracy"  # older manifests
    assert headline_of("", {"loss": 0.9, "num_samples": 5.0, "mae": 0.2}) == "mae"
    assert lower_is_better("rmse") and not lower_is_better("accuracy")
    reg = {
        k: {**m, "metrics": {"rmse": 3.0 - int(m["round_id"])}, "headline_metric": "rmse"}  # type: ignore[call-overload]
        for k, m in MANIFESTS.items()
    }
    rs = build_rounds(EVENTS, reg, {}, {})
    s = summarize(rs)
    assert s.headline == "rmse" and s.best == 1.0 and s.final == 1.0  # lower is better
    assert table_rows(rs)[1][4] == "2.0000"


def test_axis_is_scaled_to_the_data() -> None:
    lo, hi = data_limits([0.80, 0.85, 0.88], bounded=True)
    assert 0.79 < lo < 0.80 and 0.88 < hi < 0.89  # not the whole 0..1 range
    assert data_limits([0.9, 0.999], bounded=True)[1] == 1.0  # a fraction never above 1
    assert data_limits([4.0, 4.0], bounded=False) == (3.8, 4.2)


def test_per_class_grid_has_the_baseline_first_and_blanks_for_absent_classes() -> None:
    ids, grid = per_class_grid(rounds())
    assert ids == [0, 1, 2]
    assert grid[0] == [0.0, 0.7, 0.9]
    assert grid[1][:2] == [0.25, 0.45] and grid[1][2] != grid[1][2]  # NaN: class absent


def test_report_names_clients_and_shows_every_part(tmp_path: Path) -> None:
    names = {A: "hospital-a", B: "lab-b"}
    path = write_report(rounds(), [A, B], tmp_path, {"clients": "2"}, names, "fedchain report")
    text = path.read_text()
    assert "<title>fedchain report</title>" in text
    assert "hospital-a" in text and A in text  # the name, with the address beside it
    assert "Per-class accuracy" in text and "initial model" in text
    pngs = {p.name for p in (tmp_path / "plots").glob("*.png")}
    assert {"headline.png", "loss.png", "per_class.png", "gas.png"} <= pngs
    for name in pngs:
        assert f'src="plots/{name}"' in text
