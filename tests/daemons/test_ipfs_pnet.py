"""A libp2p private network on real bundled nodes: the swarm key decides who can connect.

Members share one Kubo-format swarm.key; an outsider node without it (or with another key)
cannot connect to a member, cannot be dialed by one, and cannot fetch a CID it knows. Keyed
nodes move many large blobs over several connections at once without their memory growing
(xsalsa20 1.2.0, pnet's cipher before package.json's override, crashed on that).
"""

from __future__ import annotations

import asyncio
import os
import shutil
import urllib.error
from pathlib import Path

import pytest

from daemons.ipfs.bundled import BundledIpfsNode, IpfsNodeError, run_node_command
from daemons.ipfs.client import IpfsStorage, IpfsTimeout
from daemons.privacy.swarm_key import write_swarm_key
from tests.fixtures.ipfs import rpc

pytestmark = pytest.mark.timeout(180)
BLOB = b"an update the consortium keeps to itself " * 200
BIG_BLOB_BYTES = 5 * 1024 * 1024  # above yamux's 4 MB window and the EWC demo's 1.6 MB


def _connect_fails(node: BundledIpfsNode, peer: BundledIpfsNode) -> str:
    """`swarm/connect` from `node` to `peer` must fail; returns the node's error body."""
    with pytest.raises(urllib.error.HTTPError) as info:
        rpc(node, "swarm/connect", timeout_s=30, arg=peer.swarm_multiaddr)
    return info.value.read().decode(errors="replace")


def _peers(node: BundledIpfsNode) -> set[str]:
    reply = rpc(node, "swarm/peers")
    return {p["Peer"] for p in reply.get("Peers") or []}  # type: ignore[attr-defined]


async def test_only_nodes_with_the_swarm_key_connect_and_fetch(tmp_path: Path) -> None:
    key, other = write_swarm_key(tmp_path / "swarm.key"), write_swarm_key(tmp_path / "other.key")
    with (
        BundledIpfsNode(tmp_path / "hub", swarm_key=key) as hub,
        BundledIpfsNode(tmp_path / "member", swarm_key=key) as member,
        BundledIpfsNode(tmp_path / "outsider") as outsider,
        BundledIpfsNode(tmp_path / "wrong", swarm_key=other) as wrong,
    ):
        assert hub.private_network and member.private_network and not outsider.private_network
        async with IpfsStorage(hub.api_url) as storage:
            stored = await storage.put(BLOB)
        rpc(member, "swarm/connect", arg=hub.swarm_multiaddr)
        async with IpfsStorage(member.api_url) as storage:
            assert await storage.get(stored.cid, stored.digest, 1 << 20, 30) == BLOB
        for stranger in (outsider, wrong):
            assert "failure" in _connect_fails(stranger, hub)
            assert "failure" in _connect_fails(hub, stranger)  # nor can a member dial out to it
            async with IpfsStorage(stranger.api_url) as storage:
                with pytest.raises(IpfsTimeout):
                    await storage.get(stored.cid, stored.digest, 1 << 20, 3)
            assert stranger.peer_id not in _peers(hub)
        assert _peers(hub) == {member.peer_id}


def test_repo_swarm_key_is_used_as_kubo_does(tmp_path: Path) -> None:
    """A `swarm.key` in the repo makes the node private without --swarm-key (Kubo's rule)."""
    key = write_swarm_key(tmp_path / "swarm.key")
    (tmp_path / "member").mkdir()
    shutil.copy(key, tmp_path / "member" / "swarm.key")
    with (
        BundledIpfsNode(tmp_path / "hub", swarm_key=key) as hub,
        BundledIpfsNode(tmp_path / "member") as member,
    ):
        assert member.private_network
        rpc(member, "swarm/connect", arg=hub.swarm_multiaddr)
        assert _peers(hub) == {member.peer_id}


def test_force_pnet_refuses_to_start_without_a_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LIBP2P_FORCE_PNET", "1")
    with pytest.raises(IpfsNodeError, match="LIBP2P_FORCE_PNET=1 but no swarm key"):
        BundledIpfsNode(tmp_path / "node", start_timeout_s=30).start()


