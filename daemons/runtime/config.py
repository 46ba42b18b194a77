"""Daemon configuration: TOML files loaded into frozen dataclasses, validated at start.

Every error names the file, the key and what would be allowed, so a user can fix the file
without reading code. Unknown keys are errors (a typo must not silently use a default).
Relative paths are resolved against the directory of the config file, as systemd units do.
"""

from __future__ import annotations

import dataclasses
import tomllib
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from daemons.errors import ConfigError
from models import registry

Role = Literal["org", "client"]
ROLES: tuple[str, ...] = ("org", "client")
# The names live in models.registry (JAX-free); these aliases keep old imports working.
PENALTIES = registry.PENALTIES
OPTIMIZERS = registry.OPTIMIZERS
MODELS = registry.MODELS
STRATEGIES = registry.STRATEGIES
LOG_FORMATS = ("human", "json")
UPDATE_MODES = ("public", "encrypted")
MODEL_MODES = ("public", "members")
MAX_AUDITORS = 15  # an envelope holds at most 16 recipients: the org and 15 auditors
PRIVACY_MODES = ("off", "central", "local")
MAX_ROUND_DURATION_S = 30 * 24 * 3600
MAX_CHUNK_BYTES = 1024 * 1024  # Kubo's chunker limit; bitswap moves blocks of up to 2 MiB


@dataclass(frozen=True)
class ChainConfig:
    """Where the chain is and how the event tailer reads it."""

    rpc_url: str = "http://127.0.0.1:8545"
    ws_url: str = ""
    contract: str = ""
    confirmations: int = 0
    log_chunk_blocks: int = 1000
    poll_interval_s: float = 0.5
    # a tx pending this long is re-signed with 12.5% higher fees (0: only when the node
    # refuses it as underpriced); max_fee_gwei caps the max fee per gas (0: no cap)
    fee_bump_after_s: float = 60.0
    max_fee_gwei: float = 0.0
    # warn when a round is past its deadline by the wall clock and no block came for this
    # long (a chain that mines only on transactions, e.g. anvil without --block-time); 0: off
    no_block_warn_s: float = 30.0
    # a WARNING (and the fedchain_balance_eth gauge) when the account holds less (0: never)
    low_balance_eth: float = 0.05


@dataclass(frozen=True)
class IdentityConfig:
    """Where the daemon's signing key comes from (env hex key or encrypted keystore)."""

    private_key_env: str = "FEDCHAIN_PRIVATE_KEY"
    keystore: str = ""
    password_env: str = "FEDCHAIN_KEYSTORE_PASSWORD"


@dataclass(frozen=True)
class IpfsConfig:
    """The Kubo-compatible RPC endpoint and the limits applied to every fetch."""

    api_url: str = "http://127.0.0.1:5001"
    timeout_s: float = 60.0
    max_blob_bytes: int = 64 * 1024 * 1024
    # UnixFS chunk size for what this daemon adds. 1 MiB (Kubo's maximum) keeps a blob of up
    # to 1 MiB in one raw block: bitswap's cost is per block more than per byte.
    chunk_bytes: int = MAX_CHUNK_BYTES
    # IPFS unreachable for longer than this stops the daemon non-zero (0: never)
    unreachable_exit_s: float = 300.0


@dataclass(frozen=True)
class ServiceConfig:
    """Process-level settings: durable state, health/metrics endpoint, log format."""

    state_dir: str = "state"
    health_host: str = "127.0.0.1"
    health_port: int = 0
    log_format: str = "human"
    # how often the chain and IPFS are probed for /healthz and the IPFS outage bound
    probe_interval_s: float = 5.0
    # JAX's persistent compilation cache (daemons/runtime/compile_cache.py); dir "" = state_dir's
    compile_cache: bool = True
    compile_cache_dir: str = ""


