"""A TCP (or Unix-socket) proxy that adds latency and loss-like stalls to every byte it forwards.

This kernel has no `netem`, so the multi-host test and `benchmarks/network.py` add delay in
user space: each chunk read from one side is written to the other `delay_ms` later (both
directions, so a proxy adds 2 x delay_ms to the round-trip time), in order. TCP never loses
bytes; what a lost segment costs a TCP stream is a retransmission stall, so with `loss` > 0
each chunk is, with that probability, held back one extra `rto_ms` (Linux's minimum RTO is
200 ms) together with everything behind it. Bandwidth is shaped with `tc` (tbf) on the
namespaces' links, not here.

    python -m tests.netsim.delay_proxy --listen 127.0.0.1:18545 --target 198.18.0.1:8545 \\
        --delay-ms 25 [--loss 0.01] [--rto-ms 200] [--seed 0]

`--listen`/`--target` take HOST:PORT or unix:PATH (a Unix socket is how the test, in the root
namespace, reaches a server inside a network namespace without giving it a route).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import random
import signal
import sys
import time
from dataclasses import dataclass

CHUNK_BYTES = 64 * 1024
# Chunks held per direction: a full queue stops reading, so TCP's flow control still reaches
# the sender (at most QUEUE_CHUNKS x CHUNK_BYTES in the proxy).
QUEUE_CHUNKS = 64


@dataclass
class Impairment:
    """What the proxy does to each direction of every connection (changeable while running)."""

    delay_s: float = 0.0
    loss: float = 0.0
    rto_s: float = 0.2


async def open_endpoint(spec: str) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """Connect to HOST:PORT or unix:PATH."""
    if spec.startswith("unix:"):
        return await asyncio.open_unix_connection(spec[5:], limit=CHUNK_BYTES)
    host, port = spec.rsplit(":", 1)
    return await asyncio.open_connection(host, int(port), limit=CHUNK_BYTES)


async def _pump(
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    imp: Impairment,
    rng: random.Random,
) -> None:
    """Copy reader -> writer, each chunk released `delay` after it arrived (order kept)."""
    queue: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue(QUEUE_CHUNKS)

    async def release() -> None:
        not_before = 0.0
        while True:
            due, data = await queue.get()
            if not data:
                break
            not_before = max(not_before, due)
            if imp.loss and rng.random() < imp.loss:
                not_before += imp.rto_s  # a lost segment: the stream waits for the retransmit
            wait = not_before - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
            writer.write(data)
            await writer.drain()
        with contextlib.suppress(OSError):
            writer.write_eof()

    releaser = asyncio.create_task(release())
    try:
        while data := await reader.read(CHUNK_BYTES):
            await queue.put((time.monotonic() + imp.delay_s, data))
        await queue.put((time.monotonic() + imp.delay_s, b""))
        await releaser
    finally:
        releaser.cancel()


async def _serve_one(
    client_r: asyncio.StreamReader,
    client_w: asyncio.StreamWriter,
    target: str,
    imp: Impairment,
    rng: random.Random,
) -> None:
    try:
        server_r, server_w = await open_endpoint(target)
    except OSError:
        client_w.close()
        return
    try:
        await asyncio.gather(
            _pump(client_r, server_w, imp, rng), _pump(server_r, client_w, imp, rng)
        )
    except (OSError, asyncio.IncompleteReadError):
        pass
    finally:
        for w in (client_w, server_w):
            w.close()


async def start_proxy(
    listen: str, target: str, imp: Impairment, seed: int = 0
) -> asyncio.AbstractServer:
    """Start serving; the caller closes the returned server."""
    rng = random.Random(seed)

    async def handle(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        await _serve_one(r, w, target, imp, rng)

    if listen.startswith("unix:"):
        return await asyncio.start_unix_server(handle, listen[5:], limit=CHUNK_BYTES)
    host, port = listen.rsplit(":", 1)
    return await asyncio.start_server(handle, host, int(port), limit=CHUNK_BYTES)


async def follow_file(path: str, imp: Impairment, period_s: float = 0.2) -> None:
    """Re-read "DELAY_MS [LOSS]" from `path` (a benchmark changes the link between rounds)."""
    while True:
        with contextlib.suppress(OSError, ValueError, IndexError):
            words = open(path).read().split()  # noqa: SIM115 - tiny file, closed by GC
            imp.delay_s = float(words[0]) / 1000
            imp.loss = float(words[1]) if len(words) > 1 else 0.0
        await asyncio.sleep(period_s)


async def _main(args: argparse.Namespace) -> None:
    imp = Impairment(args.delay_ms / 1000, args.loss, args.rto_ms / 1000)
    server = await start_proxy(args.listen, args.target, imp, args.seed)
    if args.delay_file:
        asyncio.get_running_loop().create_task(follow_file(args.delay_file, imp))
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    print(f"proxy {args.listen} -> {args.target} ready", flush=True)
    async with server:
        await stop.wait()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="delay_proxy", description=__doc__.splitlines()[0])
    p.add_argument("--listen", required=True, help="HOST:PORT or unix:PATH")
    p.add_argument("--target", required=True, help="HOST:PORT or unix:PATH")
    p.add_argument("--delay-ms", type=float, default=0.0, help="one-way delay per direction")
    p.add_argument("--loss", type=float, default=0.0, help="chance a chunk stalls one RTO")
    p.add_argument("--rto-ms", type=float, default=200.0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--delay-file", help='re-read "DELAY_MS [LOSS]" from this file while running')
    args = p.parse_args(argv)
    if not 0 <= args.loss < 1 or args.delay_ms < 0:
        p.error("--loss must be in [0, 1) and --delay-ms >= 0")
    asyncio.run(_main(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
