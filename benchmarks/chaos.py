"""Chaos: `kill -9` random daemons of a running testnet; every round must still close.

Starts `fedchain testnet up --keep-running` (a small logreg federation), and while its
rounds run SIGKILLs a random daemon (the org or a client) every 1-4 s, each at most
`--kills-per-daemon` times (the supervisor restarts a daemon up to 3 times). When the rounds
are done it checks what a user would: every round closed, no honest update left out (each
client's update of each round included), no round near its deadline (a restarted daemon
that sat idle), `fedchain verify` re-derives every round bit for bit, and `testnet down`
stops every daemon with exit code 0.

    .venv/bin/python benchmarks/chaos.py --rounds 60 --seed 7 [--chain ganache|hardhat]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

FEDCHAIN = [sys.executable, "-m", "daemons.cli"]


def net_file(run: Path) -> dict:
    try:
        return json.loads((run / "testnet.json").read_text())
    except (OSError, ValueError):
        return {}


def kill_while_running(up: subprocess.Popen, run: Path, args: argparse.Namespace) -> dict:
    """SIGKILL random daemons until `up` returns; the kills per daemon name."""
    rng, kills, t0 = random.Random(args.seed), {}, time.monotonic()
    while net_file(run).get("phase") != "running":
        if up.poll() is not None or time.monotonic() - t0 > 180:
            raise SystemExit(f"the testnet did not start; see {run}/logs")
        time.sleep(0.5)
    while up.poll() is None:
        time.sleep(rng.uniform(1.0, 4.0))
        pids = net_file(run).get("pids", {})
        names = [n for n in pids if kills.get(n, 0) < args.kills_per_daemon]
        if not names or up.poll() is not None:
            continue
        name = rng.choice(names)
        try:
            os.kill(pids[name], signal.SIGKILL)
        except ProcessLookupError:
            continue
        kills[name] = kills.get(name, 0) + 1
        print(f"# {time.monotonic() - t0:6.1f} s  kill -9 {name} (pid {pids[name]})", flush=True)
    return kills


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--clients", type=int, default=4)
    p.add_argument("--rounds", type=int, default=60)
    p.add_argument("--kills-per-daemon", type=int, default=2)
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--round-duration", type=int, default=60, help="round deadline, s")
    p.add_argument("--keep", type=Path, help="run dir to keep (default: a temp dir)")
    p.add_argument("--chain", default="anvil", help="the EVM node: anvil, ganache or hardhat")
    args = p.parse_args()
    run = args.keep or Path(tempfile.mkdtemp(prefix="fedchain-chaos-")) / "run"
    cmd = [*FEDCHAIN, "testnet", "up", "--clients", str(args.clients), "--chain", args.chain]
    cmd += ["--rounds", str(args.rounds), "--model", "logreg", "--epochs", "1"]
    cmd += ["--samples-per-client", "2000", "--test-samples", "1000"]
    cmd += ["--round-duration", str(args.round_duration), "--run-dir", str(run), "--keep-running"]
    run.parent.mkdir(parents=True, exist_ok=True)
    with open(f"{run}.out", "w") as out:
        up = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT)
    try:
        kills = kill_while_running(up, run, args)
        summary = json.loads((run / "summary.json").read_text())
        net = net_file(run)
        verify = [*FEDCHAIN, "verify", "--rpc", net["rpc_url"], "--contract", net["contract"]]
        verified = subprocess.run(
            [*verify, "--ipfs-api", net["ipfs_api"]], capture_output=True, text=True, timeout=900
        )
    finally:
        if up.poll() is None:
            up.kill()
        down = subprocess.run(
            [*FEDCHAIN, "testnet", "down", "--run-dir", str(run)],
            capture_output=True,
            text=True,
            timeout=120,
        )
    rows = summary["rounds"]
    closed = sum(r["status"] == "closed" for r in rows)
    left_out = [
        (r["round_id"], u.get("status"), u.get("reason", ""))
        for r in rows
        for u in r["updates"]
        if u.get("status") != "included"
    ]
    walls = [r["wall_s"] for r in rows if r.get("wall_s") is not None]
    codes = net_file(run).get("exit_codes", {})
    print(f"# up exit {up.returncode}; kills {kills}; restarts {net.get('restarts')}")
    print(f"# rounds closed {closed}/{args.rounds}; updates left out {left_out}")
    print(f"# slowest rounds (s): {sorted(walls, reverse=True)[:5]}")
    print(f"# verify exit {verified.returncode}: {verified.stdout.strip().splitlines()[-1:]}")
    print(f"# testnet down exit {down.returncode}; daemon exit codes {codes}; run dir {run}")
    print(f"RESULT chaos_kills {sum(kills.values())} kills")
    print(f"RESULT chaos_rounds_closed {closed / args.rounds:.3f} fraction")
    print(f"RESULT chaos_updates_left_out {len(left_out)} updates")
    print(f"RESULT chaos_slowest_round {max(walls):.2f} s")
    print(f"RESULT chaos_verify_exit {verified.returncode} code")
    clean = all(c == 0 for c in codes.values()) and down.returncode == 0
    print(f"RESULT chaos_clean_stop {int(clean)} bool")


if __name__ == "__main__":
    main()
