"""Soak: many rounds of a tiny federation on the testnet machinery; no stall, no false drop.

Runs `fedchain testnet up` (anvil, bundled IPFS nodes, org + clients as processes) with a
logreg model, `--clients` clients of `--samples` samples, one local epoch, for `--rounds`
rounds, and watches the contract. A stall is no round settled (closed or failed) for
`--stall-s` seconds while the testnet is running: it is counted, the daemons' log tails are
printed, and the net is stopped. Issue #10's defect (a mined transaction called dead: a
client crash, then an org alive but idle) showed after 60-100 rounds of this federation.

Besides the headline counts it reports, from the daemons' logs, how often a node served an
account's new nonce before the receipt (the sender waited out its grace instead of calling
the transaction dead) and how many transactions were called dead.

    .venv/bin/python benchmarks/soak.py [--rounds 300] [--clients 1] [--samples 200]
        [--stall-s 180] [--keep DIR]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from web3 import AsyncHTTPProvider, AsyncWeb3

from contracts.binding import FederatedRounds
from contracts.state import RoundStatus

LAG_SEEN = "has a receipt yet"  # the sender's grace WARNING (nonce used, receipt not served)
DROPPED = "can never be mined"


def up_command(args: argparse.Namespace, run_dir: Path) -> list[str]:
    """`fedchain testnet up` for the soak federation."""
    cmd = [sys.executable, "-m", "daemons.cli", "testnet", "up", "--run-dir", str(run_dir)]
    cmd += ["--clients", str(args.clients), "--rounds", str(args.rounds), "--model", "logreg"]
    cmd += ["--samples-per-client", str(args.samples), "--test-samples", "500"]
    cmd += ["--epochs", "1", "--round-duration", str(args.round_duration)]
    return cmd


def net_file(run_dir: Path) -> dict[str, Any]:
    """The supervisor's testnet.json ({} until it is written)."""
    try:
        return dict(json.loads((run_dir / "testnet.json").read_text()))
    except (OSError, ValueError):
        return {}


async def settled_rounds(contract: FederatedRounds) -> tuple[int, int]:
    """(closed, failed) rounds on chain."""
    last = await contract.current_round_id()
    infos = await asyncio.gather(*(contract.get_round(r) for r in range(1, last + 1)))
    closed = sum(1 for i in infos if i.status is RoundStatus.CLOSED)
    return closed, sum(1 for i in infos if i.status is RoundStatus.FAILED)


async def watch(proc: subprocess.Popen[bytes], run_dir: Path, stall_s: float) -> dict[str, Any]:
    """Follow the run until `testnet up` exits or a stall; returns what was seen."""
    contract, w3, seen = None, None, {"closed": 0, "failed": 0, "stalls": 0}
    last_progress = time.monotonic()
    try:
        while proc.poll() is None:
            await asyncio.sleep(2.0)
            net = net_file(run_dir)
            if contract is None and net.get("phase") == "running":
                w3 = AsyncWeb3(AsyncHTTPProvider(net["rpc_url"]))
                contract = FederatedRounds(w3, net["contract"])
                last_progress = time.monotonic()
            if contract is None:
                continue
            try:
                closed, failed = await settled_rounds(contract)
            except Exception:  # the chain stops with the net: keep what was seen
                continue
            if (closed, failed) != (seen["closed"], seen["failed"]):
                seen.update(closed=closed, failed=failed)
                last_progress = time.monotonic()
                print(f"soak: {closed} closed, {failed} failed", flush=True)
            elif time.monotonic() - last_progress > stall_s:
                seen["stalls"] += 1
                print(f"soak: STALL: no round settled for {stall_s:g} s at {closed} closed")
                break
    finally:
        if w3 is not None:
            await w3.provider.disconnect()  # type: ignore[attr-defined]
    return seen


def settled_in_summary(run_dir: Path, seen: dict[str, Any]) -> None:
    """Take the final counts from the run's summary.json when it has them.

    The watcher reads the chain every 2 s and `testnet up` stops the chain when it is done,
    so a round that settles in the last 2 s is on chain but was never read there.
    """
    try:
        rounds = json.loads((run_dir / "summary.json").read_text())["rounds"]
    except (OSError, ValueError, KeyError):
        return
    seen["closed"] = max(seen["closed"], sum(1 for r in rounds if r.get("status") == "closed"))
    seen["failed"] = max(seen["failed"], sum(1 for r in rounds if r.get("status") == "failed"))


def log_counts(run_dir: Path) -> dict[str, int]:
    """How often the daemons' logs show a lagging receipt, and a transaction called dead."""
    counts = {"lag": 0, "dropped": 0}
    for log in (run_dir / "logs").glob("*.log"):
        text = log.read_text(errors="replace")
        counts["lag"] += text.count(LAG_SEEN)
        counts["dropped"] += text.count(DROPPED)
    return counts


def stop(run_dir: Path, proc: subprocess.Popen[bytes]) -> None:
    """`testnet down`, then make sure `up` is gone."""
    down = [sys.executable, "-m", "daemons.cli", "testnet", "down", "--run-dir", str(run_dir)]
    subprocess.run(down, capture_output=True, timeout=120, check=False)
    if proc.poll() is None:
        proc.terminate()
        proc.wait(60)


def print_tails(run_dir: Path, lines: int = 15) -> None:
    for log in sorted((run_dir / "logs").glob("*.log")):
        print(f"----- {log.name} (tail) -----")
        print("\n".join(log.read_text(errors="replace").splitlines()[-lines:]))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=300)
    p.add_argument("--clients", type=int, default=1)
    p.add_argument("--samples", type=int, default=200)
    p.add_argument("--round-duration", type=int, default=60, help="round deadline, s (60)")
    p.add_argument("--stall-s", type=float, default=180.0, help="no progress this long: stall")
    p.add_argument("--keep", type=Path, default=None, help="run dir to keep (default: temp)")
    args = p.parse_args()
    with tempfile.TemporaryDirectory(prefix="fedchain-soak-") as tmp:
        run_dir = args.keep or Path(tmp) / "run"
        started = time.monotonic()
        with (Path(tmp) / "up.out").open("wb") as out:
            proc = subprocess.Popen(up_command(args, run_dir), stdout=out, stderr=out)
            try:
                seen = asyncio.run(watch(proc, run_dir, args.stall_s))
                if seen["stalls"]:
                    print_tails(run_dir)
            finally:
                stop(run_dir, proc)
        settled_in_summary(run_dir, seen)
        wall = time.monotonic() - started
        restarts = sum(net_file(run_dir).get("restarts", {}).values())
        counts = log_counts(run_dir)
        if not seen["stalls"] and proc.returncode != 0:
            print((Path(tmp) / "up.out").read_text(errors="replace")[-3000:])
    print(f"soak: {seen['closed']} of {args.rounds} rounds closed in {wall:.0f} s (machine loaded)")
    print(f"RESULT soak_rounds_closed {seen['closed']} rounds")
    print(f"RESULT soak_rounds_failed {seen['failed']} rounds")
    print(f"RESULT soak_daemon_restarts {restarts} restarts")
    print(f"RESULT soak_stalls {seen['stalls']} stalls")
    print(f"RESULT soak_receipt_lag_seen {counts['lag']} times")
    print(f"RESULT soak_tx_dropped {counts['dropped']} transactions")
    print(f"RESULT soak_seconds_per_round {wall / max(seen['closed'], 1):.2f} s")


if __name__ == "__main__":
    main()