def test_a_malformed_key_stops_the_node_at_start(tmp_path: Path) -> None:
    bad = tmp_path / "bad.key"
    bad.write_text("/key/swarm/psk/1.0.0/\n/base16/\nnot-hex\n")
    with pytest.raises(IpfsNodeError, match="exited during start"):
        BundledIpfsNode(tmp_path / "node", swarm_key=bad, start_timeout_s=30).start()
    assert run_node_command(["--repo", str(tmp_path / "n2"), "--swarm-key", str(bad)]) == 2
    missing = ["--repo", str(tmp_path / "n3"), "--swarm-key", str(tmp_path / "none")]
    assert run_node_command(missing) == 2


def _rss_mib(node: BundledIpfsNode) -> float:
    """The node process's resident memory (Linux /proc), MiB."""
    status = Path(f"/proc/{node.pid}/status").read_text()
    line = next(row for row in status.splitlines() if row.startswith("VmRSS:"))
    return int(line.split()[1]) / 1024


async def _swap_blobs(hub: BundledIpfsNode, members: list[BundledIpfsNode], per_node: int) -> None:
    """Every member fetches `per_node` fresh blobs from the hub and the hub fetches as many from
    every member, all at once: both directions of every keyed connection busy together."""

    async def put(node: BundledIpfsNode) -> list:
        async with IpfsStorage(node.api_url) as storage:
            return [await storage.put(os.urandom(BIG_BLOB_BYTES)) for _ in range(per_node)]

    async def fetch(node: BundledIpfsNode, blobs: list) -> None:
        async with IpfsStorage(node.api_url) as storage:
            got = await asyncio.gather(
                *(storage.get(b.cid, b.digest, BIG_BLOB_BYTES, 120) for b in blobs)
            )
        assert [len(g) for g in got] == [BIG_BLOB_BYTES] * len(blobs)  # digests checked by get

    from_hub = await put(hub)
    from_members = [await put(m) for m in members]
    await asyncio.gather(
        *(fetch(m, from_hub) for m in members),
        *(fetch(hub, blobs) for blobs in from_members),
    )


async def _hub_rss_growth(tmp_path: Path, key: Path | None, rounds: int) -> float:
    """MiB the hub's RSS grows over `rounds` swaps after a warm-up swap, 3 members dialed in."""
    with (
        BundledIpfsNode(tmp_path / "hub", swarm_key=key) as hub,
        BundledIpfsNode(tmp_path / "m1", swarm_key=key) as m1,
        BundledIpfsNode(tmp_path / "m2", swarm_key=key) as m2,
        BundledIpfsNode(tmp_path / "m3", swarm_key=key) as m3,
    ):
        members = [m1, m2, m3]
        assert all(node.private_network == (key is not None) for node in [hub, *members])
        for member in members:
            rpc(member, "swarm/connect", arg=hub.swarm_multiaddr)
        await _swap_blobs(hub, members, per_node=1)  # warm-up: 30 MB through the hub
        rss_after_warm_up = _rss_mib(hub)
        for _ in range(rounds):
            await _swap_blobs(hub, members, per_node=1)
        grew = _rss_mib(hub) - rss_after_warm_up
        assert hub.running and all(m.running for m in members)
        assert "RangeError" not in hub.log_tail(200)
        assert _peers(hub) == {m.peer_id for m in members}
        return grew


@pytest.mark.timeout(480)  # ~2 min on an idle machine; several times that on a loaded one
async def test_keyed_nodes_swap_many_big_blobs_with_bounded_memory(tmp_path: Path) -> None:
    """Four keyed nodes swap 5 MB blobs both ways at once (xsalsa20 1.2.0 crashed here with
    `RangeError: WebAssembly.Memory.grow()`); the hub's RSS grows no more than the same
    nodes' without a key (Helia's own growth: tens of MiB over 90 MB of blobs)."""
    key = write_swarm_key(tmp_path / "swarm.key")
    keyed = await _hub_rss_growth(tmp_path / "keyed", key, rounds=3)
    plain = await _hub_rss_growth(tmp_path / "plain", None, rounds=3)
    print(f"hub RSS growth over 90 MB of blobs: keyed {keyed:.0f} MiB, no key {plain:.0f} MiB")
    # a leak of the bytes moved (as xsalsa20 1.2.0's WASM memory was) would add ~90 MiB
    assert keyed < plain + 40, f"keyed hub grew {keyed:.0f} MiB, unkeyed {plain:.0f} MiB"
