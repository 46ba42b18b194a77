"""User tasks end to end on the testnet: examples/ (Flax, Equinox) and a `fedchain new task`.

Each runs `fedchain testnet up --task module:attr` as a user would, from the directory that
holds the module, and checks every round closed with the task's own headline metric.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
FEDCHAIN = [sys.executable, "-m", "daemons.cli"]
SMALL = ["--clients", "2", "--rounds", "2", "--epochs", "2", "--batch-size", "16"]

pytest.importorskip("flax")
pytest.importorskip("equinox")


def run_testnet(cwd: Path, run_dir: Path, *args: str) -> list[dict[str, Any]]:
    """Run a testnet to the end; the summary's rows (all rounds must have closed)."""
    argv = [*FEDCHAIN, "testnet", "up", *SMALL, *args, "--run-dir", str(run_dir)]
    res = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, timeout=420, check=False)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    rows: list[dict[str, Any]] = json.loads((run_dir / "summary.json").read_text())["rounds"]
    assert [r["status"] for r in rows] == ["closed", "closed"]
    return rows


@pytest.mark.slow
@pytest.mark.timeout(480)
def test_flax_task_with_a_plugin_strategy(tmp_path: Path) -> None:
    rows = run_testnet(
        ROOT,
        tmp_path / "run",
        "--task",
        "examples.flax_task:task",
        "--strategy",
        "tests.models.plugin_pkg.toy:MeanStrategy",
        "--partition",
        "dirichlet",
        "--alpha",
        "1.0",
        "--penalty",
        "none",
    )
    last = rows[-1]
    assert last["headline"] == "accuracy" and set(last["metrics"]) >= {"accuracy", "roc_auc"}
    assert last["metrics"]["accuracy"] > 0.85 and last["metrics"]["roc_auc"] > 0.9
    # the plug-in strategy reads the Fisher, so the clients sent one
    assert all(u["train"].get("fisher_s", 0) > 0 for u in last["updates"])


@pytest.mark.slow
@pytest.mark.timeout(480)
def test_equinox_regression_task_with_ewc(tmp_path: Path) -> None:
    args = ["--task", "examples.equinox_task:task", "--penalty", "ewc", "--ewc-lambda", "1"]
    rows = run_testnet(ROOT, tmp_path / "run", *args)
    assert all(r["headline"] == "rmse" and r["accuracy"] is None for r in rows)
    assert set(rows[-1]["metrics"]) >= {"rmse", "mae", "loss"}
    assert rows[-1]["metrics"]["rmse"] < 75  # the target's std is ~77: the model learned


@pytest.mark.slow
@pytest.mark.timeout(480)
def test_new_task_project_runs_at_once(tmp_path: Path) -> None:
    proj = tmp_path / "proj"
    res = subprocess.run(
        [*FEDCHAIN, "new", "task", "clinic", "--dir", str(proj)],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    assert "testnet.sh" in res.stdout
    rows = run_testnet(
        proj, tmp_path / "run", "--task", "clinic.task:task", "--partition", "dirichlet"
    )
    assert rows[-1]["headline"] == "accuracy" and rows[-1]["metrics"]["accuracy"] > 0.7
