"""`fedchain testnet up --chain ganache|hardhat`: the one-command testnet on the other EVM
nodes (npm ganache 7.9.2, hardhat 2.x), with the same rounds, bit for bit, on each."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

FEDCHAIN = [sys.executable, "-m", "daemons.cli"]
ARGS = ["--clients", "2", "--rounds", "2", "--model", "logreg", "--epochs", "1"]
ARGS += ["--samples-per-client", "1000", "--test-samples", "500"]


def up(run_dir: Path, chain: str) -> dict:
    try:
        res = subprocess.run(
            [*FEDCHAIN, "testnet", "up", *ARGS, "--chain", chain, "--run-dir", str(run_dir)],
            capture_output=True,
            text=True,
            timeout=240,
            check=False,
        )
        assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    finally:
        subprocess.run([*FEDCHAIN, "testnet", "down", "--run-dir", str(run_dir)], timeout=90)
    assert f"testnet up: chain {chain} http://127.0.0.1:" in res.stdout
    net = json.loads((run_dir / "testnet.json").read_text())
    assert net["exit_codes"] == {"org": 0, "client-0": 0, "client-1": 0}  # clean stops
    assert (run_dir / "logs" / f"{chain}.log").exists()
    assert not (run_dir / "logs" / "anvil.log").exists()
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["problems"] == []
    return summary


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_the_testnet_runs_the_same_rounds_on_ganache_and_hardhat(tmp_path: Path) -> None:
    runs = {chain: up(tmp_path / chain, chain) for chain in ("ganache", "hardhat")}
    for summary in runs.values():
        assert [r["status"] for r in summary["rounds"]] == ["closed", "closed"]
    models = {c: [r["model_cid"] for r in s["rounds"]] for c, s in runs.items()}
    assert models["ganache"] == models["hardhat"]  # the chain changes no bit of the models
