"""Verify time per round relative to the round's own aggregation time (target <= 2x).

Runs `fedchain testnet up --keep-running` (anvil, bundled IPFS nodes, org + N client daemons),
checks the run with `fedchain verify --config <run>/configs/org.toml` as a user would, then
times per round, in this one process and interleaved so both see the same machine load:

- verify_s: what `fedchain verify` does for the round: fetch the config, base, updates,
  manifest and model from the org's IPFS node (digest-checked), re-validate every update,
  replay the aggregation, encode and hash the model (`fetch_blobs` + `verify_round`);
- aggregate_s: the org's aggregation of the same round (`server_update` on the decoded updates,
  the function the org times as its manifest's `aggregate_s`).

The median over `--repeats` of each, per round; round 1 is left out (one-off JIT: verify
re-derives the seeded initial model there). The manifest's own `aggregate_s` (another
process, another moment) is printed beside for reference.

    .venv/bin/python benchmarks/verify_speed.py [--clients 4] [--rounds 4] [--model 2nn]
        [--strategy fedavg] [--repeats 5]
"""

from __future__ import annotations

import argparse
import asyncio
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


def cli_verdicts(run_dir: Path, timeout_s: float) -> tuple[list[str], float]:
    """`fedchain verify --json` as a user runs it: each round's verdict, and its wall time."""
    started = time.perf_counter()
    res = fedchain("verify", "--config", str(run_dir / "configs" / "org.toml"), "--json",
                   timeout_s=timeout_s)  # fmt: skip
    wall = time.perf_counter() - started
    if res.returncode != 0:
        sys.exit(f"verify failed ({res.returncode}):\n{res.stdout[-4000:]}{res.stderr[-2000:]}")
    return [r["verdict"] for r in json.loads(res.stdout)["rounds"]], wall


async def time_rounds(net: dict[str, Any], repeats: int) -> dict[int, tuple[float, float]]:
    """Per closed round after the first: (median verify_s, median aggregate_s)."""
    from web3 import AsyncHTTPProvider, AsyncWeb3

    from daemons.ipfs.client import IpfsStorage
    from daemons.verify.gather import chain_facts, fetch_blobs, storage_getter
    from daemons.verify.pins import platform_facts
    from daemons.verify.replay import verify_round

    w3 = AsyncWeb3(AsyncHTTPProvider(net["rpc_url"]))
    try:
        facts = await chain_facts(w3, net["contract"])
    finally:
        await w3.provider.disconnect()
    here, out = platform_facts(), {}
    async with IpfsStorage(net["ipfs_api"]) as storage:
        for r in sorted(facts):
            if r == 1 or facts[r].closed is None:
                continue
            aggregate = await _aggregation(facts[r], storage_getter(storage, 60))
            verify_s, aggregate_s = [], []
            for _ in range(repeats):
                started = time.perf_counter()
                full = await fetch_blobs(facts[r], storage_getter(storage, 60), 1 << 26)
                report = verify_round(full, facts.get(r - 1), _inputs(), here)
                verify_s.append(time.perf_counter() - started)
                assert report.verdict != "MISMATCH", report
                aggregate_s.append(aggregate())
            out[r] = (statistics.median(verify_s), statistics.median(aggregate_s))
    return out


def _inputs() -> Any:
    from daemons.verify.facts import ReplayInputs

    return ReplayInputs()


async def _aggregation(facts: Any, get: Any) -> Any:
    """A timer of the org's aggregation of this round, on its decoded accepted updates."""
    from daemons.verify.gather import fetch_blobs
    from daemons.verify.pins import bounds_from_doc
    from daemons.wire.manifest import decode_manifest
    from daemons.wire.round_config import decode_round_config
    from models.codec import decode_blob
    from models.rounds import server_update
    from models.strategies import ClientUpdate, get_strategy

    full = await fetch_blobs(facts, get, 1 << 26)
    cfg = decode_round_config(full.config.data)
    pins = cfg.replay or {}
    included = {e.client for e in decode_manifest(full.manifest.data).included}
    base = decode_blob(full.base.data)
    updates = []
    for ev in facts.updates:
        if ev.client in included:
            sections = decode_blob(full.update_blobs[ev.client].data).sections
            updates.append(
                ClientUpdate(ev.client, sections["params"], ev.num_samples, sections.get("fisher"))
            )
    name, options = pins["strategy"], pins["strategy_options"]
    args = (cfg.training.fisher_gamma, cfg.fisher, bounds_from_doc(pins.get("influence")))

    def run() -> float:
        started = time.perf_counter()
        server_update(base.sections, updates, get_strategy(name, **dict(options)), *args)
        return time.perf_counter() - started

    return run


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--clients", type=int, default=4)
    p.add_argument("--rounds", type=int, default=4)
    p.add_argument("--model", default="2nn")
    p.add_argument("--strategy", default="fedavg")
    p.add_argument("--samples", type=int, default=500, help="samples per client")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--timeout", type=float, default=1800)
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="verify-speed-") as tmp:
        run_dir = Path(tmp) / "net"
        try:
            summary = run_testnet(args, run_dir)
            verdicts, wall = cli_verdicts(run_dir, args.timeout)
            net = json.loads((run_dir / "testnet.json").read_text())
            timed = asyncio.run(time_rounds(net, args.repeats))
        finally:
            fedchain("testnet", "down", "--run-dir", str(run_dir), timeout_s=120)
    if not timed:
        sys.exit("no closed round after the first to time")
    manifest = {r["round_id"]: r["timings_s"].get("aggregate_s") for r in summary["rounds"]}
    print(f"{args.clients} clients, model {args.model}, strategy {args.strategy}")
    print(f"fedchain verify --json: verdicts {verdicts}, {wall:.1f} s wall (start-up included)")
    print("round  verify_s  aggregate_s  ratio  (manifest aggregate_s)")
    for r, (v, a) in sorted(timed.items()):
        print(f"{r:>5}  {v:8.4f}  {a:11.4f}  {v / a:5.2f}  ({manifest.get(r) or 0:.4f})")
    ratio = statistics.median(v / a for v, a in timed.values())
    print(f"median ratio {ratio:.2f} (target <= {TARGET:g}x), medians of {args.repeats} "
          "interleaved repeats per round; machine shared with other jobs")  # fmt: skip
    print(f"RESULT verify_vs_aggregate {ratio:.2f} x")
    print(f"RESULT verify_round_s {statistics.median(v for v, _ in timed.values()):.4f} s")


if __name__ == "__main__":
    main()
