"""Run the npm anvil binary as a child process on a free loopback port (tests, testnet)."""

from __future__ import annotations

import os
import shutil

from daemons.testnet.nodes.devchain import (
    DEV_MNEMONIC,
    REPO_ROOT,
    DevChain,
    DevChainError,
    dev_private_keys,
    free_port,
)

__all__ = ["DEV_MNEMONIC", "Anvil", "AnvilError", "dev_private_keys", "find_anvil", "free_port"]


class AnvilError(DevChainError):
    """anvil could not be found or did not start answering JSON-RPC."""


def find_anvil() -> str:
    """Path of the anvil binary: $FEDCHAIN_ANVIL, the npm platform package, or PATH."""
    override = os.environ.get("FEDCHAIN_ANVIL")
    if override:
        if not os.access(override, os.X_OK):
            raise AnvilError(f"FEDCHAIN_ANVIL={override} is not an executable: fix or unset it")
        return override
    for candidate in sorted(REPO_ROOT.glob("node_modules/@foundry-rs/anvil-*/bin/anvil")):
        if os.access(candidate, os.X_OK):
            return str(candidate)
    found = shutil.which("anvil")
    if found:
        return found
    raise AnvilError("anvil not found: run `make setup` (npm ci) or set FEDCHAIN_ANVIL")


class Anvil(DevChain):
    """A local anvil chain as a context manager: start on enter, always stop on exit."""

    kind = "anvil"
    error = AnvilError

    def command(self) -> list[str]:
        """The anvil command line for the current settings."""
        cmd = [find_anvil(), "--host", "127.0.0.1", "--port", str(self.port)]
        cmd += ["--accounts", str(self.accounts), "--mnemonic", DEV_MNEMONIC]
        cmd += ["--chain-id", str(self.chain_id)]
        if self.block_time_s is not None:
            cmd += ["--block-time", str(self.block_time_s)]
        if self.state_path is not None:
            cmd += ["--state", str(self.state_path)]
        return cmd
