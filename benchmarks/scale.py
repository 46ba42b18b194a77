"""Many clients on one machine: round wall time, overhead, memory per client, gas per round.

For each N (default 10 and 100) this runs `fedchain testnet up --clients N --clients-per-host
P` (anvil automine; org, and ceil(N/P) `fedchain client-host` processes, each with its own
bundled IPFS node, training its clients one after another on a CPU, vmapped on an
accelerator: `[host] training = "auto"`) and reads the run's
summary.json. Per round after the first (start-up and compilation): wall = RoundOpened seen
-> RoundClosed seen; train = the slowest update's `train_s` (a host's whole batch);
overhead = wall - train. Memory: the peak RSS (VmHWM) of the host processes, sampled from
/proc while the net runs, divided by N (`_with_ipfs`: plus the clients' IPFS nodes);
`memory_total` adds the org and its IPFS node. `--clients-per-host 0` runs N <= 16 clients
as one daemon each (the baseline; RESULT names `..._nsoloN`).
Gas: all of a round's transactions (openRound, N x submitUpdate, closeRound).

    .venv/bin/python benchmarks/scale.py [--clients 10,100] [--clients-per-host 50]
        [--host-training auto] [--rounds 3] [--epochs 1] [--samples 300] [--keep DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def peak_rss_mb(pid: int) -> float | None:
    """A process's peak resident set (VmHWM) in MiB, or None once it is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except (OSError, ValueError):
        return None
    return None


def run_net(n: int, args: argparse.Namespace, root: Path) -> tuple[dict, dict[str, float]]:
    """One testnet run with `n` clients: its summary.json and peak RSS per process name."""
    run_dir = root / f"n{n}"
    cmd = [sys.executable, "-m", "daemons.cli", "testnet", "up", "--clients", str(n)]
    cmd += ["--clients-per-host", str(args.clients_per_host), "--rounds", str(args.rounds)]
    cmd += ["--model", args.model, "--epochs", str(args.epochs), "--ewc-lambda", "0"]
    cmd += ["--samples-per-client", str(args.samples), "--test-samples", "2000"]
    cmd += ["--round-duration", str(args.round_duration), "--run-dir", str(run_dir)]
    cmd += ["--host-training", args.host_training]
    peaks: dict[str, float] = {}
    with subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) as p:
        deadline = time.monotonic() + args.timeout
        while p.poll() is None:
            if time.monotonic() > deadline:
                p.kill()
                sys.exit(f"testnet with {n} clients ran past {args.timeout:g} s")
            _sample(run_dir, peaks)
            time.sleep(1.0)
        out = p.stdout.read() if p.stdout else ""
    if p.returncode != 0:
        sys.exit(f"testnet with {n} clients failed ({p.returncode}):\n{out[-4000:]}")
    return json.loads((run_dir / "summary.json").read_text()), peaks


def _sample(run_dir: Path, peaks: dict[str, float]) -> None:
    try:
        net = json.loads((run_dir / "testnet.json").read_text())
    except (OSError, json.JSONDecodeError):
        return
    pids = {str(k): v for k, v in (net.get("pids") or {}).items()}
    pids |= {f"ipfs-{i}": pid for i, pid in enumerate(net.get("ipfs_pids") or [])}
    for name, pid in pids.items():
        mb = peak_rss_mb(int(pid)) if pid else None
        if mb is not None:
            peaks[name] = max(peaks.get(name, 0.0), mb)


