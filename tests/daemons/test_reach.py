"""Chain/IPFS reachability (issue #10 §4): /healthz fields, READY gate, bounded outage."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from daemons.ipfs.bundled import BundledIpfsNode
from daemons.ipfs.client import IpfsStorage
from daemons.ipfs.reach import IpfsUnreachable, Reachability

pytestmark = pytest.mark.timeout(120)


class Switch:
    """A probe that answers while `up`."""

    def __init__(self, up: bool = True) -> None:
        self.up = up

    async def __call__(self) -> None:
        if not self.up:
            raise OSError("connection refused")


async def test_health_and_ready_follow_the_probes() -> None:
    chain, ipfs, now = Switch(), Switch(up=False), [0.0]
    reach = Reachability(chain, ipfs, "http://x:1", 1.0, 100.0, clock=lambda: now[0])
    await reach.probe_once()
    assert reach.health() == {"status": "starting", "chain": "ok", "ipfs": "unreachable"}
    assert not reach.ipfs_ready.is_set()  # no READY before IPFS answered once
    ipfs.up = True
    await reach.probe_once()
    assert reach.health() == {"status": "ok", "chain": "ok", "ipfs": "ok"}
    assert reach.ipfs_ready.is_set()
    chain.up = False
    await reach.probe_once()
    assert reach.health()["status"] == "degraded" and reach.health()["chain"] == "unreachable"


async def test_a_long_ipfs_outage_stops_the_probe_task() -> None:
    reach = Reachability(Switch(), Switch(up=False), "http://x:1", 0.05, 0.3)
    with pytest.raises(IpfsUnreachable, match="unreachable_exit_s"):
        await asyncio.wait_for(reach.run(), 10)


async def test_real_ipfs_node_stopped_under_the_probe(tmp_path: Path) -> None:
    node = BundledIpfsNode(tmp_path / "ipfs", log_path=tmp_path / "ipfs.log")
    node.start()
    try:
        async with IpfsStorage(node.api_url) as storage:
            reach = Reachability(Switch(), storage.node_id, node.api_url, 0.2, 2.0)
            await reach.probe_once()
            assert reach.health()["ipfs"] == "ok"
            task = asyncio.create_task(reach.run())
            node.stop()
            with pytest.raises(IpfsUnreachable):
                await asyncio.wait_for(task, 30)
            assert reach.health() == {"status": "degraded", "chain": "ok", "ipfs": "unreachable"}
    finally:
        node.stop()