@dataclass(frozen=True)
class FederationConfig:
    """The org's federation plan: who takes part, how many rounds, how they are merged."""

    clients: tuple[str, ...] = ()
    rounds: int = 5
    round_duration_s: int = 60
    min_updates: int = 1
    max_updates: int = 3
    # a built-in task name or "package.module:attribute" of a user's Task (docs/tasks.md);
    # model "" = the task's default (fashion_mnist: 2nn)
    task: str = registry.DEFAULT_TASK
    model: str = ""
    seed: int = 0
    strategy: str = "fedavg"
    strategy_options: dict[str, Any] = field(default_factory=dict)
    retention_rounds: int = 3
    eval_data: str = ""
    exit_when_done: bool = False
    # address -> the name reports and the live view show for that client (default: address)
    client_names: dict[str, str] = field(default_factory=dict)
    # per-class test accuracy in each manifest: one more pass over eval_data per round
    per_class_metrics: bool = True
    # bounded client influence (models/influence.py, docs/daemons.md); 0 turns a bound off
    max_update_norm: float = 1000.0
    max_norm_ratio: float = 10.0
    max_samples_per_client: int = 1_000_000
    max_client_share: float = 0.5
    # the forgetting ledger: name -> held-out set of an earlier task or data (.npz or IDX
    # dir); every round's manifest records the model's metrics on each
    heldout_data: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class TrainingConfig:
    """Local training recipe, published by the org as the round config (configCid)."""

    epochs: int = 1
    batch_size: int = 10
    learning_rate: float = 0.05
    optimizer: str = "sgd"
    momentum: float = 0.0
    penalty: str = "ewc"
    ewc_lambda: float = 10.0
    fedprox_mu: float = 0.01
    fisher_gamma: float = 0.9
    fisher_samples: int = 1000


@dataclass(frozen=True)
class WarmupConfig(TrainingConfig):
    """A client's guess at the org's round recipe, compiled while it waits for its first
    round (daemons/client/warmup.py); only a hint: the round config decides. `model` ""
    = no warm-up from this table (a restarted client warms up from its last round's config).
    """

    model: str = ""
    fisher: bool = True


@dataclass(frozen=True)
class PrivacyConfig:
    """Client-level DP (DP-FedAvg, McMahan et al. 2018); org only, published in the round config.

    `central`: the org clips each change to `clip_norm` and adds N(0, (z C)²) to the sum,
    with noise from a secret it loads from `secret_file` or the env var `secret_env` (never
    from a config); `local`: every client clips and noises its own change. `epsilon_budget`
    (0: none) stops the federation before a round whose (ε, δ) would exceed it.
    See docs/privacy.md.
    """

    mode: str = "off"
    clip_norm: float = 1.0
    noise_multiplier: float = 1.0
    delta: float = 1e-5
    epsilon_budget: float = 0.0
    sample_cap: int = 0
    secret_env: str = "FEDCHAIN_DP_SECRET"
    secret_file: str = ""


@dataclass(frozen=True)
class DataConfig:
    """A client's local data and the task that reads it (the org's round config must match)."""

    path: str = ""
    task: str = registry.DEFAULT_TASK


@dataclass(frozen=True)
class EncryptionConfig:
    """Encrypted updates (docs/security.md): the policy and where the org's X25519 key is.

    `updates`: on the org, "encrypted" makes every client seal its update to the org's key
    (and the auditors'); on a client, it refuses a round whose config does not ask for that.
    `models`: on the org, "members" seals every model to the members' keys from their signed
    key cards (`member_cards`: a card file, a JSON list of cards or a directory of them), the
    auditors and itself; on a client, "members" makes its own key (which opens the models)
    required at start. The private key is never in the file: a keystore (`key_file`) or hex
    in env `key_env` (the org's; a client's own for models).
    """

    updates: str = "public"
    models: str = "public"
    member_cards: str = ""
    key_file: str = ""
    key_env: str = "FEDCHAIN_ENCRYPTION_KEY"
    password_env: str = "FEDCHAIN_ENCRYPTION_PASSWORD"
    auditors: tuple[str, ...] = ()
    org_key: str = ""  # client: seal only to this org public key (hex); "" = the round config's


@dataclass(frozen=True)
class DaemonConfig:
    """One daemon's whole configuration, as loaded from `path`."""

    path: str
    role: str
    chain: ChainConfig
    identity: IdentityConfig
    ipfs: IpfsConfig
    service: ServiceConfig
    federation: FederationConfig | None = None
    training: TrainingConfig | None = None
    data: DataConfig | None = None
    encryption: EncryptionConfig = field(default_factory=EncryptionConfig)
    privacy: PrivacyConfig | None = None
    warmup: WarmupConfig | None = None


