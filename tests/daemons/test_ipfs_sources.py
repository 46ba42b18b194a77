"""`cat ... source=S` on real bundled nodes: the peer that delivered S's last blob is asked
first (a bitswap session, not a want to every peer), and a hint that is wrong, stale or
stuck still gets the blob from whoever has it (daemons/ipfs/node/sources.mjs)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
import urllib.error
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from daemons.ipfs.bundled import BundledIpfsNode
from daemons.ipfs.client import IpfsRequestError, IpfsStorage
from tests.fixtures.ipfs import peers_of, rpc, wait_for

pytestmark = pytest.mark.timeout(120)
HEDGE_S = 1.5  # sources.mjs HEDGE_MS
BLOB = 1_600_000  # a root and two 1 MiB leaves, as an EWC update


@dataclass(frozen=True)
class Star:
    """A hub (the org's node) with two spokes (clients' nodes) that dialed it."""

    hub: BundledIpfsNode
    a: BundledIpfsNode
    b: BundledIpfsNode

    def hub_log(self) -> str:
        return self.hub.log_path.read_text()


@pytest.fixture
def star(tmp_path) -> Iterator[Star]:
    with contextlib.ExitStack() as stack:
        hub = stack.enter_context(BundledIpfsNode(tmp_path / "hub"))
        a = stack.enter_context(BundledIpfsNode(tmp_path / "a"))
        b = stack.enter_context(BundledIpfsNode(tmp_path / "b"))
        for spoke in (a, b):
            rpc(spoke, "swarm/connect", arg=hub.swarm_multiaddr)
        assert wait_for(lambda: sorted(peers_of(hub)) == sorted([a.peer_id, b.peer_id]), 15)
        yield Star(hub, a, b)


def storage(node: BundledIpfsNode) -> IpfsStorage:
    return IpfsStorage(node.api_url, chunk_size=1 << 20)


async def test_the_publishing_peer_is_asked_first_once_known(star: Star) -> None:
    async with storage(star.hub) as hub, storage(star.a) as a:
        first, second = os.urandom(BLOB), os.urandom(BLOB)
        s1 = await a.put(first)
        assert await hub.get(s1.cid, s1.digest, BLOB, 20, source="client-a") == first
        assert "asking" not in star.hub_log()  # nothing known yet: every peer was asked
        s2 = await a.put(second)
        assert await hub.get(s2.cid, s2.digest, BLOB, 20, source="client-a") == second
        log = star.hub_log()
        assert f"cat {s2.cid}: asking {star.a.peer_id} first (source client-a)" in log
        assert "did not deliver" not in log
        # a fetch with no source, or another source, is not steered
        s3 = await a.put(os.urandom(BLOB))
        assert await hub.get(s3.cid, s3.digest, BLOB, 20) is not None
        assert await hub.get(s3.cid, s3.digest, BLOB, 20, source="client-b") is not None
        assert f"cat {s3.cid}: asking" not in star.hub_log()


async def test_a_wrong_hint_falls_back_to_every_peer_and_is_relearned(star: Star) -> None:
    async with storage(star.hub) as hub, storage(star.a) as a, storage(star.b) as b:
        s1 = await a.put(os.urandom(BLOB))
        await hub.get(s1.cid, s1.digest, BLOB, 20, source="moved")  # learns A
        data = os.urandom(BLOB)
        s2 = await b.put(data)  # the same source now publishes from B (a moved client)
        started = time.monotonic()
        assert await hub.get(s2.cid, s2.digest, BLOB, 20, source="moved") == data
        took = time.monotonic() - started
        log = star.hub_log()
        assert f"cat {s2.cid}: asking {star.a.peer_id} first" in log
        # A answers DONT_HAVE at once: the usual want starts then, not after the hedge
        assert f"{star.a.peer_id} did not deliver {s2.cid} (it does not have it" in log
        assert took < HEDGE_S + 3, took
        s3 = await b.put(os.urandom(BLOB))
        await hub.get(s3.cid, s3.digest, BLOB, 20, source="moved")
        assert f"cat {s3.cid}: asking {star.b.peer_id} first" in star.hub_log()


async def test_a_stuck_hinted_peer_costs_the_hedge_not_the_fetch(star: Star) -> None:
    async with storage(star.hub) as hub, storage(star.a) as a, storage(star.b) as b:
        s1 = await a.put(os.urandom(BLOB))
        await hub.get(s1.cid, s1.digest, BLOB, 20, source="stuck")  # learns A
        data = os.urandom(BLOB)
        both = [await a.put(data), await b.put(data)]  # the same CID on A and B
        assert both[0].cid == both[1].cid
        os.kill(star.a.pid, signal.SIGSTOP)  # connected, but never answers
        try:
            started = time.monotonic()
            got = await hub.get(both[0].cid, both[0].digest, BLOB, 20, source="stuck")
            took = time.monotonic() - started
        finally:
            os.kill(star.a.pid, signal.SIGCONT)
        assert got == data
        assert HEDGE_S <= took < HEDGE_S + 5, took
        assert f"{star.a.peer_id} did not deliver {both[0].cid} (no answer within" in star.hub_log()


async def test_a_hint_for_a_gone_peer_is_skipped(star: Star) -> None:
    async with storage(star.hub) as hub, storage(star.a) as a, storage(star.b) as b:
        s1 = await a.put(os.urandom(BLOB))
        await hub.get(s1.cid, s1.digest, BLOB, 20, source="gone")  # learns A
    star.a.stop()
    assert wait_for(lambda: peers_of(star.hub) == [star.b.peer_id], 15)
    async with storage(star.hub) as hub, storage(star.b) as b:
        data = os.urandom(BLOB)
        s2 = await b.put(data)
        assert await hub.get(s2.cid, s2.digest, BLOB, 20, source="gone") == data
        assert f"cat {s2.cid}: asking" not in star.hub_log()  # not connected: not asked


async def test_concurrent_hinted_fetches(star: Star) -> None:
    """Four updates of two sources at once, as the org's prefetcher fetches them."""
    async with storage(star.hub) as hub, storage(star.a) as a, storage(star.b) as b:
        for node, name in ((a, "a"), (b, "b")):
            warm = await node.put(os.urandom(1000))
            await hub.get(warm.cid, warm.digest, 1000, 20, source=name)
        blobs = [os.urandom(BLOB) for _ in range(4)]
        stored = [await (a if i % 2 == 0 else b).put(x) for i, x in enumerate(blobs)]
        got = await asyncio.gather(
            *(
                hub.get(s.cid, s.digest, BLOB, 20, source="a" if i % 2 == 0 else "b")
                for i, s in enumerate(stored)
            )
        )
        assert got == blobs
        assert "did not deliver" not in star.hub_log()


def test_an_overlong_source_is_refused(star: Star) -> None:
    with pytest.raises(urllib.error.HTTPError) as err:
        rpc(
            star.hub,
            "cat",
            arg="bafkreifzjut3te2nhyekklss27nh3k72ysco7y32koao5eei66wof36n5e",
            source="x" * 201,
        )
    assert err.value.code == 400
    assert "source must be at most 200 characters" in err.value.read().decode()


async def test_the_adapter_reports_an_overlong_source(star: Star) -> None:
    async with storage(star.hub) as hub:
        stored = await hub.put(b"hello")
        with pytest.raises(IpfsRequestError, match="source must be at most 200"):
            await hub.get(stored.cid, stored.digest, 10, 5, source="x" * 201)
