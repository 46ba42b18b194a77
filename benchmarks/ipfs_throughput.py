"""Add and cat throughput through `IpfsStorage` on the bundled IPFS node, one node and two.

Blob sizes: 6.65 MB (the CNN model blob) and 40 MB. "one node": put then get on the same
node. "two nodes": put on node A, get on node B (swarm-connected over loopback; bitswap).
Every trial uses fresh random bytes so node B never has the blocks already. Prints the
median of --trials runs, ratios from this run, and `RESULT` lines.

`--pnet`: the cost of a private network instead: a second pair shares a swarm key, and the
cat across nodes is timed on both pairs, trials interleaved (so load drifts hit both alike);
prints each median and the keyed/unkeyed throughput ratio. It also times the pnet cipher's
two back-ends (daemons/ipfs/node/xsalsa20-stream: libsodium, and @noble/ciphers' JS
fallback) in one Node.js process, 64 KiB updates as the connection sees them.

    .venv/bin/python benchmarks/ipfs_throughput.py [--trials 3] [--pnet]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from daemons.ipfs.bundled import REPO_ROOT, BundledIpfsNode, find_node
from daemons.ipfs.client import IpfsStorage
from daemons.privacy.swarm_key import write_swarm_key

SIZES_MB = {"6.65MB": 6.65, "40MB": 40.0}
MB = 1_000_000


async def one_trial(a: IpfsStorage, b: IpfsStorage, size: int) -> dict[str, float]:
    """Seconds for: add on A, cat on A, cat of another blob (added on A) on B."""
    data, other = os.urandom(size), os.urandom(size)
    t0 = time.perf_counter()
    stored = await a.put(data)
    t1 = time.perf_counter()
    assert await a.get(stored.cid, stored.digest, size, timeout_s=120) == data
    t2 = time.perf_counter()
    remote = await a.put(other)
    t3 = time.perf_counter()
    assert await b.get(remote.cid, remote.digest, size, timeout_s=120) == other
    t4 = time.perf_counter()
    return {"add": t1 - t0, "cat_local": t2 - t1, "cat_remote": t4 - t3}


async def measure(a_url: str, b_url: str, trials: int) -> dict[str, dict[str, float]]:
    """Median MB/s per size and operation."""
    results: dict[str, dict[str, float]] = {}
    async with IpfsStorage(a_url) as a, IpfsStorage(b_url) as b:
        await one_trial(a, b, MB)  # warm up connections and JIT
        for name, mb in SIZES_MB.items():
            size = int(mb * MB)
            runs = [await one_trial(a, b, size) for _ in range(trials)]
            results[name] = {
                op: size / MB / statistics.median(r[op] for r in runs) for op in runs[0]
            }
    return results


def report(results: dict[str, dict[str, float]]) -> None:
    print(f"{'blob':>8} {'add MB/s':>10} {'cat 1 node':>11} {'cat 2 nodes':>12} {'2n/1n':>7}")
    for name, r in results.items():
        ratio = r["cat_remote"] / r["cat_local"]
        print(
            f"{name:>8} {r['add']:>10.1f} {r['cat_local']:>11.1f} {r['cat_remote']:>12.1f} "
            f"{ratio:>7.2f}"
        )
    big, small = results["40MB"], results["6.65MB"]
    print(
        f"40MB/6.65MB throughput ratio: add {big['add'] / small['add']:.2f}, "
        f"cat across nodes {big['cat_remote'] / small['cat_remote']:.2f}"
    )
    for name, r in results.items():
        print(f"RESULT ipfs_add_{name} {r['add']:.1f} MB/s")
        print(f"RESULT ipfs_cat_one_node_{name} {r['cat_local']:.1f} MB/s")
        print(f"RESULT ipfs_cat_two_nodes_{name} {r['cat_remote']:.1f} MB/s")


async def remote_cat_s(a: IpfsStorage, b: IpfsStorage, size: int) -> float:
    """Seconds for node B to cat a fresh blob of `size` bytes added on node A."""
    data = os.urandom(size)
    stored = await a.put(data)
    t0 = time.perf_counter()
    assert await b.get(stored.cid, stored.digest, size, timeout_s=300) == data
    return time.perf_counter() - t0


async def measure_pnet(
    plain: tuple[str, str], keyed: tuple[str, str], trials: int
) -> dict[str, tuple[float, float]]:
    """Median MB/s of the cat across nodes per size: (without key, with key)."""
    results: dict[str, tuple[float, float]] = {}
    async with (
        IpfsStorage(plain[0]) as pa,
        IpfsStorage(plain[1]) as pb,
        IpfsStorage(keyed[0]) as ka,
        IpfsStorage(keyed[1]) as kb,
    ):
        await remote_cat_s(pa, pb, MB)  # warm up connections and JIT
        await remote_cat_s(ka, kb, MB)
        for name, mb in SIZES_MB.items():
            size = int(mb * MB)
            runs = [
                (await remote_cat_s(pa, pb, size), await remote_cat_s(ka, kb, size))
                for _ in range(trials)
            ]
            results[name] = (
                size / MB / statistics.median(r[0] for r in runs),
                size / MB / statistics.median(r[1] for r in runs),
            )
    return results


def report_pnet(results: dict[str, tuple[float, float]]) -> None:
    print(f"{'blob':>8} {'no key MB/s':>12} {'swarm key MB/s':>15} {'key/no key':>11}")
    for name, (plain, keyed) in results.items():
        print(f"{name:>8} {plain:>12.1f} {keyed:>15.1f} {keyed / plain:>11.2f}")
    for name, (plain, keyed) in results.items():
        print(f"RESULT ipfs_cat_two_nodes_{name}_no_key {plain:.1f} MB/s")
        print(f"RESULT ipfs_cat_two_nodes_{name}_swarm_key {keyed:.1f} MB/s")
        print(f"RESULT ipfs_pnet_throughput_ratio_{name} {keyed / plain:.2f} keyed/unkeyed")


# MB/s of each back-end: 64 MiB in 64 KiB updates, best of 5 (the first runs warm the JIT)
CIPHER_SPEED_SCRIPT = """
import { streams } from 'xsalsa20'
const chunk = new Uint8Array(64 * 1024), out = new Uint8Array(chunk.length)
const speeds = {}
for (const [name, Stream] of Object.entries(streams)) {
  const x = new Stream(new Uint8Array(24).fill(1), new Uint8Array(32).fill(2))
  let best = Infinity
  for (let trial = 0; trial < 5; trial++) {
    const t0 = performance.now()
    for (let i = 0; i < 1024; i++) x.update(chunk, out)
    best = Math.min(best, performance.now() - t0)
  }
  speeds[name] = 64 * 1.048576 / (best / 1000)
}
process.stdout.write(JSON.stringify(speeds))
"""


def cipher_speeds() -> dict[str, float]:
    """MB/s of the pnet cipher's back-ends, measured in one Node.js process."""
    done = subprocess.run(
        [find_node(), "--input-type=module", "-e", CIPHER_SPEED_SCRIPT],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=REPO_ROOT,
        check=True,
    )
    return {name: float(v) for name, v in json.loads(done.stdout).items()}