SECTIONS: dict[str, type] = {
    "chain": ChainConfig,
    "identity": IdentityConfig,
    "ipfs": IpfsConfig,
    "service": ServiceConfig,
    "federation": FederationConfig,
    "training": TrainingConfig,
    "data": DataConfig,
    "encryption": EncryptionConfig,
    "privacy": PrivacyConfig,
    "warmup": WarmupConfig,
}
ROLE_SECTIONS: dict[str, tuple[str, ...]] = {
    "org": (
        "chain",
        "identity",
        "ipfs",
        "service",
        "federation",
        "training",
        "encryption",
        "privacy",
    ),
    "client": ("chain", "identity", "ipfs", "service", "data", "encryption", "warmup"),
}
REQUIRED_SECTIONS: dict[str, tuple[str, ...]] = {"org": ("federation",), "client": ("data",)}
CHOICES: dict[tuple[str, str], tuple[str, ...]] = {
    ("service", "log_format"): LOG_FORMATS,
    ("training", "optimizer"): OPTIMIZERS,
    ("training", "penalty"): PENALTIES,
    ("encryption", "updates"): UPDATE_MODES,
    ("encryption", "models"): MODEL_MODES,
    ("privacy", "mode"): PRIVACY_MODES,
    ("warmup", "optimizer"): OPTIMIZERS,
    ("warmup", "penalty"): PENALTIES,
}
PATH_KEYS = {("identity", "keystore"), ("service", "state_dir"), ("federation", "eval_data")}
PATH_KEYS |= {("data", "path"), ("encryption", "key_file"), ("privacy", "secret_file")}
PATH_KEYS |= {("encryption", "member_cards")}
PATH_KEYS |= {("service", "compile_cache_dir")}
NON_NEGATIVE = {("chain", "confirmations"), ("federation", "seed"), ("training", "momentum")}
PATH_TABLES = {("federation", "heldout_data")}
NON_NEGATIVE |= {("chain", "fee_bump_after_s"), ("chain", "max_fee_gwei")}
NON_NEGATIVE |= {("chain", "low_balance_eth")}
NON_NEGATIVE |= {("service", "health_port"), ("federation", "retention_rounds")}
NON_NEGATIVE |= {("federation", k) for k in ("max_update_norm", "max_norm_ratio")}
NON_NEGATIVE |= {("federation", "max_samples_per_client")}
NON_NEGATIVE |= {("ipfs", "unreachable_exit_s"), ("chain", "no_block_warn_s")}
NON_NEGATIVE |= {("privacy", "epsilon_budget"), ("privacy", "sample_cap")}


def load_config(path: str | Path, role: str) -> DaemonConfig:
    """Read and validate a daemon TOML file for `role` ("org" or "client")."""
    path = Path(path)
    if role not in ROLES:
        raise ConfigError(f"unknown role {role!r}; allowed: {', '.join(ROLES)}")
    return parse_config(read_toml(path), path, role)


def read_toml(path: Path) -> dict[str, Any]:
    """A TOML file's tables; a missing or malformed file is a ConfigError naming it."""
    try:
        return tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"{path}: config file not found") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None


def parse_config(raw: dict[str, Any], path: Path, role: str) -> DaemonConfig:
    """Validate an already-parsed TOML document (split out so tests need no files)."""
    allowed = ROLE_SECTIONS[role]
    for name in raw:
        if name not in allowed:
            raise ConfigError(
                f"{path}: unknown section [{name}] for a {role} config; "
                f"allowed sections: {', '.join(allowed)}"
            )
    for name in REQUIRED_SECTIONS[role]:
        if name not in raw:
            raise ConfigError(f"{path}: missing section [{name}] (required for a {role})")
    base = path.parent
    sections = {
        name: _build_section(path, base, name, raw.get(name, {}))
        for name in allowed
        if name in raw or name not in REQUIRED_SECTIONS[role]
    }
    if sections.get("federation") is not None:
        sections["federation"] = _resolve_model(path, sections["federation"])
    cfg = DaemonConfig(path=str(path), role=role, **sections)
    _check_cross(cfg)
    return cfg


