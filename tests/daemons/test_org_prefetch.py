"""The org's update prefetcher: one shared fetch per blob, bounded, errors handed to the judge."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from daemons.errors import RejectedUpdate
from daemons.ipfs.blobs import BlobCache
from daemons.org.prefetch import Prefetcher
from daemons.runtime.config import IpfsConfig
from tests.daemons.fakes import FakeStorage

pytestmark = pytest.mark.timeout(30)


class SlowStorage(FakeStorage):
    """FakeStorage whose gets take a while and are counted (calls, most at once)."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[str] = []
        self.running = self.peak = 0

    async def get(
        self,
        cid: str,
        digest: bytes | None,
        max_bytes: int,
        timeout_s: float,
        source: str | None = None,
    ) -> bytes:
        self.calls.append(cid)
        self.running += 1
        self.peak = max(self.peak, self.running)
        try:
            await asyncio.sleep(0.05)
            return await super().get(cid, digest, max_bytes, timeout_s, source)
        finally:
            self.running -= 1


def prefetcher(tmp_path: Path, storage: SlowStorage, limit: int = 4) -> Prefetcher:
    return Prefetcher(storage, BlobCache(tmp_path / "blobs"), IpfsConfig(timeout_s=5), limit)


async def test_the_judge_gets_the_prefetched_blob_without_a_second_fetch(tmp_path: Path) -> None:
    storage = SlowStorage()
    stored = await storage.put(b"update")
    pre = prefetcher(tmp_path, storage)
    pre.want(stored.cid, stored.digest)
    pre.want(stored.cid, stored.digest)  # a replayed event: still one fetch
    assert await pre.get(stored.cid, stored.digest) == b"update"
    assert await pre.get(stored.cid, stored.digest) == b"update"  # now from the cache
    assert storage.calls == [stored.cid]


async def test_fetches_run_side_by_side_up_to_the_limit(tmp_path: Path) -> None:
    storage = SlowStorage()
    blobs = [await storage.put(bytes([i]) * 10) for i in range(6)]
    pre = prefetcher(tmp_path, storage, limit=2)
    for b in blobs:
        pre.want(b.cid, b.digest)
    got = [await pre.get(b.cid, b.digest) for b in blobs]
    assert got == [bytes([i]) * 10 for i in range(6)]
    assert storage.peak == 2 and len(storage.calls) == 6


async def test_a_failed_prefetch_is_the_judges_error_once_then_fetched_afresh(
    tmp_path: Path,
) -> None:
    storage = SlowStorage()
    stored = await storage.put(b"update")
    storage.blobs[stored.cid] = b"tampered"
    pre = prefetcher(tmp_path, storage)
    pre.want(stored.cid, stored.digest)
    await asyncio.sleep(0.2)  # the background fetch has failed by now
    with pytest.raises(RejectedUpdate):
        await pre.get(stored.cid, stored.digest)
    assert len(storage.calls) == 1  # the judge saw the prefetch's error, no second fetch
    storage.blobs[stored.cid] = b"update"
    assert await pre.get(stored.cid, stored.digest) == b"update"
    assert len(storage.calls) == 2


async def test_close_cancels_fetches_under_way(tmp_path: Path) -> None:
    storage = SlowStorage()
    stored = await storage.put(b"update")
    pre = prefetcher(tmp_path, storage)
    pre.want(stored.cid, stored.digest)
    await asyncio.sleep(0.01)
    assert storage.running == 1
    await pre.close()
    assert storage.running == 0
    assert not pre.cache.has(stored.digest)


def test_a_limit_below_one_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="limit must be >= 1"):
        prefetcher(tmp_path, SlowStorage(), limit=0)
