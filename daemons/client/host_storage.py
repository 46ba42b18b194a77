"""The host's one IPFS client, shared by all its clients.

In a round every client of a host fetches the same round config and base model: each blob
is fetched once (concurrent asks wait for the same fetch, recent blobs are kept in memory,
checked by the same digest the inner `get` checks), and puts go a few at a time, so 50
clients do not hit one IPFS node with 100 concurrent requests.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from typing import Any

GetKey = tuple[str, bytes, int]
KEEP_BLOBS = 4  # this round's and the last round's config and base model
MAX_PUTS = 8


class SharedStorage:
    """A `Storage` over `inner` with single-flight, memoised gets and bounded concurrent puts."""

    def __init__(self, inner: Any, keep: int = KEEP_BLOBS, max_puts: int = MAX_PUTS) -> None:
        self.inner, self.keep = inner, keep
        self.fetches = 0  # gets that reached `inner` (tests)
        self._recent: OrderedDict[GetKey, bytes] = OrderedDict()
        self._inflight: dict[GetKey, asyncio.Task[bytes]] = {}
        self._puts = asyncio.Semaphore(max_puts)

    async def get(
        self, cid: str, digest: bytes, max_bytes: int, timeout_s: float, source: str | None = None
    ) -> bytes:
        key = (cid, digest, max_bytes)
        if key in self._recent:
            self._recent.move_to_end(key)
            return self._recent[key]
        task = self._inflight.get(key)
        if task is None:
            self.fetches += 1
            task = asyncio.ensure_future(
                self.inner.get(cid, digest, max_bytes, timeout_s, source=source)
            )
            self._inflight[key] = task
            task.add_done_callback(lambda _t: self._inflight.pop(key, None))
        data: bytes = await asyncio.shield(task)  # one asker cancelled must not cancel the rest
        self._recent[key] = data
        while len(self._recent) > self.keep:
            self._recent.popitem(last=False)
        return data

    async def put(self, data: bytes) -> Any:
        async with self._puts:
            return await self.inner.put(data)

    def __getattr__(self, name: str) -> Any:  # pin, unpin, node_id, ...: as the inner client
        return getattr(self.inner, name)