def _check_name(path: Path, where: str, value: str, builtins: tuple[str, ...]) -> None:
    """A built-in name or a well-formed ``package.module:attribute`` plug-in reference."""
    if registry.is_plugin(value):
        problem = registry.check_plugin_ref(value)
        if problem:
            raise ConfigError(f"{path}: {where}: {problem}")
        return
    if value not in builtins:
        raise ConfigError(
            f"{path}: {where} = {value!r}; allowed values: {', '.join(builtins)} or "
            "'package.module:attribute' of your own"
        )


def _resolve_model(path: Path, fed: FederationConfig) -> FederationConfig:
    """Check task, model and strategy names; model "" becomes a built-in task's default."""
    _check_name(path, "federation.task", fed.task, registry.TASKS)
    _check_name(path, "federation.strategy", fed.strategy, registry.STRATEGIES)
    if registry.is_plugin(fed.task):
        return fed
    models = registry.task_models(fed.task)
    if not fed.model:
        return dataclasses.replace(fed, model=models[0])
    if fed.model not in models:
        raise ConfigError(
            f"{path}: federation.model = {fed.model!r}; allowed values for task "
            f"{fed.task!r}: {', '.join(models)}"
        )
    return fed


def _build_section(path: Path, base: Path, name: str, table: Any) -> Any:
    """Build one section dataclass, checking key names, types, choices and ranges."""
    cls = SECTIONS[name]
    if not isinstance(table, dict):
        raise ConfigError(f"{path}: [{name}] must be a table")
    hints = typing.get_type_hints(cls)
    known = [f.name for f in dataclasses.fields(cls)]
    values: dict[str, Any] = {}
    for key, value in table.items():
        if key not in known:
            raise ConfigError(
                f"{path}: unknown key {name}.{key}; allowed keys in [{name}]: {', '.join(known)}"
            )
        value = _coerce(path, f"{name}.{key}", value, hints[key])
        values[key] = _check_value(path, base, name, key, value)
    for f in dataclasses.fields(cls):
        if (name, f.name) in PATH_KEYS and f.name not in values and f.default:
            values[f.name] = _check_value(path, base, name, f.name, f.default)
    return cls(**values)


def _coerce(path: Path, where: str, value: Any, hint: Any) -> Any:
    """Check `value` against a field type (ints are accepted where floats are expected)."""
    origin = typing.get_origin(hint)
    if origin is tuple:
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise ConfigError(f"{path}: {where} must be a list of strings, got {value!r}")
        return tuple(value)
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{path}: {where} must be a table, got {value!r}")
        return dict(value)
    if isinstance(hint, types.UnionType) or origin is not None:
        return value
    if hint is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if hint is int and isinstance(value, bool):
        raise ConfigError(f"{path}: {where} must be an integer, got {value!r}")
    if not isinstance(value, hint):
        raise ConfigError(f"{path}: {where} must be of type {hint.__name__}, got {value!r}")
    return value


def _check_value(path: Path, base: Path, name: str, key: str, value: Any) -> Any:
    """Apply choice lists, ranges and path resolution to one value."""
    where = f"{name}.{key}"
    choices = CHOICES.get((name, key))
    if choices is not None and value not in choices:
        raise ConfigError(f"{path}: {where} = {value!r}; allowed values: {', '.join(choices)}")
    if isinstance(value, int | float) and not isinstance(value, bool):
        if (name, key) in NON_NEGATIVE and value < 0:
            raise ConfigError(f"{path}: {where} = {value!r}; allowed values: >= 0")
        if (name, key) == ("training", "momentum") and value >= 1:
            raise ConfigError(f"{path}: {where} = {value!r}; allowed values: 0 <= momentum < 1")
        if (name, key) not in NON_NEGATIVE and value <= 0:
            raise ConfigError(f"{path}: {where} = {value!r}; allowed values: > 0")
    if (name, key) in PATH_KEYS and value:
        return str((base / value).resolve()) if not Path(value).is_absolute() else value
    if (name, key) in PATH_TABLES:
        return _path_table(path, base, where, value)
    return value


