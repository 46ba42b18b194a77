"""The client host's TOML: which client configs it runs, its own state dir and endpoint.

```toml
[host]
clients = ["client-0.toml", "client-1.toml"]  # ordinary client configs, relative to this file
state_dir = "state/host"                     # the shared event cursor (client.sqlite)
health_port = 0                              # /healthz + /metrics of the host (0: none)
log_format = "human"
gather_s = 60.0                              # longest wait for a round's batch to fill
training = "auto"                            # "vmap", "loop", or "auto" (loop on a CPU)
```

`training`: how the clients of a batch train (`daemons.client.host_train`). "vmap": one
vmapped call per epoch for the clients whose shapes agree; "loop": one after another, each
exactly as a single client daemon trains (bit for bit), each update published as soon as it
is ready; "auto": "loop" on a CPU (XLA:CPU's batched matmuls made vmapped training 1.2-1.8x
slower than the loop for the CNN and 16 2NN clients: `benchmarks/host_training.py`), "vmap"
on an accelerator.

Every client config keeps its own key (`[identity]`: give each client its own
`private_key_env` or keystore), data and `[service] state_dir`; they must agree on the chain
(`rpc_url`, `contract`) and the IPFS node (`api_url`): the host shares one of each.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from daemons.errors import ConfigError
from daemons.runtime.config import LOG_FORMATS, DaemonConfig, load_config, read_toml

HOST_KEYS = {
    "clients",
    "state_dir",
    "health_host",
    "health_port",
    "log_format",
    "gather_s",
    "training",
}
TRAINING_MODES = ("auto", "vmap", "loop")


@dataclass(frozen=True)
class HostConfig:
    """A client host: its clients' configs (loaded and checked) and its own settings."""

    path: str
    clients: tuple[DaemonConfig, ...]
    state_dir: str
    health_host: str = "127.0.0.1"
    health_port: int = 0
    log_format: str = "human"
    gather_s: float = 60.0
    training: str = "auto"


def load_host_config(path: str | Path) -> HostConfig:
    """Read `[host]` and every client config it lists; a ConfigError names what is wrong."""
    path = Path(path)
    raw = read_toml(path)
    extra = set(raw) - {"host"}
    if "host" not in raw or extra:
        raise ConfigError(
            f"{path}: a client host config has one section, [host]; got {sorted(raw)}"
        )
    host: dict[str, Any] = raw["host"]
    unknown = set(host) - HOST_KEYS
    if unknown:
        raise ConfigError(
            f"{path}: unknown [host] keys {sorted(unknown)}; allowed: {sorted(HOST_KEYS)}"
        )
    files = host.get("clients")
    if not isinstance(files, list) or not files or not all(isinstance(f, str) for f in files):
        raise ConfigError(f"{path}: host.clients must be a non-empty list of client config files")
    clients = tuple(load_config(path.parent / f, "client") for f in files)
    _check_shared(path, clients)
    state_dir = host.get("state_dir")
    if not isinstance(state_dir, str) or not state_dir:
        raise ConfigError(f"{path}: host.state_dir must name a directory for the host's cursor")
    log_format = host.get("log_format", "human")
    if log_format not in LOG_FORMATS:
        raise ConfigError(f"{path}: host.log_format must be one of {', '.join(LOG_FORMATS)}")
    port, gather = host.get("health_port", 0), host.get("gather_s", 60.0)
    if not isinstance(port, int) or not 0 <= port < 65536:
        raise ConfigError(f"{path}: host.health_port must be a port number (0: no endpoint)")
    if not isinstance(gather, int | float) or not gather > 0:
        raise ConfigError(f"{path}: host.gather_s must be a number of seconds > 0")
    training = host.get("training", "auto")
    if training not in TRAINING_MODES:
        raise ConfigError(
            f"{path}: host.training must be one of {', '.join(TRAINING_MODES)}; got {training!r}"
        )
    return HostConfig(
        str(path),
        clients,
        str(path.parent / state_dir),
        str(host.get("health_host", "127.0.0.1")),
        port,
        log_format,
        float(gather),
        training,
    )


def _check_shared(path: Path, clients: tuple[DaemonConfig, ...]) -> None:
    """One chain, one contract, one IPFS node; a state dir and a key source per client."""
    first = clients[0]
    for cfg in clients[1:]:
        for what, mine, theirs in (
            ("chain.rpc_url", cfg.chain.rpc_url, first.chain.rpc_url),
            ("chain.contract", cfg.chain.contract.lower(), first.chain.contract.lower()),
            ("ipfs.api_url", cfg.ipfs.api_url, first.ipfs.api_url),
        ):
            if mine != theirs:
                raise ConfigError(
                    f"{path}: {cfg.path} has {what} = {mine!r} but {first.path} has {theirs!r}: "
                    "the clients of one host share one chain connection and one IPFS node"
                )
    _unique(path, "service.state_dir", [str(Path(c.service.state_dir).resolve()) for c in clients])
    sources = [c.identity.keystore or f"env {c.identity.private_key_env}" for c in clients]
    _unique(path, "identity (keystore or private_key_env)", sources)


def _unique(path: Path, what: str, values: list[str]) -> None:
    seen: set[str] = set()
    for value in values:
        if value in seen:
            raise ConfigError(
                f"{path}: two clients share {what} {value!r}: give each client its own"
            )
        seen.add(value)
