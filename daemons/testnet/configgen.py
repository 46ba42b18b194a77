"""Generate the org's and each client's TOML config (schema in docs/INTERFACES.md)."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from daemons.testnet.spec import NetSpec
from models import registry

KEY_ENV = "FEDCHAIN_PRIVATE_KEY"
ENCRYPTION_KEY_ENV = "FEDCHAIN_ENCRYPTION_KEY"
# Every daemon gets the websocket doorbell (`ws_url`), which wakes it on each new block; the
# poll is only the fallback and the deadline check. A short poll costs every daemon (and
# anvil) a few RPCs per tick, CPU the 2-core testnet needs for training and IPFS.
POLL_INTERVAL_S = 0.5
TomlValue = str | int | float | bool | Sequence[str] | Mapping[str, object]


@dataclass(frozen=True)
class Endpoints:
    """Where the shared services listen once the net is up."""

    rpc_url: str
    ws_url: str
    contract: str


def toml_value(value: object) -> str:
    """One TOML value; only the kinds a daemon config uses (no nested tables)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"TOML cannot hold {value!r}")
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)  # a JSON string is a valid TOML basic string
    if isinstance(value, Mapping):
        inner = ", ".join(f"{k} = {toml_value(v)}" for k, v in value.items())
        return "{" + (f" {inner} " if inner else "") + "}"
    if isinstance(value, Sequence):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    raise TypeError(f"no TOML form for {type(value).__name__}")


def render_toml(tables: Mapping[str, Mapping[str, object]]) -> str:
    """Tables of scalars, lists and inline tables, in the given order."""
    parts = []
    for name, table in tables.items():
        lines = [f"[{name}]"] + [f"{k} = {toml_value(v)}" for k, v in table.items()]
        parts.append("\n".join(lines))
    return "\n\n".join(parts) + "\n"


def _common(
    ep: Endpoints,
    api_url: str,
    state_dir: Path,
    health_port: int = 0,
    compile_cache_dir: Path | None = None,
) -> dict[str, dict[str, object]]:
    service: dict[str, object] = {
        "state_dir": str(state_dir),
        "health_host": "127.0.0.1",
        "health_port": health_port,
        "log_format": "human",
    }
    if compile_cache_dir is not None:  # kept across runs by the testnet (spec.RunDir.cache)
        service["compile_cache_dir"] = str(compile_cache_dir)
    return {
        "chain": {
            "rpc_url": ep.rpc_url,
            "ws_url": ep.ws_url,
            "contract": ep.contract,
            "confirmations": 0,
            "log_chunk_blocks": 1000,
            "poll_interval_s": POLL_INTERVAL_S,
        },
        "identity": {"private_key_env": KEY_ENV},
        "ipfs": {"api_url": api_url, "timeout_s": 60, "max_blob_bytes": 67108864},
        "service": service,
    }


def training_table(spec: NetSpec) -> dict[str, object]:
    """The [training] table; the org publishes it as the round config."""
    penalty = spec.penalty
    if penalty == "ewc" and spec.ewc_lambda == 0:
        # lambda 0 is plain FedAvg; clients still send the Fisher the org folds in.
        penalty = "none"
    table: dict[str, object] = {
        "epochs": spec.epochs,
        "batch_size": spec.batch_size,
        "learning_rate": spec.learning_rate,
        "optimizer": "sgd",
        "penalty": penalty,
        "fedprox_mu": 0.01,
        "fisher_gamma": 0.9,
        "fisher_samples": 1000,
    }
    if penalty == "ewc":
        table["ewc_lambda"] = spec.ewc_lambda
    return table


def warmup_table(spec: NetSpec) -> dict[str, object] | None:
    """A client's [warmup]: the recipe the org will publish, to compile before round 1.

    None for a plug-in task without an explicit --model (its default is the task's own).
    """
    model = spec.model or (registry.task_models(spec.task) or ("",))[0]
    if not model:
        return None
    table = training_table(spec)
    fisher = table["penalty"] in registry.FISHER_PENALTIES
    fisher = fisher or spec.strategy in registry.FISHER_STRATEGIES
    return {"model": model, **table, "fisher": fisher}


DP_SECRET_ENV = "FEDCHAIN_DP_SECRET"


def org_config(
    spec: NetSpec,
    ep: Endpoints,
    api_url: str,
    state_dir: Path,
    clients: Sequence[str],
    eval_data: Path,
    health_port: int = 0,
    member_cards: Path | None = None,
    compile_cache_dir: Path | None = None,
) -> str:
    """The org daemon's TOML: all clients, rounds close as soon as every client submitted.

    `member_cards`: with `spec.models == "members"`, the clients' signed key cards."""
    tables = _common(ep, api_url, state_dir, health_port, compile_cache_dir)
    tables["federation"] = {
        "clients": list(clients),
        "rounds": spec.rounds,
        "round_duration_s": spec.round_duration_s,
        "min_updates": spec.min_updates,
        "max_updates": len(clients),
        "task": spec.task,
        "model": spec.model,
        "seed": spec.seed,
        "strategy": spec.strategy,
        "strategy_options": {},
        "retention_rounds": spec.rounds + 1,  # keep every model pinned for the report
        "eval_data": str(eval_data),
        "client_names": {c: f"client-{i}" for i, c in enumerate(clients)},
    }
    tables["training"] = training_table(spec)
    if spec.encrypt_updates:  # the key itself comes from the env (supervisor.daemon_env)
        tables["encryption"] = {"updates": "encrypted", "key_env": ENCRYPTION_KEY_ENV}
    if spec.models == "members":  # the same org key (env) re-reads its own sealed models
        assert member_cards is not None, "models = members needs the clients' cards"
        enc = tables.setdefault("encryption", {"key_env": ENCRYPTION_KEY_ENV})
        enc |= {"models": "members", "member_cards": str(member_cards)}
    if spec.dp != "off":  # central: the noise secret comes from the env (supervisor._launch)
        tables["privacy"] = {
            "mode": spec.dp,
            "clip_norm": spec.dp_clip_norm,
            "noise_multiplier": spec.dp_noise_multiplier,
            "epsilon_budget": spec.dp_epsilon_budget,
            "secret_env": DP_SECRET_ENV,
        }
    return render_toml(tables)


def client_config(
    ep: Endpoints,
    api_url: str,
    state_dir: Path,
    data_path: Path,
    encrypted: bool = False,
    task: str = "fashion_mnist",
    health_port: int = 0,
    key_env: str = KEY_ENV,
    models: str = "public",
    encryption_key_env: str = ENCRYPTION_KEY_ENV,
    compile_cache_dir: Path | None = None,
    warmup: Mapping[str, object] | None = None,
) -> str:
    """One client daemon's TOML (`encrypted`: it refuses to send a plaintext update;
    `models` "members": it needs its own X25519 key, from `encryption_key_env`, to open the
    models); `key_env` names its account key's variable (each client of a host has its own);
    `warmup`: the recipe to compile for before round 1."""
    tables = _common(ep, api_url, state_dir, health_port, compile_cache_dir)
    tables["identity"] = {"private_key_env": key_env}
    tables["data"] = {"path": str(data_path), "task": task}
    if encrypted:
        tables["encryption"] = {"updates": "encrypted"}
    if models == "members":
        enc = tables.setdefault("encryption", {})
        enc |= {"models": "members", "key_env": encryption_key_env}
    if warmup:
        tables["warmup"] = dict(warmup)
    return render_toml(tables)
