"""Run fedchain's bundled IPFS node (Helia behind a Kubo-RPC front) as a child process.

Kubo cannot be installed on every machine, so the project ships `daemons/ipfs/node/node.mjs`
(npm `node@22` + Helia). `BundledIpfsNode` starts it on loopback ports, waits until it is
serving, and stops it; the node also exits by itself when its parent dies (stdin closes).
`fedchain ipfs` runs one in the foreground.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Sequence
from functools import cache
from pathlib import Path
from typing import Any, Self

from daemons.errors import FedchainError
from daemons.ipfs.node_bundle import REPO_ROOT, node_script
from daemons.runtime.childproc import ChildProcess
from daemons.runtime.service import sd_notify

# V8 starts a full (mark-compact) GC whenever the old generation's headroom is smaller than
# the young generation: with Helia's ~40 MB of live heap and MB-sized blocks going through,
# that was ~2 full GCs per federation round, ~40% of a node's CPU. A 128 MB initial old
# space makes them rare (docs/ipfs.md, "GC").
V8_FLAGS = ("--initial-old-space-size=128",)
READY_FILE = "api.json"
MIN_NODE_MAJOR = 22


class IpfsNodeError(FedchainError):
    """The bundled IPFS node could not be found, started, or did not become ready."""


def find_node() -> str:
    """Path of a Node >= 22 binary: $FEDCHAIN_NODE, npm `node@22` in node_modules, or PATH."""
    override = os.environ.get("FEDCHAIN_NODE")
    candidates = [override] if override else []
    candidates += [str(REPO_ROOT / "node_modules" / ".bin" / "node"), shutil.which("node") or ""]
    for candidate in candidates:
        if candidate and os.access(candidate, os.X_OK) and _node_major(candidate) >= MIN_NODE_MAJOR:
            return candidate
    raise IpfsNodeError(
        f"no Node >= {MIN_NODE_MAJOR} found (Helia needs it): run `make setup` (npm ci installs "
        "node@22 into node_modules) or set FEDCHAIN_NODE to a node 22 binary"
    )


@cache
def _node_major(path: str) -> int:
    try:
        out = subprocess.run([path, "--version"], capture_output=True, text=True, timeout=10)
        return int(out.stdout.strip().lstrip("v").split(".")[0])
    except (OSError, ValueError, subprocess.TimeoutExpired):
        return 0


class BundledIpfsNode(ChildProcess):
    """The bundled IPFS node as a context manager: start on enter, always stop on exit."""

    def __init__(
        self,
        repo_dir: str | Path,
        api_port: int = 0,
        swarm_port: int = 0,
        log_path: str | Path | None = None,
        start_timeout_s: float = 60.0,
        v8_flags: tuple[str, ...] = V8_FLAGS,
        swarm_host: str = "127.0.0.1",
        peers: Sequence[str] = (),
        swarm_key: str | Path | None = None,
    ) -> None:
        super().__init__()
        # absolute: the node runs with the repo root as its working directory
        self.repo_dir = Path(repo_dir).absolute()
        self.swarm_host = swarm_host  # libp2p listen IP; 0.0.0.0 or a LAN IP for other hosts
        self.peers = tuple(peers)  # multiaddrs with /p2p/ID kept connected (Kubo Peering.Peers)
        # a libp2p private network (docs/security.md): None = REPO/swarm.key if there, as Kubo
        self.swarm_key = Path(swarm_key).absolute() if swarm_key else None
        self.v8_flags = v8_flags
        self.api_port = api_port
        self.swarm_port = swarm_port
        self.log_path = Path(log_path).absolute() if log_path else self.repo_dir / "node.log"
        self.start_timeout_s = start_timeout_s
        self._info: dict[str, Any] = {}

    @property
    def api_url(self) -> str:
        """The Kubo RPC base URL, e.g. http://127.0.0.1:5001 (what `IpfsStorage` takes)."""
        return str(self._ready_info()["api"])

    @property
    def peer_id(self) -> str:
        return str(self._ready_info()["peer_id"])

    @property
    def swarm_multiaddr(self) -> str:
        """The node's libp2p address with its peer id, for `swarm/connect` on another node."""
        return str(self._ready_info()["swarm"][0])

    @property
    def swarm_multiaddrs(self) -> list[str]:
        """Every address the node listens on (one per interface when listening on 0.0.0.0)."""
        return [str(a) for a in self._ready_info()["swarm"]]

    @property
    def private_network(self) -> bool:
        """Whether the node runs with a swarm key (talks only to nodes with the same key)."""
        return bool(self._ready_info().get("private_network", False))

    def _ready_info(self) -> dict[str, Any]:
        if not self._info:
            raise IpfsNodeError("the bundled IPFS node is not started: call start() or use `with`")
        return self._info

    def command(self) -> list[str]:
        """The node command line for the current settings."""
        return [
            find_node(),
            *self.v8_flags,
            str(node_script()),  # node.mjs bundled into one file: starts ~3x faster
            "--repo",
            str(self.repo_dir),
            "--api-port",
            str(self.api_port),
            "--swarm-port",
            str(self.swarm_port),
            *(["--swarm-host", self.swarm_host] if self.swarm_host != "127.0.0.1" else []),
            *[arg for peer in self.peers for arg in ("--peer", peer)],
            "--ready-file",
            str(self.repo_dir / READY_FILE),
            "--parent-pid",
            str(os.getpid()),
            "--exit-on-stdin-close",
            *(["--swarm-key", str(self.swarm_key)] if self.swarm_key else []),
        ]

    def start(self) -> Self:
        """Spawn the node and wait until it has written its API address and peer id."""
        if self.running:
            return self
        self.repo_dir.mkdir(parents=True, exist_ok=True)
        # stdin stays an open pipe: when this process dies, it closes and the node exits.
        popen = {"stdin": subprocess.PIPE, "cwd": REPO_ROOT, "start_new_session": True}
        self.spawn(self.command(), self.log_path, **popen)
        try:
            self._info = self._wait_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def _wait_ready(self) -> dict[str, Any]:
        info = self.wait_until(self._ready_file, self.start_timeout_s)
        if info is not None:
            return info
        if not self.running:
            raise IpfsNodeError(
                f"the bundled IPFS node exited during start; {self.log_path} ends:\n"
                + self.log_tail()
            )
        raise IpfsNodeError(
            f"the bundled IPFS node was not ready within {self.start_timeout_s:.0f}s; "
            f"{self.log_path} ends:\n{self.log_tail()}"
        )

    def _ready_file(self) -> dict[str, Any] | None:
        """What this node wrote to its ready file (None: not yet)."""
        info = _read_ready(self.repo_dir / READY_FILE)
        # A file left by an earlier node (or another node on this repo) has another pid.
        return info if info is not None and info.get("pid") == self.pid else None

    def stop(self, timeout_s: float = 10.0) -> None:
        """SIGTERM (the node flushes its datastore), then SIGKILL if it lingers."""
        self._info = {}
        super().stop(timeout_s)

    async def __aenter__(self) -> Self:
        return await asyncio.to_thread(self.start)

    async def __aexit__(self, *exc_info: object) -> None:
        await asyncio.to_thread(self.stop)


