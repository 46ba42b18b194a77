"""A local EVM dev chain (anvil, ganache, ...) as a child process on a free loopback port.

One lifecycle for every node kind: spawn with the kernel's parent-death signal, wait until
it answers `eth_chainId`, retry on a port race, stop with SIGTERM then SIGKILL. A node kind
only says how to find its program and what its command line is (`command()`), and how its
dev-chain controls are spelled (automine on/off, mine N blocks): those differ per node.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import signal
import subprocess
import tempfile
import urllib.request
from functools import cache
from pathlib import Path
from typing import Any, Self

from daemons.errors import FedchainError
from daemons.runtime.childproc import ChildProcess, die_with_parent
from daemons.runtime.ports import free_port

REPO_ROOT = Path(__file__).resolve().parents[3]
DEV_MNEMONIC = "test test test test test test test test test test test junk"


class DevChainError(FedchainError):
    """A dev chain could not be found or did not start answering JSON-RPC."""


@cache
def dev_private_keys(count: int = 10, mnemonic: str = DEV_MNEMONIC) -> tuple[str, ...]:
    """The 0x-hex private keys dev chains fund for `mnemonic` (BIP-44 m/44'/60'/0'/0/i)."""
    from eth_account.hdaccount import key_from_seed, seed_from_mnemonic

    # the seed once (PBKDF2, the slow part), not once per key: 100 clients' keys in ~1/3 the time
    seed = seed_from_mnemonic(mnemonic, "")
    return tuple("0x" + key_from_seed(seed, f"m/44'/60'/0'/0/{i}").hex() for i in range(count))


def node_script(script: Path, error: type[DevChainError], who: str, node_major: int) -> list[str]:
    """`node SCRIPT`: the command of a dev chain that an npm package ships as JavaScript."""
    node = shutil.which("node")
    if node is None:
        raise error(f"node not found on PATH: {who} needs Node.js (>= {node_major})")
    if not script.exists():
        raise error(f"{script} not found: run `make setup` (npm ci)")
    return [node, str(script)]


class DevChain(ChildProcess):
    """A local chain as a context manager: start on enter, always stop on exit."""

    kind = "dev chain"
    error: type[DevChainError] = DevChainError

    def __init__(
        self,
        port: int = 0,
        block_time_s: float | None = None,
        state_path: str | Path | None = None,
        log_path: str | Path | None = None,
        accounts: int = 10,
        chain_id: int = 31337,
        start_timeout_s: float = 20.0,
    ) -> None:
        super().__init__()
        self.port = port
        self.block_time_s = block_time_s
        self.state_path = Path(state_path) if state_path else None
        self.log_path = Path(log_path) if log_path else None
        self.accounts = accounts
        self.chain_id = chain_id
        self.start_timeout_s = start_timeout_s
        self._tmpdir: tempfile.TemporaryDirectory[str] | None = None

    @property
    def rpc_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    @property
    def dev_private_keys(self) -> tuple[str, ...]:
        return dev_private_keys(self.accounts)

    def command(self) -> list[str]:
        """The node's command line for the current settings (per node kind)."""
        raise NotImplementedError

    # dev-chain controls: anvil's spelling here, other kinds override ----------------------

    def set_automine(self, on: bool) -> None:
        """Mine a block per transaction (on) or only on `mine()` / the block time (off)."""
        self.rpc("evm_setAutomine", [on])

    def mine(self, blocks: int = 1) -> None:
        """Mine `blocks` blocks now."""
        for _ in range(blocks):
            self.rpc("evm_mine")

    # lifecycle ---------------------------------------------------------------------------

    def start(self) -> Self:
        """Spawn the node and wait until it answers eth_chainId; retries once on a port race."""
        wanted = self.port
        for attempt in range(3):
            self.port = wanted or free_port()
            self._spawn()
            if self.wait_until(self._answers, self.start_timeout_s):
                return self
            tail = self.log_tail()
            self.stop()
            if wanted or attempt == 2:
                break
        raise self.error(f"{self.kind} did not answer on {self.rpc_url}; its log ends:\n{tail}")

    def _spawn(self) -> None:
        if self.log_path is None:
            self._tmpdir = tempfile.TemporaryDirectory(prefix=f"fedchain-{self.kind}-")
            log_file = Path(self._tmpdir.name) / f"{self.kind}.log"
        else:
            log_file = self.log_path
        self.spawn(
            self.command(),
            log_file,
            stdin=subprocess.DEVNULL,
            # its own session: a SIGTERM to its parent's group (stopping a testnet's
            # supervisor) must not end the chain before the daemons that use it
            start_new_session=True,
            preexec_fn=die_with_parent(signal.SIGKILL),
        )

    def _answers(self) -> bool | None:
        """True once the node answers eth_chainId (None: not yet)."""
        with contextlib.suppress(OSError, ValueError):
            if self.rpc("eth_chainId") is not None:
                return True
        return None

    def rpc(self, method: str, params: list[Any] | None = None) -> Any:
        """A blocking JSON-RPC call (for set-up code; daemons use web3)."""
        body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": method, "params": params or []})
        req = urllib.request.Request(
            self.rpc_url, body.encode(), {"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(req, timeout=5) as resp:
            reply = json.loads(resp.read())
        if "error" in reply:
            raise self.error(f"{method} failed: {reply['error']}")
        return reply["result"]

    def stop(self, timeout_s: float = 5.0) -> None:
        """Terminate the node (SIGTERM lets it save its state), kill it if it lingers."""
        super().stop(timeout_s)
        if self._tmpdir is not None:
            self._tmpdir.cleanup()
            self._tmpdir = None
