"""A federation of real processes for integration tests: anvil, a bundled IPFS node, and the
org and client daemons started as `python -m daemons.cli ...` with generated TOML configs.

Every process is killed at teardown; on failure the daemons' log tails are printed.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from eth_account import Account
from eth_account.signers.local import LocalAccount
from web3 import AsyncHTTPProvider, AsyncWeb3

from contracts.binding import FederatedRounds
from contracts.state import RoundInfo, RoundStatus
from daemons.ipfs.bundled import BundledIpfsNode
from daemons.testnet.nodes.anvil import Anvil, free_port
from daemons.testnet.nodes.devchain import DevChain

REPO = Path(__file__).resolve().parents[2]


@dataclass
class Daemon:
    """One daemon process: its config, key, log file and (when running) its Popen."""

    name: str
    role: str
    config: Path
    key: str
    log: Path
    proc: subprocess.Popen[bytes] | None = None
    starts: int = 0
    env: dict[str, str] = field(default_factory=dict)  # on every start (e.g. an encryption key)
    module: str = "daemons.cli"  # tests may run a patched daemon (tests/integration/dishonest_org)

    def start(self, **env: str) -> None:
        """Start (or restart) the daemon; extra env vars such as FEDCHAIN_CRASH_AT."""
        assert self.proc is None or self.proc.poll() is not None, f"{self.name} still running"
        self.starts += 1
        full_env = {**os.environ, "FEDCHAIN_PRIVATE_KEY": self.key, "PYTHONUNBUFFERED": "1"}
        full_env.pop("FEDCHAIN_CRASH_AT", None)
        full_env.pop("FEDCHAIN_SUBMIT_DELAY_S", None)
        full_env.update(self.env)
        full_env.update(env)
        with self.log.open("ab") as out:
            out.write(f"\n===== start {self.starts} env {env} =====\n".encode())
            out.flush()
            self.proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    self.module,
                    self.role,
                    "run",
                    "--config",
                    str(self.config),
                    "--log-format",
                    "json",
                ],
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=REPO,
                env=full_env,
                start_new_session=True,
            )

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def wait(self, timeout_s: float) -> int:
        assert self.proc is not None
        return self.proc.wait(timeout_s)

    def kill9(self) -> None:
        if self.running():
            assert self.proc is not None
            self.proc.kill()
            self.proc.wait(10)

    def terminate(self, timeout_s: float = 30) -> int:
        """SIGTERM and wait for the exit code."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout_s)

    def text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def records(self) -> list[dict[str, Any]]:
        """The JSON log lines written so far."""
        out = []
        for line in self.text().splitlines():
            if line.startswith("{"):
                with contextlib.suppress(json.JSONDecodeError):
                    out.append(json.loads(line))
        return out