def report_cipher(speeds: dict[str, float]) -> None:
    for name, speed in speeds.items():
        print(f"pnet cipher {name:>9}: {speed:8.0f} MB/s")
        print(f"RESULT pnet_cipher_{name} {speed:.0f} MB/s")
    if "libsodium" in speeds:
        ratio = speeds["libsodium"] / speeds["noble"]
        print(f"RESULT pnet_cipher_libsodium_vs_noble {ratio:.2f} ratio")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=3)
    parser.add_argument("--pnet", action="store_true", help="keyed vs unkeyed cat across nodes")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="fedchain-ipfs-bench-") as tmp:
        root = Path(tmp)
        with BundledIpfsNode(root / "a") as a, BundledIpfsNode(root / "b") as b:
            if not args.pnet:
                asyncio.run(_connect_and_measure(a, b, args.trials))
                return
            key = write_swarm_key(root / "swarm.key")
            with (
                BundledIpfsNode(root / "ka", swarm_key=key) as ka,
                BundledIpfsNode(root / "kb", swarm_key=key) as kb,
            ):
                asyncio.run(_connect_and_measure_pnet((a, b), (ka, kb), args.trials))
            report_cipher(cipher_speeds())


async def _connect_and_measure_pnet(
    plain: tuple[BundledIpfsNode, BundledIpfsNode],
    keyed: tuple[BundledIpfsNode, BundledIpfsNode],
    trials: int,
) -> None:
    for a, b in (plain, keyed):
        async with IpfsStorage(b.api_url) as storage:
            await storage.connect(a.swarm_multiaddr)
    assert keyed[0].private_network and not plain[0].private_network
    print(f"two pairs (B dialed A), one with a swarm key; trials per size: {trials}")
    urls = [(a.api_url, b.api_url) for a, b in (plain, keyed)]
    report_pnet(await measure_pnet(urls[0], urls[1], trials))


async def _connect_and_measure(a: BundledIpfsNode, b: BundledIpfsNode, trials: int) -> None:
    async with IpfsStorage(b.api_url) as storage:
        await storage.connect(a.swarm_multiaddr)
    print(f"nodes: A {a.api_url}, B {b.api_url} (B dialed A); trials per size: {trials}")
    report(await measure(a.api_url, b.api_url, trials))


if __name__ == "__main__":
    main()
