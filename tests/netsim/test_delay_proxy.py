"""The latency proxy the multi-host test and benchmarks/network.py put between hosts: it
forwards every byte in order, adds its delay each way, stalls for "loss", and follows a file."""

from __future__ import annotations

import asyncio
import os
import time

import pytest

from tests.netsim.delay_proxy import Impairment, follow_file, open_endpoint, start_proxy

pytestmark = pytest.mark.timeout(60)


async def echo_server() -> tuple[asyncio.AbstractServer, int]:
    async def echo(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        while data := await r.read(65536):
            w.write(data)
            await w.drain()
        w.close()

    server = await asyncio.start_server(echo, "127.0.0.1", 0)
    return server, server.sockets[0].getsockname()[1]


async def round_trip(port: int, payload: bytes) -> tuple[bytes, float]:
    r, w = await open_endpoint(f"127.0.0.1:{port}")
    t0 = time.monotonic()
    w.write(payload)
    await w.drain()
    w.write_eof()
    got = await r.read(-1)
    w.close()
    return got, time.monotonic() - t0


async def proxied(
    imp: Impairment, target: str, listen: str = "127.0.0.1:0"
) -> tuple[asyncio.AbstractServer, int]:
    proxy = await start_proxy(listen, target, imp)
    return proxy, proxy.sockets[0].getsockname()[1] if not listen.startswith("unix:") else 0


async def test_bytes_arrive_intact_and_in_order_with_the_delay_added_both_ways() -> None:
    server, port = await echo_server()
    proxy, pport = await proxied(Impairment(delay_s=0.1), f"127.0.0.1:{port}")
    async with server, proxy:
        payload = os.urandom(3 << 20)  # many chunks: order must hold across the queue
        got, elapsed = await round_trip(pport, payload)
        assert got == payload
        assert elapsed >= 0.2  # 0.1 s there + 0.1 s back
        small, rtt = await round_trip(pport, b"ping")
        assert small == b"ping" and 0.2 <= rtt < 1.5


async def test_loss_stalls_the_stream_by_one_rto_per_lost_chunk() -> None:
    server, port = await echo_server()
    proxy, pport = await proxied(Impairment(loss=0.999, rto_s=0.3), f"127.0.0.1:{port}")
    async with server, proxy:
        got, elapsed = await round_trip(pport, b"x")
        assert got == b"x" and elapsed >= 0.6  # lost once each way


async def test_a_unix_socket_bridges_into_a_tcp_server(tmp_path) -> None:
    server, port = await echo_server()
    sock = tmp_path / "s.sock"
    inner = await start_proxy(f"unix:{sock}", f"127.0.0.1:{port}", Impairment())
    outer, oport = await proxied(Impairment(), f"unix:{sock}")
    async with server, inner, outer:
        got, _ = await round_trip(oport, b"through the window")
        assert got == b"through the window"


async def test_the_delay_follows_its_file(tmp_path) -> None:
    imp = Impairment()
    path = tmp_path / "delay"
    path.write_text("40 0.25")
    task = asyncio.create_task(follow_file(str(path), imp, period_s=0.01))
    try:
        await asyncio.sleep(0.1)
        assert (imp.delay_s, imp.loss) == (0.04, 0.25)
        path.write_text("0")
        await asyncio.sleep(0.1)
        assert (imp.delay_s, imp.loss) == (0.0, 0.0)
    finally:
        task.cancel()