def _path_table(path: Path, base: Path, where: str, table: dict[str, Any]) -> dict[str, str]:
    """A table of name -> path, each resolved like a path key."""
    out = {}
    for label, value in table.items():
        if not isinstance(value, str) or not value:
            raise ConfigError(f"{path}: {where}.{label} must be a path string, got {value!r}")
        out[label] = str((base / value).resolve()) if not Path(value).is_absolute() else value
    return out


def _check_cross(cfg: DaemonConfig) -> None:
    """Checks that involve several keys (counts, addresses, required paths)."""
    p = cfg.path
    if cfg.federation is not None:
        penalty = cfg.training.penalty if cfg.training else "ewc"
        _check_federation(p, cfg.federation, penalty)
        if cfg.privacy is not None:
            _check_privacy(p, cfg.privacy, cfg.federation, penalty)
    _check_encryption(p, cfg.role, cfg.encryption)
    if cfg.ipfs.chunk_bytes > MAX_CHUNK_BYTES:
        raise ConfigError(
            f"{p}: ipfs.chunk_bytes = {cfg.ipfs.chunk_bytes}; allowed values: 1 to "
            f"{MAX_CHUNK_BYTES} (Kubo's chunker limit)"
        )
    if cfg.data is not None and not cfg.data.path:
        raise ConfigError(f"{p}: data.path is required (an .npz or a directory of IDX files)")
    if cfg.data is not None:
        _check_name(Path(p), "data.task", cfg.data.task, registry.TASKS)
    if cfg.role == "client" and not cfg.chain.contract:
        raise ConfigError(f"{p}: chain.contract is required for a client (the org's address)")
    if cfg.chain.contract and not _is_address(cfg.chain.contract):
        allowed = '"" (org: deploy) or a 0x-prefixed 20-byte hex address (EIP-55 if mixed case)'
        raise _address_error(p, "chain.contract =", cfg.chain.contract, allowed)


def _check_federation(p: str, fed: FederationConfig, penalty: str) -> None:
    """[federation] against itself, the contract's bounds and the training penalty."""
    if fed.max_updates < fed.min_updates:
        raise ConfigError(
            f"{p}: federation.max_updates = {fed.max_updates} must be >= "
            f"federation.min_updates = {fed.min_updates}"
        )
    if fed.strategy == "fedcurv" and penalty != "fedcurv":
        raise ConfigError(
            f'{p}: federation.strategy = "fedcurv" needs training.penalty = "fedcurv" '
            f"(clients must send u, v), got {penalty!r}"
        )
    if fed.round_duration_s > MAX_ROUND_DURATION_S:
        raise ConfigError(
            f"{p}: federation.round_duration_s = {fed.round_duration_s}; allowed values: "
            f"1 to {MAX_ROUND_DURATION_S} (the contract's MAX_DURATION, 30 days)"
        )
    for client in fed.clients:
        if not _is_address(client):
            allowed = "0x-prefixed 20-byte hex addresses (EIP-55 checksummed if mixed case)"
            raise _address_error(p, "federation.clients contains", client, allowed)
    if not fed.eval_data:
        raise ConfigError(f"{p}: federation.eval_data is required (an .npz or IDX dir)")
    if not 0 < fed.max_client_share <= 1:
        raise ConfigError(
            f"{p}: federation.max_client_share = {fed.max_client_share}; allowed values: "
            "> 0 and <= 1 (1 = no cap on one client's aggregation weight)"
        )
    _check_client_names(p, fed)


def _check_client_names(p: str, fed: FederationConfig) -> None:
    """[federation] client_names: address keys among `clients`, distinct non-empty names."""
    listed = {c.lower() for c in fed.clients}
    seen: dict[str, str] = {}
    for address, name in fed.client_names.items():
        where = f"{p}: federation.client_names.{address}"
        if not _is_address(address):
            raise ConfigError(f"{where}: keys must be 0x-prefixed 20-byte hex addresses")
        if listed and address.lower() not in listed:
            raise ConfigError(f"{where}: not in federation.clients; name only listed clients")
        if not isinstance(name, str) or not name.strip():
            raise ConfigError(f"{where} = {name!r}; allowed values: a non-empty string")
        if name in seen:
            raise ConfigError(f"{where} = {name!r}: the same name as {seen[name]}; use distinct")
        seen[name] = address


