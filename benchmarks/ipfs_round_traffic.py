"""IPFS cost of one federation round's traffic, by chunk size and node GC setting.

A star of bundled IPFS nodes as on `fedchain testnet up`: one org node, --clients client
nodes dialed to it. Per round: the org adds a base model blob (--mb) and a 2 kB round
config; every client cats both; every client adds an update blob of the same size; the org
cats all updates and pins them. Fresh random bytes every round. Measured per round: wall
time and the CPU seconds of the node processes (from /proc), for three set-ups in one run:

- `256k`: 262144-byte chunks (Kubo's default), V8 defaults;
- `1m`: 1048576-byte chunks (`[ipfs] chunk_bytes` default), V8 defaults;
- `1m+gc`: 1 MiB chunks and `daemons.ipfs.bundled.V8_FLAGS` (what the daemons run).

    .venv/bin/python benchmarks/ipfs_round_traffic.py [--clients 4] [--rounds 20] [--mb 0.8]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import statistics
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from daemons.ipfs.bundled import V8_FLAGS, BundledIpfsNode
from daemons.ipfs.client import IpfsStorage

KIB = 1024
SETUPS = {"256k": (256 * KIB, ()), "1m": (1024 * KIB, ()), "1m+gc": (1024 * KIB, V8_FLAGS)}


@dataclass(frozen=True)
class Cost:
    wall_ms: float
    org_cpu_ms: float
    client_cpu_ms: float  # mean over client nodes


def cpu_s(pid: int) -> float:
    """utime + stime of a process, in seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def one_round(org: IpfsStorage, clients: list[IpfsStorage], size: int) -> None:
    cap, timeout = 64 << 20, 60.0
    base = await org.put(os.urandom(size))
    config = await org.put(os.urandom(2000))
    reads = [c.get(b.cid, b.digest, cap, timeout) for c in clients for b in (base, config)]
    await asyncio.gather(*reads)
    updates = await asyncio.gather(*(c.put(os.urandom(size)) for c in clients))
    await asyncio.gather(*(org.get(u.cid, u.digest, cap, timeout) for u in updates))
    await asyncio.gather(*(org.pin(u.cid) for u in updates))


async def measure(nodes: list[BundledIpfsNode], chunk: int, rounds: int, size: int) -> Cost:
    async with contextlib.AsyncExitStack() as stack:
        stores = [
            await stack.enter_async_context(IpfsStorage(n.api_url, chunk_size=chunk)) for n in nodes
        ]
        for store in stores[1:]:
            await store.connect(nodes[0].swarm_multiaddr)
        await one_round(stores[0], stores[1:], size)  # warm-up: connections, JIT
        pids = [n.pid for n in nodes if n.pid is not None]  # all started: one per node
        before, started = [cpu_s(p) for p in pids], time.monotonic()
        for _ in range(rounds):
            await one_round(stores[0], stores[1:], size)
        wall = time.monotonic() - started
        spent = [cpu_s(p) - b for p, b in zip(pids, before, strict=True)]
    return Cost(
        wall_ms=wall / rounds * 1e3,
        org_cpu_ms=spent[0] / rounds * 1e3,
        client_cpu_ms=statistics.mean(spent[1:]) / rounds * 1e3,
    )


def run_setup(name: str, args: argparse.Namespace, root: Path) -> Cost:
    chunk, flags = SETUPS[name]
    with contextlib.ExitStack() as stack:
        nodes = [
            stack.enter_context(BundledIpfsNode(root / name / f"node{i}", v8_flags=flags))
            for i in range(args.clients + 1)
        ]
        return asyncio.run(measure(nodes, chunk, args.rounds, int(args.mb * 1e6)))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--clients", type=int, default=4)
    p.add_argument("--rounds", type=int, default=20)
    p.add_argument("--mb", type=float, default=0.8, help="blob size in MB (2NN update: 0.8)")
    args = p.parse_args()
    print(f"# {args.clients} clients, {args.mb} MB blobs, {args.rounds} rounds per set-up")
    with tempfile.TemporaryDirectory(prefix="fedchain-ipfs-round-") as tmp:
        costs = {name: run_setup(name, args, Path(tmp)) for name in SETUPS}
    print(f"{'set-up':>8} {'wall ms':>9} {'org cpu ms':>11} {'client cpu ms':>14}")
    for name, c in costs.items():
        print(f"{name:>8} {c.wall_ms:9.0f} {c.org_cpu_ms:11.0f} {c.client_cpu_ms:14.0f}")
    base, ours = costs["256k"], costs["1m+gc"]
    total = {n: c.org_cpu_ms + args.clients * c.client_cpu_ms for n, c in costs.items()}
    print(f"RESULT ipfs_round_wall_ours_vs_256k {ours.wall_ms / base.wall_ms:.2f} ratio")
    print(f"RESULT ipfs_round_cpu_ours_vs_256k {total['1m+gc'] / total['256k']:.2f} ratio")
    print(f"RESULT ipfs_round_cpu_1m_vs_256k {total['1m'] / total['256k']:.2f} ratio")
    print(f"RESULT ipfs_round_wall_ours {ours.wall_ms:.0f} ms")


if __name__ == "__main__":
    main()
