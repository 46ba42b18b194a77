"""The report shows ε per round and the last (ε, δ) when the manifests carry a DP record."""

from __future__ import annotations

from daemons.testnet.records import RoundRecord, apply_manifest
from daemons.testnet.report import rich_table, summarize, summary_lines, table_rows


def _round(round_id: int, privacy: dict[str, object] | None) -> RoundRecord:
    manifest: dict[str, object] = {"metrics": {"accuracy": 0.5}}
    if privacy is not None:
        manifest["privacy"] = privacy
    record = RoundRecord(round_id, "closed", 3, "bafybase", "0x00", model_cid="bafym")
    return apply_manifest(record, manifest)


def test_epsilon_column_and_summary_line() -> None:
    rounds = [
        _round(1, {"mode": "central", "epsilon": 2.1234, "delta": 1e-5}),
        _round(2, {"mode": "central", "epsilon": 3.5, "delta": 1e-5}),
    ]
    rows = table_rows(rounds)
    assert [row[-2] for row in rows] == ["2.12", "3.5"] and rows[0][-1] == "bafym"
    lines = summary_lines(summarize(rounds))
    assert "privacy (central DP): (ε, δ) = (3.5, 1e-05) after round 2" in lines
    assert rich_table(rounds).columns[-1].header == "ε"


def test_no_dp_shows_a_dash_and_no_line_and_inf_parses() -> None:
    plain = [_round(1, None)]
    assert table_rows(plain)[0][-2] == "-"
    assert not [line for line in summary_lines(summarize(plain)) if "privacy" in line]
    assert _round(1, {"mode": "local", "epsilon": "inf", "delta": 1e-5}).epsilon == float("inf")
