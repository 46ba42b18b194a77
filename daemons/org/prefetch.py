"""Fetching submitted updates as soon as their `UpdateSubmitted` arrives, before the judge asks.

The event tailer and the round driver are separate tasks: without this, the org fetched an
update only when the driver judged it, one after another. The fetch is the same
digest-checked, size-capped `BlobFetcher.get` into the content-addressed blob cache, so
fetching early (or twice) changes nothing but the time; the judge awaits the fetch already
under way and gets its result or its error, exactly as if it had fetched itself.
"""

from __future__ import annotations

import asyncio

from daemons.ipfs.blobs import BlobCache, BlobFetcher, Storage
from daemons.runtime.config import IpfsConfig

DEFAULT_LIMIT = 4  # concurrent fetches; each is one `cat` against the org's IPFS node


class Prefetcher:
    """At most `limit` concurrent update fetches into the cache, shared with the judge.

    A finished fetch is forgotten (the blob is in the cache); a failed one is kept until the
    judge asks, so a missing blob costs one IPFS timeout, not two.
    """

    def __init__(
        self, storage: Storage, cache: BlobCache, ipfs: IpfsConfig, limit: int = DEFAULT_LIMIT
    ) -> None:
        if limit < 1:
            raise ValueError(f"Prefetcher limit must be >= 1, got {limit}")
        self.storage, self.cache, self.ipfs = storage, cache, ipfs
        self.blobs = BlobFetcher(storage, cache, ipfs.timeout_s)
        self._slots = asyncio.Semaphore(limit)
        self._inflight: dict[bytes, asyncio.Task[bytes]] = {}

    def want(self, cid: str, digest: bytes, source: str | None = None) -> None:
        """Start fetching `cid` in the background unless it is cached or already coming.

        `source`: the client that submitted it (its IPFS node is asked first, `Storage.get`).
        """
        if digest in self._inflight or self.cache.has(digest):
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # called outside the daemon's loop: the judge fetches itself
            return
        task = loop.create_task(self._fetch(cid, digest, source))
        self._inflight[digest] = task
        task.add_done_callback(lambda t: self._done(digest, t))

    async def get(self, cid: str, digest: bytes, source: str | None = None) -> bytes:
        """The blob: the background fetch's result (or error) if there is one, else fetch now."""
        task = self._inflight.pop(digest, None)
        if task is not None:
            return await asyncio.shield(task)
        return await self._fetch(cid, digest, source)

    async def close(self) -> None:
        """Cancel the fetches still under way (daemon shutdown)."""
        tasks = list(self._inflight.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _fetch(self, cid: str, digest: bytes, source: str | None) -> bytes:
        async with self._slots:
            return await self.blobs.get(cid, digest, self.ipfs.max_blob_bytes, source)

    def _done(self, digest: bytes, task: asyncio.Task[bytes]) -> None:
        """A fetched blob is in the cache now; a failure waits for the judge (`get`) to see it."""
        finished = task.cancelled() or task.exception() is None  # exception(): retrieved
        if finished and self._inflight.get(digest) is task:
            del self._inflight[digest]
