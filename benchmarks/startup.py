"""How long `fedchain testnet up` takes to its first RoundOpened, and round 1 vs later rounds.

Runs the `make demo` federation (4 clients, 2NN, IID, 5 epochs, batch 32, lr 0.1, EWC λ=5)
`--runs` times in one run dir: the first run with the run dir's cache removed (cold: no
compile cache, no cached data split), the others warm. For each run it measures

- seconds from the command's start to the org's "round opened round_id=1" log line, and
  the CPU-seconds all of the testnet's processes had used by then (from /proc);
- the supervisor's phase times (testnet.json) and when each daemon logged its start;
- round 1's slowest client training (train_s + fisher_s, from summary.json) against the
  median of the later rounds' (the compile cost), and the same for round wall time.

    .venv/bin/python benchmarks/startup.py --runs 2
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from proc_accounting import descendants

REPO = Path(__file__).resolve().parents[1]
DEMO = ["--model", "2nn", "--partition", "iid", "--epochs", "5", "--batch-size", "32"]
DEMO += ["--learning-rate", "0.1", "--ewc-lambda", "5"]
OPENED = "round opened round_id=1"
TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pids: list[int]) -> float:
    """utime + stime of each process, plus its waited-for children's."""
    total = 0
    for pid in pids:
        try:
            f = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += sum(int(v) for v in f[11:15])
    return total / TICK


def load() -> float:
    return float(Path("/proc/loadavg").read_text().split()[0])


def first_line_time(path: Path, needle: str) -> str | None:
    try:
        for line in path.read_text(errors="replace").splitlines():
            if needle in line:
                return line.split()[0]
    except OSError:
        return None
    return None


def _this_run(run_dir: Path, t0: float) -> bool:
    """The run dir holds this run's net (not the previous run's logs, not yet emptied)."""
    try:
        return float(json.loads((run_dir / "testnet.json").read_text())["started_at"]) >= t0
    except (OSError, ValueError, KeyError):
        return False


def iso_to_epoch(stamp: str) -> float:
    from datetime import datetime

    return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()


def one_run(run_dir: Path, clients: int, rounds: int, cold: bool, checkout: Path) -> dict[str, Any]:
    if cold:
        shutil.rmtree(run_dir / "cache", ignore_errors=True)
    # this venv's interpreter on `checkout`'s code (another checkout: a before/after pair)
    argv = [sys.executable, "-m", "daemons.cli", "testnet", "up", "--clients", str(clients)]
    argv += ["--rounds", str(rounds), *DEMO, "--run-dir", str(run_dir)]
    env = dict(os.environ, PYTHONPATH=str(checkout))
    load_before = load()
    t0 = time.time()
    proc = subprocess.Popen(
        argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, cwd=checkout, env=env
    )
    opened_s = cpu_at_open = None
    while proc.poll() is None:
        if (
            opened_s is None
            and _this_run(run_dir, t0)
            and first_line_time(run_dir / "logs" / "org.log", OPENED)
        ):
            opened_s = time.time() - t0
            cpu_at_open = cpu_seconds(descendants(proc.pid))
        time.sleep(0.05)
    out = proc.stdout.read().decode(errors="replace") if proc.stdout else ""
    total_s = time.time() - t0
    if proc.returncode != 0 or opened_s is None:
        raise SystemExit(f"testnet up failed (exit {proc.returncode}):\n{out[-3000:]}")
    net = json.loads((run_dir / "testnet.json").read_text())
    phases = {k: round(v - t0, 2) for k, v in net.get("phase_times", {}).items()}
    phases |= {k: round(v - t0, 2) for k, v in net.get("startup_times", {}).items()}
    starts = {}
    for log in sorted((run_dir / "logs").glob("*.log")):
        stamp = first_line_time(log, " starting address=")
        if stamp:
            starts[log.stem] = round(iso_to_epoch(stamp) - t0, 2)
    summary = json.loads((run_dir / "summary.json").read_text())
    return {
        "cold": cold,
        "opened_s": opened_s,
        "cpu_at_open": cpu_at_open,
        "total_s": total_s,
        "phases": phases,
        "daemon_started": starts,
        "rounds": summary["rounds"],
        "load_before": load_before,
        "load_after": load(),
    }


def slowest_client_s(round_doc: dict[str, Any]) -> float:
    times = [
        u["train"].get("train_s", 0.0) + u["train"].get("fisher_s", 0.0)
        for u in round_doc["updates"]
    ]
    return max(times) if times else float("nan")


def ratios(rounds: list[dict[str, Any]]) -> dict[str, float]:
    first, later = rounds[0], rounds[1:]
    train_later = statistics.median(slowest_client_s(r) for r in later)
    wall_later = statistics.median(r["wall_s"] or float("nan") for r in later)
    eval_later = statistics.median(r["timings_s"].get("evaluate_s", 0.0) for r in later)
    return {
        "train_first_s": slowest_client_s(first),
        "train_later_s": train_later,
        "train_ratio": slowest_client_s(first) / train_later,
        "wall_ratio": (first["wall_s"] or float("nan")) / wall_later,
        "org_evaluate_ratio": first["timings_s"].get("evaluate_s", 0.0) / eval_later,
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--clients", type=int, default=4)
    ap.add_argument("--rounds", type=int, default=3, help="rounds per run (>= 2)")
    ap.add_argument("--runs", type=int, default=2, help="first cold, the rest warm")
    ap.add_argument("--run-dir", type=Path, default=REPO / "runs" / "startup")
    ap.add_argument(
        "--checkout", type=Path, default=REPO, help="run this checkout's code (node_modules too)"
    )
    a = ap.parse_args()
    if a.rounds < 2:
        ap.error("--rounds must be >= 2 (round 1 is compared with the later ones)")
    run_dir, checkout = a.run_dir.resolve(), a.checkout.resolve()
    results = [one_run(run_dir, a.clients, a.rounds, i == 0, checkout) for i in range(a.runs)]
    for r in results:
        tag = "cold" if r["cold"] else "warm"
        q = ratios(r["rounds"])
        print(
            f"# {tag}: load {r['load_before']:.1f} -> {r['load_after']:.1f}; phases {r['phases']}"
        )
        print(f"# {tag}: daemons logged their start at {r['daemon_started']}")
        first, later = q["train_first_s"], q["train_later_s"]
        print(f"# {tag}: round 1 slowest client {first:.2f} s, later rounds {later:.2f} s")
        print(f"RESULT {tag}_testnet_first_round_opened_s {r['opened_s']:.2f} s")
        print(f"RESULT {tag}_testnet_cpu_to_first_round_opened {r['cpu_at_open']:.2f} cpu_s")
        print(f"RESULT {tag}_testnet_up_total_s {r['total_s']:.2f} s")
        print(f"RESULT {tag}_first_vs_later_round_train {q['train_ratio']:.2f} ratio")
        print(f"RESULT {tag}_first_vs_later_round_wall {q['wall_ratio']:.2f} ratio")
        print(f"RESULT {tag}_first_vs_later_org_evaluate {q['org_evaluate_ratio']:.2f} ratio")
        print(f"RESULT {tag}_load_average {r['load_before']:.1f} load")
    return 0


if __name__ == "__main__":
    sys.exit(main())
