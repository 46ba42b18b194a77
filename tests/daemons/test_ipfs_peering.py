"""`fedchain ipfs --peer MULTIADDR` keeps the node connected to other hosts' nodes (Kubo's
Peering.Peers), and `--swarm-host` lets the node listen beyond loopback. The multi-host test
(tests/integration/test_multihost.py) runs both across network namespaces."""

from __future__ import annotations

import os
import time
from collections.abc import Callable

import pytest

from daemons.anvil import free_port
from daemons.ipfs_node import BundledIpfsNode, IpfsNodeError, run_node_command
from daemons.storage import IpfsStorage
from tests.fixtures.ipfs import rpc

pytestmark = pytest.mark.timeout(120)


def peers_of(node: BundledIpfsNode) -> list[str]:
    reply = rpc(node, "swarm/peers")
    assert isinstance(reply, dict)
    return [p["Peer"] for p in reply["Peers"]]


def wait_for(condition: Callable[[], bool], timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.2)
    return False


async def test_a_node_started_with_peer_connects_and_fetches_by_itself(tmp_path) -> None:
    a = BundledIpfsNode(tmp_path / "a")
    with a, BundledIpfsNode(tmp_path / "b", peers=[a.start().swarm_multiaddr]) as b:
        assert wait_for(lambda: peers_of(b) == [a.peer_id], timeout_s=15)
        data = os.urandom(200_000)
        async with IpfsStorage(a.api_url) as sa, IpfsStorage(b.api_url) as sb:
            stored = await sa.put(data)
            assert await sb.get(stored.cid, stored.digest, len(data), timeout_s=15) == data


def test_a_peer_that_comes_up_later_or_comes_back_is_redialed(tmp_path) -> None:
    """The peer is down at start, then up, then restarted: the node reconnects each time."""
    port = free_port()
    with BundledIpfsNode(tmp_path / "a", swarm_port=port) as a:
        target = a.swarm_multiaddr
        peer_id = a.peer_id
    # `a` is stopped: `b` starts anyway and keeps trying
    with BundledIpfsNode(tmp_path / "b", peers=[target]) as b:
        time.sleep(1.5)
        assert peers_of(b) == []
        with BundledIpfsNode(tmp_path / "a", swarm_port=port):  # same repo: same peer id
            assert wait_for(lambda: peers_of(b) == [peer_id], timeout_s=20)
        assert wait_for(lambda: peers_of(b) == [], timeout_s=10)
        with BundledIpfsNode(tmp_path / "a", swarm_port=port):
            assert wait_for(lambda: peers_of(b) == [peer_id], timeout_s=30)


def test_swarm_host_any_listens_on_every_interface(tmp_path) -> None:
    with BundledIpfsNode(tmp_path / "a", swarm_host="0.0.0.0") as a:
        loopback = [m for m in a.swarm_multiaddrs if m.startswith("/ip4/127.0.0.1/")]
        assert loopback, a.swarm_multiaddrs  # 0.0.0.0 expands to each interface's address
        assert a.api_url.startswith("http://127.0.0.1:")  # the RPC API never leaves loopback
        with BundledIpfsNode(tmp_path / "b", peers=[loopback[0]]) as b:
            assert wait_for(lambda: peers_of(b) == [a.peer_id], timeout_s=15)


def test_a_swarm_host_that_is_not_an_ip_is_refused(tmp_path) -> None:
    with pytest.raises(IpfsNodeError, match="--swarm-host localhost: use an IP address"):
        BundledIpfsNode(tmp_path / "a", swarm_host="localhost").start()


def test_fedchain_ipfs_rejects_a_peer_without_its_id(capsys) -> None:
    assert run_node_command(["--peer", "/ip4/127.0.0.1/tcp/4001"]) == 2
    assert "needs the peer id" in capsys.readouterr().err


def test_a_peer_that_is_not_a_multiaddr_is_refused(tmp_path) -> None:
    with pytest.raises(IpfsNodeError, match="--peer nonsense/p2p/x: not a multiaddr"):
        BundledIpfsNode(tmp_path / "a", peers=["nonsense/p2p/x"]).start()
