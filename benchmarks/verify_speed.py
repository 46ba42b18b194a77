"""Verify time per round relative to the round's own aggregation time (target <= 2x).

Runs `fedchain testnet up --keep-running` (anvil, bundled IPFS nodes, org + N client daemons),
then `fedchain verify --config <run>/configs/org.toml --json` as a user would, against the
org's IPFS node. Per round: verify_s = the verifier's wall time for that round (fetch the
config, base, updates, manifest and model from IPFS with digest checks, re-validate every
update, replay the aggregation, encode, hash); aggregate_s = the org's own aggregation time
from the round's manifest (`timings_s.aggregate_s`). Round 1 is left out: both sides pay
one-off JIT compilation there (verify re-derives the seeded initial model). Both figures come
from one run on one machine.

    .venv/bin/python benchmarks/verify_speed.py [--clients 4] [--rounds 4] [--model 2nn]
        [--strategy fedavg] [--keep DIR]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

TARGET = 2.0


def fedchain(*args: str, timeout_s: float) -> subprocess.CompletedProcess[str]:
    """Run the `fedchain` CLI of this checkout."""
    cmd = [sys.executable, "-m", "daemons.cli", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s, check=False)


def run_testnet(args: argparse.Namespace, run_dir: Path) -> dict[str, Any]:
    """A testnet left running after its last round; returns its summary.json."""
    res = fedchain(
        "testnet", "up", "--keep-running", "--run-dir", str(run_dir),
        "--clients", str(args.clients), "--rounds", str(args.rounds), "--model", args.model,
        "--strategy", args.strategy, "--epochs", "1", "--samples-per-client", str(args.samples),
        "--test-samples", "1000", "--min-updates", str(args.clients),
        timeout_s=args.timeout,
    )  # fmt: skip
    if res.returncode != 0:
        sys.exit(f"testnet failed ({res.returncode}):\n{res.stdout[-4000:]}{res.stderr[-2000:]}")
    summary: dict[str, Any] = json.loads((run_dir / "summary.json").read_text())
    return summary


def run_verify(run_dir: Path, timeout_s: float) -> tuple[dict[str, Any], float]:
    """`fedchain verify --json` on the testnet; its report and wall time."""
    started = time.perf_counter()
    res = fedchain("verify", "--config", str(run_dir / "configs" / "org.toml"), "--json",
                   timeout_s=timeout_s)  # fmt: skip
    wall = time.perf_counter() - started
    if res.returncode != 0:
        sys.exit(f"verify failed ({res.returncode}):\n{res.stdout[-4000:]}{res.stderr[-2000:]}")
    report: dict[str, Any] = json.loads(res.stdout)
    return report, wall


def rows(summary: dict[str, Any], report: dict[str, Any]) -> list[dict[str, float]]:
    """Per verified round after the first: verify's total and fetch time, the org's timings."""
    org = {r["round_id"]: r["timings_s"] for r in summary["rounds"]}
    out = []
    for r in report["rounds"]:
        timings = org.get(r["round_id"], {})
        if r["round_id"] > 1 and timings.get("aggregate_s"):
            row = {"round": r["round_id"], "verify_s": r["elapsed_s"], "fetch_s": r["fetch_s"]}
            row |= {"aggregate_s": timings["aggregate_s"], "org_fetch_s": timings["fetch_s"]}
            out.append(row)
    return out


def median_ratio(table: list[dict[str, float]], num: Any, den: Any) -> float:
    """Median over rounds of num(row) / den(row)."""
    return statistics.median(num(r) / den(r) for r in table)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--clients", type=int, default=4)
    p.add_argument("--rounds", type=int, default=4)
    p.add_argument("--model", default="2nn")
    p.add_argument("--strategy", default="fedavg")
    p.add_argument("--samples", type=int, default=500, help="samples per client")
    p.add_argument("--timeout", type=float, default=1800)
    p.add_argument("--keep", help="run dir to keep (default: a temporary one)")
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="verify-speed-") as tmp:
        run_dir = Path(args.keep or tmp) / "net"
        try:
            summary = run_testnet(args, run_dir)
            report, wall = run_verify(run_dir, args.timeout)
        finally:
            fedchain("testnet", "down", "--run-dir", str(run_dir), timeout_s=120)
    verdicts = [r["verdict"] for r in report["rounds"]]
    table = rows(summary, report)
    if not table:
        sys.exit("no round after the first has an aggregation time to compare with")
    print(
        f"{args.clients} clients, model {args.model}, strategy {args.strategy}; verdicts {verdicts}"
    )
    print(f"verify wall (start-up, chain read, every round): {wall:.2f} s")
    print("round  verify_s  (fetch_s  replay_s)  org aggregate_s  org fetch_s  verify/aggregate")
    for r in table:
        replay = r["verify_s"] - r["fetch_s"]
        print(
            f"{r['round']:>5}  {r['verify_s']:8.4f}  ({r['fetch_s']:7.4f}  {replay:8.4f})  "
            f"{r['aggregate_s']:15.4f}  {r['org_fetch_s']:11.4f}  "
            f"{r['verify_s'] / r['aggregate_s']:8.2f}"
        )
    total = median_ratio(table, lambda r: r["verify_s"], lambda r: r["aggregate_s"])
    replay = median_ratio(table, lambda r: r["verify_s"] - r["fetch_s"], lambda r: r["aggregate_s"])
    both = median_ratio(
        table, lambda r: r["verify_s"], lambda r: r["aggregate_s"] + r["org_fetch_s"]
    )
    print(f"median verify/aggregate {total:.2f}x (target <= {TARGET:g}x), replay only "
          f"(no IPFS fetch) {replay:.2f}x, verify/(org fetch + aggregate) {both:.2f}x; "
          "machine shared with other jobs")  # fmt: skip
    print(f"RESULT verify_vs_aggregate {total:.2f} x")
    print(f"RESULT replay_vs_aggregate {replay:.2f} x")
    print(f"RESULT verify_vs_org_fetch_aggregate {both:.2f} x")
    print(f"RESULT verify_round_s {statistics.median(r['verify_s'] for r in table):.4f} s")


if __name__ == "__main__":
    main()
