"""IpfsStorage against the real bundled IPFS node: round trips, digest and size checks,
timeouts, pins across restarts, garbage collection, and error mapping."""

from __future__ import annotations

import asyncio
import hashlib
import os
import signal
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
from multiformats_cid import make_cid

from daemons.errors import RejectedUpdate, TransientError
from daemons.ipfs.bundled import BundledIpfsNode
from daemons.ipfs.client import (
    ContentRejected,
    IpfsStorage,
    IpfsTimeout,
    IpfsUnavailable,
    StoredBlob,
)
from tests.fixtures.ipfs import rpc

pytestmark = pytest.mark.timeout(120)
MiB = 1 << 20


@pytest.mark.parametrize("size", [1, MiB, 30 * MiB], ids=["1B", "1MiB", "30MiB"])
async def test_put_get_round_trip(shared_ipfs_node: BundledIpfsNode, size: int) -> None:
    data = os.urandom(size)
    async with IpfsStorage(shared_ipfs_node.api_url) as storage:
        stored = await storage.put(data)
        got = await storage.get(stored.cid, stored.digest, max_bytes=size, timeout_s=30)
        pinned = await storage.is_pinned(stored.cid)
    assert got == data
    assert stored == StoredBlob(stored.cid, hashlib.sha256(data).digest(), size)
    # CIDv1 base32: a one-chunk blob is a bare raw block, larger ones a dag-pb root.
    assert stored.cid.startswith("bafkrei" if size <= 262144 else "bafybei")
    assert pinned


async def test_same_bytes_give_same_cid(shared_ipfs_node: BundledIpfsNode) -> None:
    data = os.urandom(700_000)
    async with IpfsStorage(shared_ipfs_node.api_url) as storage:
        first, second = await storage.put(data), await storage.put(data)
    assert first == second


async def test_digest_mismatch_is_rejected(shared_ipfs_node: BundledIpfsNode) -> None:
    async with IpfsStorage(shared_ipfs_node.api_url) as storage:
        stored = await storage.put(b"model bytes")
        wrong = hashlib.sha256(b"other bytes").digest()
        with pytest.raises(ContentRejected) as info:
            await storage.get(stored.cid, wrong, max_bytes=1000, timeout_s=10)
    assert info.value.reason == "digest"
    assert isinstance(info.value, RejectedUpdate)
    assert not isinstance(info.value, TransientError)


class CountingStorage(IpfsStorage):
    """Records how many body bytes the HTTP client took in for each streamed call."""

    received: list[int]

    @asynccontextmanager
    async def _post(self, path: str, params: dict[str, str]) -> AsyncIterator[Any]:
        self.received = getattr(self, "received", [])
        async with super()._post(path, params) as resp:
            try:
                yield resp
            finally:
                self.received.append(resp.content.total_bytes)


async def test_size_cap_rejects_without_reading_the_blob(shared_ipfs_node: BundledIpfsNode) -> None:
    data = os.urandom(8 * MiB)
    async with CountingStorage(shared_ipfs_node.api_url) as storage:
        stored = await storage.put(data)
        exact = await storage.get(stored.cid, stored.digest, max_bytes=len(data), timeout_s=30)
        with pytest.raises(ContentRejected) as info:
            await storage.get(stored.cid, stored.digest, max_bytes=len(data) - 1, timeout_s=30)
        with pytest.raises(ContentRejected):
            await storage.get(stored.cid, stored.digest, max_bytes=MiB, timeout_s=30)
    assert exact == data
    assert info.value.reason == "too_large"
    # The full read took all 8 MiB; the rejected ones stopped near the cap or before it.
    assert storage.received[0] == len(data)
    assert storage.received[2] <= MiB + 1 + 256 * 1024