def _check_encryption(p: str, role: str, enc: EncryptionConfig) -> None:
    """[encryption]: auditors are the org's to name, as 64-hex-digit X25519 public keys."""
    if role == "client" and (enc.auditors or enc.member_cards):
        raise ConfigError(
            f"{p}: encryption.auditors and encryption.member_cards are org settings; a client "
            "takes the org's and auditors' public keys from the round config"
        )
    if role == "org" and enc.models == "members" and not enc.member_cards:
        raise ConfigError(
            f'{p}: encryption.models = "members" needs encryption.member_cards: the members\' '
            "signed key cards (`fedchain keys card` on each client), a file or a directory"
        )
    if role == "org" and enc.org_key:
        raise ConfigError(f"{p}: encryption.org_key is a client setting (the org's own key pin)")
    if len(enc.auditors) > MAX_AUDITORS:
        raise ConfigError(f"{p}: encryption.auditors lists {len(enc.auditors)}; at most 15")
    for key in (*enc.auditors, *([enc.org_key] if enc.org_key else [])):
        if len(key) != 64 or any(c not in "0123456789abcdefABCDEF" for c in key):
            raise ConfigError(
                f"{p}: encryption key {key!r}; allowed values: X25519 public "
                "keys as 64 hex digits (`fedchain keys public FILE` prints one)"
            )
    if len({k.lower() for k in enc.auditors}) != len(enc.auditors):
        raise ConfigError(f"{p}: encryption.auditors lists a key twice")


def _check_privacy(p: str, dp: PrivacyConfig, fed: FederationConfig, penalty: str) -> None:
    """[privacy] against the federation: δ range, no Fisher (unprotected client data)."""
    if not dp.delta < 1:
        raise ConfigError(f"{p}: privacy.delta = {dp.delta}; allowed values: 0 < delta < 1")
    if dp.mode == "off":
        return
    if penalty in ("ewc", "fedcurv") or fed.strategy in ("fedcurv", "fisher_merge"):
        raise ConfigError(
            f"{p}: privacy.mode = {dp.mode!r} needs updates without the Fisher diagonal (client "
            "data DP does not cover): set training.penalty to none or fedprox and a strategy "
            f"other than fedcurv/fisher_merge (got penalty {penalty!r}, strategy {fed.strategy!r})"
        )
    if dp.mode == "central" and (fed.strategy != "fedavg" or fed.strategy_options):
        raise ConfigError(
            f'{p}: privacy.mode = "central" aggregates with DP-FedAvg: federation.strategy must '
            f'be "fedavg" without strategy_options, got {fed.strategy!r} {fed.strategy_options}'
        )


def _is_address(text: str) -> bool:
    """True for a 0x-prefixed 40-hex-digit string whose mixed case, if any, is EIP-55's.

    All-lower or all-upper hex carries no checksum; mixed case is a checksum and must be
    right, so a mistyped address is refused instead of naming an account nobody controls.
    """
    from eth_utils import is_checksum_address

    if len(text) != 42 or not text.startswith("0x"):
        return False
    try:
        int(text[2:], 16)
    except ValueError:
        return False
    digits = text[2:]
    return digits in (digits.lower(), digits.upper()) or bool(is_checksum_address(text))


def _address_error(p: str, key: str, text: str, allowed: str) -> ConfigError:
    """The error for a bad address; a wrong EIP-55 checksum is said so (likely a typo)."""
    hint = ""
    if len(text) == 42 and text.startswith("0x") and _is_address(text.lower()):
        hint = (
            " (its mixed case is not a valid EIP-55 checksum: most likely a mistyped digit; "
            "copy the account's address again)"
        )
    return ConfigError(f"{p}: {key} {text!r}{hint}; allowed values: {allowed}")