@dataclass
class Federation:
    """anvil + one IPFS node + an org and N clients, configured like a small testnet."""

    tmp: Path
    data: dict[str, Path]
    num_clients: int = 3
    rounds: int = 3
    round_duration_s: int = 120
    min_updates: int = 1
    max_updates: int = 3
    block_time_s: float | None = None
    org_options: dict[str, Any] = field(default_factory=dict)
    node_kind: type[DevChain] = Anvil  # the EVM node: anvil, or e.g. Ganache
    chain_options: dict[str, Any] = field(default_factory=dict)  # extra [chain] keys
    ipfs_options: dict[str, Any] = field(default_factory=dict)  # extra [ipfs] keys
    service_options: dict[str, Any] = field(default_factory=dict)  # extra [service] keys
    extra_clients: int = 0
    encryption: dict[str, dict[str, Any]] = field(default_factory=dict)  # role -> [encryption]
    training_options: dict[str, Any] = field(default_factory=dict)  # over the [training] below
    privacy: dict[str, Any] = field(default_factory=dict)  # a [privacy] table when not empty
    anvil: DevChain | None = None
    ipfs: BundledIpfsNode | None = None
    org: Daemon | None = None
    clients: list[Daemon] = field(default_factory=list)
    accounts: list[LocalAccount] = field(default_factory=list)
    contract: FederatedRounds | None = None
    w3: AsyncWeb3[Any] | None = None
    health_ports: dict[str, int] = field(default_factory=dict)

    async def __aenter__(self) -> Federation:
        try:
            await self._setup()
        except BaseException:
            self.close(failed=True)
            raise
        return self

    async def __aexit__(self, exc_type: Any, *exc: Any) -> None:
        if self.w3 is not None:
            await self.w3.provider.disconnect()  # type: ignore[attr-defined]
        self.close(failed=exc_type is not None)

    async def _setup(self) -> None:
        self.anvil = self.node_kind(
            block_time_s=self.block_time_s, log_path=self.tmp / f"{self.node_kind.kind}.log"
        )
        self.anvil.start()
        self.ipfs = BundledIpfsNode(self.tmp / "ipfs", log_path=self.tmp / "ipfs.log")
        self.ipfs.start()
        self.accounts = [Account.from_key(k) for k in self.anvil.dev_private_keys]
        self.w3 = AsyncWeb3(AsyncHTTPProvider(self.anvil.rpc_url))
        await self.deploy()

    async def deploy(self) -> None:
        """Deploy and register the clients as `fedchain testnet` does; write the configs."""
        assert self.w3 is not None
        org = self.accounts[0]
        self.contract = await FederatedRounds.deploy(self.w3, org)
        clients = [a.address for a in self.accounts[1 : 1 + self.num_clients + self.extra_clients]]
        await self.contract.add_clients(org, clients)
        self.org = self._daemon("org", "org", 0)
        self.clients = [
            self._daemon(f"client-{i}", "client", i + 1) for i in range(self.num_clients)
        ]

    def _daemon(self, name: str, role: str, index: int) -> Daemon:
        path = self.tmp / f"{name}.toml"
        path.write_text(self._config(name, role))
        return Daemon(
            name,
            role,
            path,
            self.anvil.dev_private_keys[index],  # type: ignore[union-attr]
            self.tmp / f"{name}.log",
        )

    def _config(self, name: str, role: str) -> str:
        assert self.anvil is not None and self.ipfs is not None and self.contract is not None
        common = f"""
[chain]
rpc_url = "{self.anvil.rpc_url}"
contract = "{self.contract.address}"
poll_interval_s = 0.2
{_toml_lines(self.chain_options)}
[ipfs]
api_url = "{self.ipfs.api_url}"
timeout_s = 20
max_blob_bytes = {self.org_options.get("max_blob_bytes", 1 << 20)}
{_toml_lines(self.ipfs_options)}
[service]
state_dir = "{self.tmp / name}"
health_port = {self.health_ports.setdefault(name, free_port())}
{_toml_lines(self.service_options)}
"""
        if role in self.encryption:
            table = "\n".join(f"{k} = {json.dumps(v)}" for k, v in self.encryption[role].items())
            common += f"[encryption]\n{table}\n"
        if role == "client":
            return common + f'[data]\npath = "{self.data[name]}"\n'
        clients = [a.address for a in self.accounts[1 : 1 + self.num_clients + self.extra_clients]]
        opts = {k: v for k, v in self.org_options.items() if k != "max_blob_bytes"}
        fed = "\n".join(f"{k} = {json.dumps(v)}" for k, v in opts.items())
        training = {"epochs": 1, "batch_size": 20, "learning_rate": 0.1, "penalty": "ewc"}
        training |= {"ewc_lambda": 1.0, "fisher_samples": 100, **self.training_options}
        train = "\n".join(f"{k} = {json.dumps(v)}" for k, v in training.items())
        dp = "\n".join(f"{k} = {json.dumps(v)}" for k, v in self.privacy.items())
        return (
            common
            + f"""
[federation]
clients = {json.dumps(clients)}
rounds = {self.rounds}
round_duration_s = {self.round_duration_s}
min_updates = {self.min_updates}
max_updates = {self.max_updates}
model = "logreg"
seed = 11
eval_data = "{self.data["org"]}"
{fed}
[training]
{train}
"""
            + (f"[privacy]\n{dp}\n" if dp else "")
        )

    def start_all(self) -> None:
        assert self.org is not None
        self.org.start()
        for client in self.clients:
            client.start()

    async def round(self, round_id: int) -> RoundInfo | None:
        assert self.contract is not None
        if await self.contract.current_round_id() < round_id:
            return None
        return await self.contract.get_round(round_id)

    async def wait_for(self, what: str, check: Any, timeout_s: float) -> Any:
        """Poll `await check()` until truthy; fails with the daemons' state otherwise."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            value = await check()
            if value:
                return value
            for daemon in self.daemons():
                if daemon.proc is not None and daemon.proc.poll() not in (None, 0, -9):
                    raise AssertionError(f"{daemon.name} exited with {daemon.proc.returncode}")
            await asyncio.sleep(0.25)
        raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")

    async def wait_settled(self, round_id: int, timeout_s: float = 120) -> RoundInfo:
        async def settled() -> RoundInfo | None:
            info = await self.round(round_id)
            return info if info is not None and info.settled else None

        info: RoundInfo = await self.wait_for(f"round {round_id} settled", settled, timeout_s)
        return info

    async def wait_open(self, round_id: int, timeout_s: float = 120) -> RoundInfo:
        async def opened() -> RoundInfo | None:
            info = await self.round(round_id)
            return info if info is not None and info.status is not RoundStatus.NONE else None

        info: RoundInfo = await self.wait_for(f"round {round_id} open", opened, timeout_s)
        return info

    def daemons(self) -> list[Daemon]:
        return ([self.org] if self.org else []) + self.clients

    def close(self, failed: bool) -> None:
        """Kill every process; print log tails if the test failed."""
        for daemon in self.daemons():
            daemon.kill9()
        if failed:
            for daemon in self.daemons():
                print(f"----- {daemon.name} log (tail) -----")
                print("\n".join(daemon.text().splitlines()[-60:]))
        if self.ipfs is not None:
            self.ipfs.stop()
        if self.anvil is not None:
            self.anvil.stop()


def _toml_lines(options: dict[str, Any]) -> str:
    """`key = value` lines (JSON literals are valid TOML for numbers, strings and lists)."""
    return "\n".join(f"{k} = {json.dumps(v)}" for k, v in options.items())


def messages(daemon: Daemon) -> list[str]:
    """The `msg` of every JSON log record."""
    return [str(r.get("msg", "")) for r in daemon.records()]


def restart_chain_fresh(fed: Federation) -> None:
    """Stop anvil and start a new, empty one on the same port (a chain reset)."""
    assert fed.anvil is not None
    port = fed.anvil.port
    fed.anvil.stop()
    fed.anvil = Anvil(port=port, log_path=fed.tmp / "anvil-2.log")
    fed.anvil.start()


def notify_socket(path: Path) -> socket.socket:
    """A non-blocking sd_notify datagram socket bound at `path` (a daemon's NOTIFY_SOCKET)."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    sock.setblocking(False)
    return sock


def notifications(sock: socket.socket) -> list[str]:
    """The sd_notify datagrams received so far."""
    got = []
    with contextlib.suppress(BlockingIOError):
        while True:
            got.append(sock.recv(256).decode())
    return got