async def test_unknown_cid_fails_within_the_timeout(shared_ipfs_node: BundledIpfsNode) -> None:
    absent = os.urandom(1000)
    cid = str(rpc_add_only_hash(shared_ipfs_node, absent))
    async with IpfsStorage(shared_ipfs_node.api_url) as storage:
        started = time.monotonic()
        with pytest.raises(IpfsTimeout):
            await storage.get(cid, hashlib.sha256(absent).digest(), 10_000, timeout_s=1.5)
        elapsed = time.monotonic() - started
    assert 1.0 <= elapsed < 4.0
    assert rpc(shared_ipfs_node, "version")  # the node still answers after the abandoned request


def rpc_add_only_hash(node: BundledIpfsNode, data: bytes) -> str:
    """The CID `data` would get, computed by the node without storing it."""
    import urllib.request

    boundary = "fedchain-test-boundary"
    body = (
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="x"\r\n'
            "Content-Type: application/octet-stream\r\n\r\n"
        ).encode()
        + data
        + f"\r\n--{boundary}--\r\n".encode()
    )
    req = urllib.request.Request(
        f"{node.api_url}/api/v0/add?cid-version=1&only-hash=true",
        data=body,
        headers={"Content-Type": f"multipart/form-data; boundary={boundary}"},
        method="POST",
    )
    with urllib.request.urlopen(req, timeout=30) as resp:
        import json

        return str(json.loads(resp.read())["Hash"])


async def test_pins_survive_a_restart_and_a_kill(tmp_path) -> None:
    data = os.urandom(3 * MiB)
    with BundledIpfsNode(tmp_path / "repo") as node:
        peer_id = node.peer_id
        async with IpfsStorage(node.api_url) as storage:
            stored = await storage.put(data)
    for _ in range(2):
        with BundledIpfsNode(tmp_path / "repo") as node:
            async with IpfsStorage(node.api_url) as storage:
                assert await storage.is_pinned(stored.cid)
                got = await storage.get(stored.cid, stored.digest, len(data), timeout_s=10)
                assert got == data
            assert node.peer_id == peer_id  # the peer key lives in the repo too
            # Then kill -9: the next start finds a stale repo.lock and no clean shutdown.
            assert node.pid is not None
            os.kill(node.pid, signal.SIGKILL)


async def test_gc_removes_unpinned_and_keeps_pinned(ipfs_node: BundledIpfsNode) -> None:
    kept, dropped = os.urandom(600_000), os.urandom(600_000)
    async with IpfsStorage(ipfs_node.api_url) as storage:
        keep = await storage.put(kept)
        drop = await storage.put(dropped)
        await storage.unpin(drop.cid)
        await storage.unpin(drop.cid)  # unpinning twice is fine
        assert not await storage.is_pinned(drop.cid)
        removed = {multihash_of(cid) for cid in await storage.gc()}
        assert multihash_of(drop.cid) in removed and multihash_of(keep.cid) not in removed
        assert await storage.get(keep.cid, keep.digest, len(kept), timeout_s=10) == kept
        with pytest.raises(IpfsTimeout):
            await storage.get(drop.cid, drop.digest, len(dropped), timeout_s=1)


async def test_missing_blocks_are_transient_not_rejected(ipfs_node: BundledIpfsNode) -> None:
    data = os.urandom(2 * MiB)
    async with IpfsStorage(ipfs_node.api_url) as storage:
        stored = await storage.put(data)
    # Lose the leaf blocks while the node is down (a running node keeps an index and recent
    # blocks in memory): the root still announces the size, the leaves are nowhere.
    ipfs_node.stop()
    leaves = [
        block
        for block in (ipfs_node.repo_dir / "blocks").rglob("*.data")
        if block.stat().st_size == 262144
    ]
    assert len(leaves) == 8
    for block in leaves:
        block.unlink()
    ipfs_node.start()
    async with IpfsStorage(ipfs_node.api_url) as storage:
        with pytest.raises(TransientError) as info:
            await storage.get(stored.cid, stored.digest, len(data), timeout_s=1.5)
    assert isinstance(info.value, IpfsTimeout | IpfsUnavailable)


