"""A libp2p private network on real bundled nodes: the swarm key decides who can connect.

Members share one Kubo-format swarm.key; an outsider node without it (or with another key)
cannot connect to a member, cannot be dialed by one, and cannot fetch a CID it knows.
"""

from __future__ import annotations

import shutil
import urllib.error
from pathlib import Path

import pytest

from daemons.ipfs_node import BundledIpfsNode, IpfsNodeError, run_node_command
from daemons.privacy.swarm_key import write_swarm_key
from daemons.storage import IpfsStorage, IpfsTimeout
from tests.fixtures.ipfs import rpc

pytestmark = pytest.mark.timeout(180)
BLOB = b"an update the consortium keeps to itself " * 200


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
