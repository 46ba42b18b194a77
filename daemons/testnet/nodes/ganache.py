"""Run the npm ganache (v7) as a child process on a free loopback port (tests, other-node e2e).

ganache is the seed project's chain; fedchain runs on it unchanged (issue #10 §3). The
lifecycle is the shared `DevChain`'s; only the command line and the dev controls differ
(ganache stops and starts its miner where anvil toggles automine).
"""

from __future__ import annotations

import os

from daemons.testnet.nodes.devchain import (
    DEV_MNEMONIC,
    REPO_ROOT,
    DevChain,
    DevChainError,
    node_script,
)

GANACHE_CLI = REPO_ROOT / "node_modules" / "ganache" / "dist" / "node" / "cli.js"


class GanacheError(DevChainError):
    """ganache could not be found or did not start answering JSON-RPC."""


def find_ganache() -> list[str]:
    """`node cli.js` of the npm ganache package (or $FEDCHAIN_GANACHE, an executable)."""
    override = os.environ.get("FEDCHAIN_GANACHE")
    if override:
        if not os.access(override, os.X_OK):
            raise GanacheError(f"FEDCHAIN_GANACHE={override} is not an executable: fix or unset")
        return [override]
    return node_script(GANACHE_CLI, GanacheError, "ganache", 16)


class Ganache(DevChain):
    """A local ganache chain; `hardfork` picks its EVM rules (ganache's default: shanghai)."""

    kind = "ganache"
    error = GanacheError

    def __init__(self, *args: object, hardfork: str | None = None, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.hardfork = hardfork
        self.start_timeout_s = max(self.start_timeout_s, 60.0)  # node start-up is slow

    def command(self) -> list[str]:
        """The ganache command line for the current settings."""
        cmd = find_ganache()
        cmd += ["--server.host", "127.0.0.1", "--server.port", str(self.port)]
        cmd += ["--wallet.mnemonic", DEV_MNEMONIC, "--wallet.totalAccounts", str(self.accounts)]
        cmd += ["--chain.chainId", str(self.chain_id), "--logging.quiet"]
        if self.block_time_s is not None:
            cmd += ["--miner.blockTime", str(self.block_time_s)]
        if self.state_path is not None:
            cmd += ["--database.dbPath", str(self.state_path)]
        if self.hardfork is not None:
            cmd += ["--chain.hardfork", self.hardfork]
        return cmd

    def set_automine(self, on: bool) -> None:
        """ganache has no evm_setAutomine: its miner is stopped and started instead."""
        self.rpc("miner_start" if on else "miner_stop")

    def mine(self, blocks: int = 1) -> None:
        self.rpc("evm_mine", [{"blocks": blocks}])
