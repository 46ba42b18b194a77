"""`fedchain ipfs --peer MULTIADDR` keeps the node connected to other hosts' nodes (Kubo's
Peering.Peers), and `--swarm-host` lets the node listen beyond loopback. The multi-host test
(tests/integration/test_multihost.py) runs both across network namespaces."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from daemons.ipfs.bundled import BundledIpfsNode, IpfsNodeError, run_node_command
from daemons.ipfs.client import IpfsStorage
from daemons.testnet.nodes.anvil import free_port
from tests.fixtures.ipfs import peers_of, wait_for

pytestmark = pytest.mark.timeout(120)


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


def test_fedchain_ipfs_tells_systemd_it_is_ready_once_the_api_answers(tmp_path) -> None:
    """Type=notify: the org and client units (After= fedchain-ipfs) start only after this."""
    sock_path = str(tmp_path / "notify.sock")
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(sock_path)
        sock.settimeout(60)
        env = {**os.environ, "NOTIFY_SOCKET": sock_path}
        args = ["--repo", str(tmp_path / "repo"), "--api-port", "0", "--swarm-port", "0"]
        proc = subprocess.Popen([sys.executable, "-m", "daemons.cli", "ipfs", *args], env=env)
        try:
            assert sock.recv(100) == b"READY=1"
            info = json.loads((tmp_path / "repo" / "api.json").read_text())
            with urllib.request.urlopen(
                urllib.request.Request(f"{info['api']}/api/v0/id", method="POST"), timeout=10
            ) as resp:
                assert json.loads(resp.read())["ID"] == info["peer_id"]
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(30)


def test_a_relative_repo_is_relative_to_the_callers_directory(tmp_path, monkeypatch) -> None:
    """`fedchain ipfs --repo fed/org/ipfs` (docs/deployment.md) from the federation folder."""
    monkeypatch.chdir(tmp_path)
    with BundledIpfsNode(Path("fed") / "org" / "ipfs") as node:
        assert (tmp_path / "fed" / "org" / "ipfs" / "api.json").exists()
        assert node.peer_id
