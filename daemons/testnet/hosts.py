"""A testnet's clients grouped into client hosts (`fedchain client-host`), one process each.

`--clients-per-host 0` (auto) keeps one client daemon per client up to `spec.AUTO_SOLO_MAX`
clients, as before; more are grouped into hosts of at most `spec.AUTO_PER_HOST`. Every hosted
client keeps its own key (env `FEDCHAIN_PRIVATE_KEY_<i>`), data shard and state dir; the
clients of one host share its IPFS node.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from daemons.testnet.configgen import KEY_ENV, render_toml


def host_groups(clients: int, per_host: int) -> list[list[int]]:
    """Client indices per host: `per_host` each, the last one possibly smaller, in order."""
    if per_host <= 0:
        raise ValueError(f"per_host must be >= 1, got {per_host}")
    return [list(range(i, min(i + per_host, clients))) for i in range(0, clients, per_host)]


def client_key_env(index: int) -> str:
    """The environment variable holding hosted client `index`'s private key."""
    return f"{KEY_ENV}_{index}"


def host_config(
    client_configs: Sequence[Path], state_dir: Path, health_port: int, training: str = "auto"
) -> str:
    """A host's TOML: its clients' config files, its state dir, health endpoint and training."""
    table: dict[str, object] = {
        "clients": [str(p) for p in client_configs],
        "state_dir": str(state_dir),
        "health_port": health_port,
        "log_format": "human",
        "training": training,
    }
    return render_toml({"host": table})