def per_round(summary: dict) -> list[tuple[float, float, int, int]]:
    """(wall, slowest train, total gas, updates) per round after the first."""
    out = []
    for r in summary["rounds"][1:]:
        trains = [u["train"].get("train_s", 0.0) for u in r["updates"]]
        if r["wall_s"] is None or not trains or r["gas"] is None:
            continue
        gas = r["gas"]["org"] + r["gas"]["clients"]
        out.append((r["wall_s"], max(trains), gas, len(r["updates"])))
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--clients", default="10,100", help="comma-separated client counts")
    p.add_argument("--clients-per-host", type=int, default=50)
    p.add_argument("--host-training", default="auto", help="auto | loop | vmap (`[host] training`)")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--model", default="2nn")
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--samples", type=int, default=300, help="samples per client")
    p.add_argument("--round-duration", type=int, default=600, help="round deadline, seconds")
    p.add_argument("--timeout", type=float, default=1800.0, help="seconds per testnet run")
    p.add_argument("--keep", type=Path, help="keep the run dirs (logs, summary) under DIR")
    args = p.parse_args()
    load = os.getloadavg()[0]
    print(
        f"# {args.model}, {args.epochs} epoch(s) x {args.samples} samples per client, "
        f"{args.clients_per_host} clients per host, {args.rounds} rounds (round 1 excluded), "
        f"{os.cpu_count()} CPUs, load average {load:.1f} at start"
    )
    rows = []
    with tempfile.TemporaryDirectory(prefix="fedchain-scale-") as tmp:
        root = args.keep or Path(tmp)
        for n in (int(c) for c in args.clients.split(",")):
            summary, peaks = run_net(n, args, root)
            (root / f"n{n}" / "peak_rss_mib.json").write_text(json.dumps(peaks, indent=1))
            stats = per_round(summary)
            if not stats:
                sys.exit(f"{n} clients: no round after the first settled with gas and updates")
            hosts = sum(v for k, v in peaks.items() if k.startswith(("host-", "client-")))
            # the clients' IPFS nodes (ipfs-0 is the org's): one per host, or one per client
            nodes = sum(v for k, v in peaks.items() if k.startswith("ipfs-") and k != "ipfs-0")
            wall = statistics.median(s[0] for s in stats)
            train = statistics.median(s[1] for s in stats)
            overhead = statistics.median(s[0] - s[1] for s in stats)
            gas = statistics.median(s[2] for s in stats)
            updates = min(s[3] for s in stats)
            rows.append(
                (
                    n,
                    wall,
                    train,
                    overhead,
                    gas,
                    updates,
                    hosts / n,
                    (hosts + nodes) / n,
                    sum(peaks.values()),
                )
            )
    print(
        f"{'N':>4} {'wall s':>8} {'train s':>8} {'ovh s':>8} {'gas/round':>10} {'updates':>8} "
        f"{'MiB/client':>10} {'+IPFS':>8} {'MiB total':>10}"
    )
    for n, wall, train, ovh, gas, updates, per_client, with_ipfs, total in rows:
        print(
            f"{n:>4} {wall:>8.2f} {train:>8.2f} {ovh:>8.2f} {gas:>10.0f} {updates:>8} "
            f"{per_client:>10.1f} {with_ipfs:>8.1f} {total:>10.0f}"
        )
    print(f"# load average {os.getloadavg()[0]:.1f} at the end")
    tag = "solo" if args.clients_per_host == 0 else ""  # 0: one daemon per client (<= 16)
    for n, wall, train, ovh, gas, updates, per_client, with_ipfs, total in rows:
        n = f"{tag}{n}"  # type: ignore[assignment]
        print(f"RESULT scale_round_wall_n{n} {wall:.3f} s")
        print(f"RESULT scale_round_train_n{n} {train:.3f} s")
        print(f"RESULT scale_round_overhead_n{n} {ovh:.3f} s")
        print(f"RESULT scale_gas_per_round_n{n} {gas:.0f} gas")
        print(f"RESULT scale_updates_per_round_n{n} {updates} updates")
        print(f"RESULT scale_memory_per_client_n{n} {per_client:.1f} MiB")
        print(f"RESULT scale_memory_per_client_with_ipfs_n{n} {with_ipfs:.1f} MiB")
        print(f"RESULT scale_memory_total_n{n} {total:.0f} MiB")


if __name__ == "__main__":
    main()
