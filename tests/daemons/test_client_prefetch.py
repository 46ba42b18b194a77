"""The client fetches a closed round's model on `RoundClosed` (daemons/client/prefetch.py)."""

import asyncio
import logging
from pathlib import Path

import pytest

from contracts.events import LogMeta, RoundClosed
from daemons.client.prefetch import BasePrefetch
from tests.daemons.fakes import FakeStorage
from tests.daemons.test_client_rounds import ME, make_client, open_round


def closed(event_base_cid: str, digest: bytes, round_id: int = 0) -> RoundClosed:
    return RoundClosed(round_id, event_base_cid, digest, "bman", 1, LogMeta(1, "0x00", "0x02", 0))


async def test_the_next_base_is_fetched_once_on_round_closed(tmp_path: Path) -> None:
    client, chain, storage, _ = make_client(tmp_path)
    event = await open_round(chain, storage, deadline=2000)
    gets_before_close = len(storage.sources)
    # the round before closed with the model this round opens on: fetched before RoundOpened
    client.on_round_closed(closed(event.base_cid, event.base_digest))
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    assert len(storage.sources) == gets_before_close + 1
    assert client.cache.has(event.base_digest)
    await client.on_round_opened(event)
    assert (1, ME) in chain.submitted
    # the round handler took the prefetched bytes: the base was not fetched again
    assert len(storage.sources) == gets_before_close + 2  # + the round config only


async def test_a_prefetch_for_another_model_changes_nothing(tmp_path: Path) -> None:
    client, chain, storage, _ = make_client(tmp_path)
    other = await storage.put(b"another model")
    client.on_round_closed(closed(other.cid, other.digest))
    event = await open_round(chain, storage, deadline=2000)
    await client.on_round_opened(event)
    assert (1, ME) in chain.submitted
    assert client.cache.has(event.base_digest) and client.cache.has(other.digest)


class FlakyStorage(FakeStorage):
    """Fails the first `fail` gets, as a node that did not have the blob yet."""

    def __init__(self, fail: int) -> None:
        super().__init__()
        self.fail = fail

    async def get(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        if self.fail:
            self.fail -= 1
            raise OSError("node not ready")
        return await super().get(*args, **kwargs)


async def test_a_failed_prefetch_is_logged_and_the_round_fetches_the_base(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    client, chain, _, _ = make_client(tmp_path)
    storage = FlakyStorage(fail=1)
    client.storage = storage
    event = await open_round(chain, storage, deadline=2000)
    client.on_round_closed(closed(event.base_cid, event.base_digest))
    with caplog.at_level(logging.INFO, logger="fedchain.client"):
        await client.on_round_opened(event)
    assert (1, ME) in chain.submitted
    assert "prefetch of a closed round's model failed" in caplog.text


async def test_a_newer_round_closed_cancels_the_older_prefetch() -> None:
    prefetch = BasePrefetch()
    started = asyncio.Event()

    async def stuck() -> bytes:
        started.set()
        await asyncio.sleep(3600)
        return b"old"

    async def quick() -> bytes:
        return b"new"

    prefetch.start(1, b"\x01" * 32, stuck)
    await started.wait()
    old = prefetch._task
    prefetch.start(2, b"\x02" * 32, quick)
    await asyncio.sleep(0)
    assert old is not None and old.cancelled()
    assert await prefetch.take(b"\x01" * 32) is None  # not the one in flight
    assert await prefetch.take(b"\x02" * 32) == b"new"
    assert await prefetch.take(b"\x02" * 32) is None  # taken once
