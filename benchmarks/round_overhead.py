"""Round overhead of a real local federation: round wall time minus the slowest client's training.

For N = 1, 4, 16 clients this runs `fedchain testnet up` (anvil automine, one bundled IPFS node
per participant, org + N client daemons as separate processes) and reads the run's
summary.json. Per round: wall = RoundOpened seen -> RoundClosed seen (the testnet's chain
watcher, 0.1 s poll); train = the slowest client's `train_s` from its update's metadata;
overhead = wall - train (chain + IPFS + codec + validation + aggregation + evaluation +
scheduling, including the clients' Fisher pass). `ovh-fisher` also leaves out the slowest
client's Fisher pass (`fisher_s`, model compute that every update carries). Round 1 is left
out: it includes daemon start-up and JIT compilation. Targets (issue #16.3, with
`--ewc-lambda 5`): overhead <= 0.3 s per round at 4 clients, <= 1 s at 16.

Load-robust accounting: every process of the net is sampled from /proc (proc_accounting.py)
and the CPU seconds and syscall I/O bytes per round of each component (anvil, the org, the
clients, their IPFS nodes, the watcher) are printed as `RESULT round_cpu_<component>_n<N>`.

    .venv/bin/python benchmarks/round_overhead.py [--clients 1,4,16] [--rounds 5] [--keep DIR]
        [--ewc-lambda 0] [--clients-per-host 0]

`--clients-per-host K` runs the clients as `fedchain client-host` processes of K clients each
(one JAX runtime, chain connection and IPFS node per host, training vmapped; issue #16.4).
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from proc_accounting import Counters, TreeSampler, group, per_component

# issue #16.3: overhead targets (s) with EWC (--ewc-lambda 5), by client count
TARGETS_S = {4: 0.3, 16: 1.0}


def run_net(n: int, args: argparse.Namespace, root: Path) -> dict:
    """One testnet run with `n` clients; returns its summary.json plus CPU/IO accounting.

    While it runs, every process of the net is sampled from /proc; the counters at the
    watcher's "round 2 opened" line and at its last "round R closed" line give the CPU
    seconds and I/O bytes per round of each component (`summary["per_round"]`).
    """
    run_dir = root / f"n{n}"
    cmd = [sys.executable, "-m", "daemons.cli", "testnet", "up", "--clients", str(n)]
    cmd += ["--rounds", str(args.rounds), "--model", args.model, "--epochs", str(args.epochs)]
    cmd += ["--samples-per-client", str(args.samples), "--test-samples", "2000"]
    cmd += ["--ewc-lambda", str(args.ewc_lambda), "--run-dir", str(run_dir)]
    cmd += ["--clients-per-host", str(args.clients_per_host), *shlex.split(args.up_args)]
    t0 = time.monotonic()
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env
    )
    timer = threading.Timer(args.timeout, proc.kill)
    timer.start()
    marks: list = []
    out: list[str] = []
    first, last = "round 2 opened", f"round {args.rounds} closed"
    try:
        with TreeSampler(proc.pid) as sampler:
            assert proc.stdout is not None
            for line in proc.stdout:
                out.append(line)
                if line.startswith(first) or line.startswith(last):
                    marks.append(sampler.mark())
            proc.wait()
    finally:
        timer.cancel()
    if proc.returncode != 0:
        sys.exit(f"testnet with {n} clients failed ({proc.returncode}):\n{''.join(out)[-4000:]}")
    summary = json.loads((run_dir / "summary.json").read_text())
    summary["command_s"] = time.monotonic() - t0
    if len(marks) == 2 and args.rounds > 1:
        used = per_component(marks[0], marks[1])
        summary["per_round"] = {k: _scaled(v, args.rounds - 1) for k, v in used.items()}
    return summary


def _scaled(c: Counters, rounds: int) -> Counters:
    return Counters(c.cpu_s / rounds, c.read_b // rounds, c.write_b // rounds)


def accounting(n: int, per_round: dict[str, Counters]) -> list[str]:
    """Table lines and RESULT lines: CPU-s and MB of syscall I/O per round, per group."""
    groups: dict[str, list[Counters]] = {}
    for name, c in per_round.items():
        groups.setdefault(group(name), []).append(c)
    lines = [f"# N={n}: per round (rounds 2..R), CPU s and MB read+written through syscalls"]
    total = 0.0
    for g in sorted(groups):
        cs = groups[g]
        cpu = sum(c.cpu_s for c in cs)
        mb = sum(c.read_b + c.write_b for c in cs) / 1e6
        total += cpu
        each = f" ({len(cs)} procs, {cpu / len(cs):.3f} CPU s each)" if len(cs) > 1 else ""
        lines.append(f"#   {g:14s} {cpu:7.3f} CPU s {mb:9.2f} MB{each}")
        lines.append(f"RESULT round_cpu_{g.replace('-', '_')}_n{n} {cpu:.3f} s")
    lines.append(f"#   {'total':14s} {total:7.3f} CPU s")
    lines.append(f"RESULT round_cpu_total_n{n} {total:.3f} s")
    return lines


def per_round(summary: dict) -> list[tuple[float, float, float, float, float]]:
    """(wall, slowest train, slowest fisher, last update seen, slowest train + fisher) per round.

    Every round after the first counts.
    """
    out = []
    for r in summary["rounds"][1:]:
        trains = [u["train"].get("train_s", 0.0) for u in r["updates"]]
        fishers = [u["train"].get("fisher_s", 0.0) for u in r["updates"]]
        if r["wall_s"] is None or not trains or r["last_update_s"] is None:
            continue
        both = max(t + f for t, f in zip(trains, fishers, strict=True))
        out.append((r["wall_s"], max(trains), max(fishers), r["last_update_s"], both))
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--clients", default="1,4,16", help="comma-separated client counts")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--model", default="2nn")
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--samples", type=int, default=2000, help="samples per client")
    p.add_argument(
        "--ewc-lambda",
        type=float,
        default=0.0,
        help="EWC strength; > 0 makes updates and models carry the Fisher (default 0: off)",
    )
    p.add_argument(
        "--clients-per-host",
        type=int,
        default=0,
        help="K > 0: `fedchain client-host` processes of K clients each, one IPFS node per host "
        "(default 0: one client daemon and IPFS node per client)",
    )
    p.add_argument("--timeout", type=float, default=900.0, help="seconds per testnet run")
    p.add_argument(
        "--up-args", default="", help="more `testnet up` arguments, e.g. '--no-swarm-key'"
    )
    p.add_argument("--keep", type=Path, help="keep the run dirs (logs, summary) under DIR")
    args = p.parse_args()
    counts = [int(c) for c in args.clients.split(",")]
    print(
        f"# {args.model}, {args.epochs} epoch(s) x {args.samples} samples per client, "
        f"{args.rounds} rounds (round 1 excluded), EWC lambda {args.ewc_lambda:g}, "
        f"anvil automine, {os.cpu_count()} CPUs, "
        + (f"{args.clients_per_host} clients per host" if args.clients_per_host else "no hosts")
    )
    cols = [
        "wall s",
        "train s",
        "fisher s",
        "overhead s",
        "ovh-fisher",
        "ovh/wall",
        "client s",
        "org s",
    ]
    with tempfile.TemporaryDirectory(prefix="fedchain-overhead-") as tmp:
        root = args.keep or Path(tmp)
        summaries = {n: run_net(n, args, root) for n in counts}
        rows = [row(n, per_round(s)) for n, s in summaries.items()]
    print(f"{'N':>3} " + " ".join(f"{c:>10}" for c in cols))
    for r in rows:
        print(f"{r[0]:>3} " + " ".join(f"{v:>10.2f}" for v in r[1:]))
    for n, _, _, _, overhead, *_ in rows:
        if n in TARGETS_S:
            verdict = "meets" if overhead <= TARGETS_S[n] else "misses"
            print(f"# {n} clients: {verdict} the {TARGETS_S[n]:g} s overhead target")
    for n, summary in summaries.items():
        if "per_round" in summary:
            print("\n".join(accounting(n, summary["per_round"])))
    for n, wall, train, _, overhead, no_fisher, *_ in rows:
        print(f"RESULT round_overhead_n{n} {overhead:.3f} s")
        print(f"RESULT round_overhead_ex_fisher_n{n} {no_fisher:.3f} s")
        print(f"RESULT round_train_n{n} {train:.3f} s")
        print(f"RESULT round_wall_n{n} {wall:.3f} s")


def row(n: int, stats: list[tuple[float, float, float, float, float]]) -> tuple[float, ...]:
    """Medians over rounds: wall, train, fisher, overhead, overhead - fisher, ratio, client, org."""
    wall, train, fisher, last, _ = (statistics.median(col) for col in zip(*stats, strict=True))
    overhead = statistics.median(s[0] - s[1] for s in stats)
    no_fisher = statistics.median(s[0] - s[4] for s in stats)
    client = statistics.median(s[3] - s[1] for s in stats)
    return (n, wall, train, fisher, overhead, no_fisher, overhead / wall, client, wall - last)


if __name__ == "__main__":
    main()