def multihash_of(cid: str) -> bytes:
    """Blocks are stored by multihash, so gc names them with whatever CID codec it likes."""
    return bytes(make_cid(cid).multihash)


async def test_unreachable_node_is_transient_with_a_hint() -> None:
    from daemons.testnet.nodes.anvil import free_port

    async with IpfsStorage(f"http://127.0.0.1:{free_port()}") as storage:
        with pytest.raises(IpfsUnavailable, match="fedchain ipfs"):
            await storage.put(b"x")
        with pytest.raises(IpfsUnavailable):
            await storage.unpin("bafkreifzjut3te2nhyekklss27nh3k72ysco7y32koao5eei66wof36n5e")


async def test_malformed_cid_is_rejected_not_retried(shared_ipfs_node: BundledIpfsNode) -> None:
    async with IpfsStorage(shared_ipfs_node.api_url) as storage:
        with pytest.raises(ContentRejected) as info:
            await storage.get("not-a-cid", b"\0" * 32, 10, timeout_s=5)
    assert info.value.reason == "bad_cid"


def test_bad_arguments_are_named() -> None:
    with pytest.raises(ValueError, match="api_url"):
        IpfsStorage("127.0.0.1:5001")
    with pytest.raises(ValueError, match="chunk_size"):
        IpfsStorage("http://127.0.0.1:5001", chunk_size=0)


async def test_a_stalled_cat_is_asked_again_within_the_same_deadline(
    shared_ipfs_node: BundledIpfsNode, caplog: pytest.LogCaptureFixture
) -> None:
    # A want can hang in the node while the block is already in its store (a race in Helia's
    # bitswap): a `cat` that gets no byte for stall_retry_s asks again. A proxy in front of
    # the real node swallows the first `cat` and passes the rest through.
    import aiohttp
    from aiohttp import web

    data = os.urandom(300_000)
    seen: list[str] = []

    async def handle(request: web.Request) -> web.StreamResponse:
        seen.append(request.path)
        if request.path.endswith("/cat") and seen.count(request.path) == 1:
            await asyncio.sleep(60)  # the stalled want: no header, no byte
        url = f"{shared_ipfs_node.api_url}{request.path_qs}"
        async with (
            aiohttp.ClientSession() as http,
            http.post(url, data=await request.read(), headers=request.headers) as up,
        ):
            reply = web.StreamResponse(status=up.status, headers=up.headers)
            await reply.prepare(request)
            async for chunk in up.content.iter_chunked(1 << 16):
                await reply.write(chunk)
            await reply.write_eof()
            return reply

    async with serve_app(handle) as proxy_url:
        async with IpfsStorage(shared_ipfs_node.api_url) as direct:
            stored = await direct.put(data)
        async with IpfsStorage(proxy_url, stall_retry_s=0.5) as storage:
            started = time.monotonic()
            got = await storage.get(stored.cid, stored.digest, len(data), timeout_s=10)
            elapsed = time.monotonic() - started
    assert got == data and 0.5 <= elapsed < 5.0
    assert seen.count("/api/v0/cat") == 2
    assert "no data from" in caplog.text and "asking again (attempt 2" in caplog.text


async def test_asking_again_keeps_the_deadline(shared_ipfs_node: BundledIpfsNode) -> None:
    absent = os.urandom(1000)
    cid = str(rpc_add_only_hash(shared_ipfs_node, absent))
    async with IpfsStorage(shared_ipfs_node.api_url, stall_retry_s=0.3) as storage:
        started = time.monotonic()
        with pytest.raises(IpfsTimeout):
            await storage.get(cid, hashlib.sha256(absent).digest(), 10_000, timeout_s=1.5)
    assert 1.0 <= time.monotonic() - started < 4.0


@asynccontextmanager
async def serve_app(handler: Any) -> AsyncIterator[str]:
    """An aiohttp server on a free loopback port with one catch-all POST route."""
    from aiohttp import web

    app = web.Application()
    app.router.add_route("POST", "/{tail:.*}", handler)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()