def _read_ready(path: Path) -> dict[str, Any] | None:
    try:
        info: dict[str, Any] = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return info


def build_parser() -> argparse.ArgumentParser:
    """Options of `fedchain ipfs` (defaults match Kubo's ports, so default configs work)."""
    parser = argparse.ArgumentParser(
        prog="fedchain ipfs",
        description="Run the bundled IPFS node (Helia, Kubo RPC API on 127.0.0.1) in the "
        "foreground. Point [ipfs] api_url at the printed API address.",
    )
    default_repo = os.environ.get("FEDCHAIN_IPFS_PATH", str(Path.home() / ".fedchain" / "ipfs"))
    parser.add_argument("--repo", default=default_repo, help="blocks, pins and the peer key")
    parser.add_argument("--api-port", type=int, default=5001, help="RPC API port (0 = any)")
    parser.add_argument("--swarm-port", type=int, default=4001, help="libp2p TCP port (0 = any)")
    parser.add_argument(
        "--swarm-host",
        default="127.0.0.1",
        metavar="IP",
        help="libp2p listen IP (default 127.0.0.1: this host only; 0.0.0.0 or this host's LAN "
        "IP lets other hosts' nodes connect). The RPC API always stays on 127.0.0.1",
    )
    parser.add_argument(
        "--peer",
        action="append",
        default=[],
        metavar="MULTIADDR",
        help="a node to stay connected to, /ip4/HOST/tcp/PORT/p2p/PEER_ID (repeatable; "
        "redialed when the link drops, as Kubo's Peering.Peers)",
    )
    parser.add_argument("--log", default=None, help="log file (default: REPO/node.log)")
    parser.add_argument(
        "--swarm-key",
        default=None,
        help="private network: talk only to nodes with this Kubo swarm.key file "
        "(default: REPO/swarm.key if present; make one with `fedchain keys swarm`)",
    )
    return parser


def run_node_command(argv: Sequence[str]) -> int:
    """`fedchain ipfs [--repo DIR] [--api-port N] [--swarm-port N] [--swarm-host IP] [--peer MA]…`.

    Serves until Ctrl-C/SIGTERM.
    """
    args = build_parser().parse_args(list(argv))
    for name in ("api_port", "swarm_port"):
        if not 0 <= getattr(args, name) <= 65535:
            print(f"fedchain ipfs: --{name.replace('_', '-')} must be 0..65535", file=sys.stderr)
            return 2
    bad_peer = next((p for p in args.peer if "/p2p/" not in p), None)
    if bad_peer is not None:
        print(
            f"fedchain ipfs: --peer {bad_peer}: needs the peer id, /ip4/HOST/tcp/PORT/p2p/PEER_ID "
            "(the `swarm:` line another node prints)",
            file=sys.stderr,
        )
        return 2
    if args.swarm_key:
        from daemons.errors import ConfigError
        from daemons.privacy.swarm_key import read_swarm_key

        try:
            read_swarm_key(Path(args.swarm_key))
        except ConfigError as exc:
            print(f"fedchain ipfs: {exc}", file=sys.stderr)
            return 2
    node = BundledIpfsNode(
        args.repo,
        args.api_port,
        args.swarm_port,
        log_path=args.log,
        swarm_host=args.swarm_host,
        peers=args.peer,
        swarm_key=args.swarm_key,
    )
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        with node:
            print(f"IPFS API:   {node.api_url}", flush=True)
            print(f"peer id:    {node.peer_id}", flush=True)
            for addr in node.swarm_multiaddrs:
                print(f"swarm:      {addr}", flush=True)
            print(f"repo, log:  {node.repo_dir}, {node.log_path}", flush=True)
            network = "private (swarm key)" if node.private_network else "public (no swarm key)"
            print(f"network:    {network}", flush=True)
            sd_notify("READY=1")  # under systemd (Type=notify): units After= this find the API up
            code = node._proc.wait() if node._proc is not None else 1
            print(f"fedchain ipfs: node exited ({code}); see {node.log_path}", file=sys.stderr)
            return 1
    except IpfsNodeError as exc:
        print(f"fedchain ipfs: {exc}", file=sys.stderr)
        return 1
    except (KeyboardInterrupt, SystemExit):
        return 0
