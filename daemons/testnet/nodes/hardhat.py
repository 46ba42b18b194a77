"""Run Hardhat's node (npm hardhat 2.x) as a child process on a free loopback port.

Hardhat's node is the other common dev chain (issue #10 §3). Its settings live in a config
file, not flags: each start writes a minimal `hardhat.config.cjs` (CommonJS, since this
package is ESM) into a temporary directory. The lifecycle is the shared `DevChain`'s.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

from daemons.testnet.nodes.devchain import (
    DEV_MNEMONIC,
    REPO_ROOT,
    DevChain,
    DevChainError,
    node_script,
)

HARDHAT_CLI = REPO_ROOT / "node_modules" / "hardhat" / "internal" / "cli" / "cli.js"


class HardhatError(DevChainError):
    """Hardhat's node could not be found or did not start answering JSON-RPC."""


def find_hardhat() -> list[str]:
    """`node cli.js` of the npm hardhat package."""
    return node_script(HARDHAT_CLI, HardhatError, "Hardhat's node", 18)


class Hardhat(DevChain):
    """A local Hardhat node; `hardfork` picks its EVM rules (Hardhat's default: the latest)."""

    kind = "hardhat"
    error = HardhatError

    def __init__(self, *args: object, hardfork: str | None = None, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.hardfork = hardfork
        self.start_timeout_s = max(self.start_timeout_s, 60.0)  # node start-up is slow
        self._config_dir: str | None = None

    def config(self) -> dict[str, object]:
        """The `networks.hardhat` settings for the current options."""
        net: dict[str, object] = {
            "chainId": self.chain_id,
            "accounts": {"mnemonic": DEV_MNEMONIC, "count": self.accounts},
        }
        if self.block_time_s is not None:
            net["mining"] = {"auto": False, "interval": int(self.block_time_s * 1000)}
        if self.hardfork is not None:
            net["hardfork"] = self.hardfork
        return {"networks": {"hardhat": net}}

    def command(self) -> list[str]:
        """`hardhat node` with a freshly written config (state across restarts: none)."""
        if self.state_path is not None:
            raise HardhatError("Hardhat's node keeps no state across restarts (state_path)")
        if self._config_dir is None:
            self._config_dir = tempfile.mkdtemp(prefix="fedchain-hardhat-")
        path = Path(self._config_dir) / "hardhat.config.cjs"
        path.write_text(f"module.exports = {json.dumps(self.config())};\n")
        cmd = [*find_hardhat(), "node", "--hostname", "127.0.0.1", "--port", str(self.port)]
        return [*cmd, "--config", str(path)]

    def _spawn(self) -> None:
        os.environ.setdefault("HARDHAT_DISABLE_TELEMETRY_PROMPT", "true")
        super()._spawn()

    def stop(self, timeout_s: float = 5.0) -> None:
        super().stop(timeout_s)
        if self._config_dir is not None:
            shutil.rmtree(self._config_dir, ignore_errors=True)
            self._config_dir = None

    def mine(self, blocks: int = 1) -> None:
        self.rpc("hardhat_mine", [hex(blocks)])
