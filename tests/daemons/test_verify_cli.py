"""`fedchain verify` arguments, the report's shape, the pins, and `[federation] heldout_data`."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pytest

from daemons.cli.main import build_parser, main
from daemons.errors import ConfigError
from daemons.org.model_step import update_limits
from daemons.runtime.config import parse_config
from daemons.verify.checks import MISMATCH, Check, RoundReport, failed, json_report, table
from daemons.verify.cli import round_range
from daemons.verify.pins import (
    dataset_digest,
    limits_doc,
    limits_from_doc,
    platform_differences,
    platform_facts,
)
from models.data import Dataset, save_npz
from models.validation import Limits


def test_round_ranges() -> None:
    assert round_range("3") == (3, 3) and round_range("2..5") == (2, 5)
    for bad in ("0", "5..2", "a..b", "1..x"):
        with pytest.raises(argparse.ArgumentTypeError):
            round_range(bad)


def test_verify_is_a_fedchain_command() -> None:
    args = build_parser().parse_args(
        ["verify", "--rpc", "http://x:1", "--contract", "0x" + "11" * 20, "--rounds", "1..2"]
    )
    assert args.rpc_url == "http://x:1" and args.rounds == (1, 2) and not args.json


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--heldout", "no-equals-sign"], "--heldout 'no-equals-sign': want NAME=FILE"),
        (["--eval-data", "/nonexistent.npz"], "held-out data: dataset /nonexistent.npz"),
        (["--auditor-key", "/nonexistent.key"], "--auditor-key /nonexistent.key: no such file"),
        ([], "no contract address"),
    ],
)
def test_bad_arguments_exit_2_naming_what_is_wrong(
    extra: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    contract = [] if not extra else ["--contract", "0x" + "11" * 20]
    assert main(["verify", "--rpc", "http://127.0.0.1:1", *contract, *extra]) == 2
    assert message in capsys.readouterr().err


def test_report_table_and_json_name_the_mismatch() -> None:
    good = RoundReport(1, "closed", (Check("model", "ok", "bit-identical"),))
    bad = RoundReport(2, "closed", (Check("base", MISMATCH, "swapped base: X"),), elapsed_s=0.5)
    assert failed([good, bad]) and not failed([good])
    text = table([good, bad])
    assert text.splitlines()[2].split() == ["2", "closed", "1", "MISMATCH", "MISMATCH"]
    assert "round 2: MISMATCH base: swapped base: X" in text
    doc = json.loads(json_report([good, bad]))
    assert doc["ok"] is False and doc["rounds"][1]["elapsed_s"] == 0.5
    with pytest.raises(ValueError, match="status"):
        Check("x", "fine")


def test_limits_round_trip_through_the_pin() -> None:
    limits = Limits(max_bytes=1234, max_norm=5.0, optional_sections=frozenset({"fisher"}))
    doc = json.loads(json.dumps(limits_doc(limits)))
    assert limits_from_doc(doc) == limits
    assert limits_from_doc(limits_doc(update_limits(99, False, 7.0))) == update_limits(
        99, False, 7.0
    )
    with pytest.raises(ValueError, match="does not know"):
        limits_from_doc({**doc, "from_the_future": 1})


def test_platform_differences_name_each_fact() -> None:
    here = platform_facts()
    assert {"python", "jax", "jaxlib", "numpy", "backend", "device_kind", "machine"} <= set(here)
    pinned = {"fedchain": "0.0.0", "platform": {**here, "numpy": "1.0"}}
    diffs = platform_differences(pinned, here)
    assert any(d.startswith("numpy: 1.0 -> ") for d in diffs)
    assert any(d.startswith("fedchain: 0.0.0 -> ") for d in diffs)


def test_dataset_digest_depends_on_content_not_file(tmp_path: Path) -> None:
    x = np.zeros((2, 28, 28, 1), np.float32)
    a, b = Dataset(x, np.array([1, 2], np.int32)), Dataset(x, np.array([1, 3], np.int32))
    assert dataset_digest(a) != dataset_digest(b)
    save_npz(tmp_path / "a.npz", a)
    from models.data import load_dataset

    assert dataset_digest(load_dataset(tmp_path / "a.npz")) == dataset_digest(a)


def test_heldout_data_paths_resolve_against_the_config(tmp_path: Path) -> None:
    raw = {
        "chain": {},
        "identity": {},
        "ipfs": {},
        "service": {},
        "federation": {"eval_data": "e.npz", "heldout_data": {"task-a": "old/a.npz"}},
        "training": {},
    }
    cfg = parse_config(raw, tmp_path / "org.toml", "org")
    assert cfg.federation is not None
    assert cfg.federation.heldout_data == {"task-a": str(tmp_path / "old" / "a.npz")}
    raw["federation"]["heldout_data"] = {"task-a": 3}
    with pytest.raises(ConfigError, match=r"federation\.heldout_data\.task-a must be a path"):
        parse_config(raw, tmp_path / "org.toml", "org")
