"""What a testnet run is made of: the user's options, validated once, and the run-dir layout."""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from daemons.client.host_config import TRAINING_MODES
from daemons.errors import ConfigError, FedchainError
from models import registry

DEFAULT_DATA_DIR = Path("/usr/share/datasets/fashion-mnist")
# The names live in models.registry (JAX-free); these aliases keep old imports working.
MODELS = registry.MODELS
PARTITIONS = registry.PARTITIONS
# the EVM node `testnet up` starts (daemons/testnet/nodes/): anvil, or npm ganache / hardhat
CHAINS = ("anvil", "ganache", "hardhat")
PENALTIES = registry.PENALTIES
STRATEGIES = registry.STRATEGIES
DP_MODES = ("off", "central", "local")
DP_DELTA = 1e-5  # the org's default [privacy] delta


class TestnetError(FedchainError):
    """The testnet could not start, a process died, or a run dir is in the wrong state."""

    __test__ = False


@dataclass(frozen=True)
class NetSpec:
    """Every option of `fedchain testnet up`; defaults are the `make demo` federation."""

    run_dir: Path
    clients: int = 4
    clients_per_host: int = (
        0  # 0: auto (one daemon each up to 16 clients); daemons/testnet/hosts.py
    )
    host_training: str = "auto"  # the hosts' `[host] training`: auto | loop | vmap
    rounds: int = 5
    task: str = registry.DEFAULT_TASK
    model: str = ""  # "" = the task's default model (fashion_mnist: 2nn)
    strategy: str = "fedavg"
    penalty: str = "ewc"
    ewc_lambda: float = 0.0
    partition: str = "iid"
    alpha: float = 0.5
    shards_per_client: int = 2
    block_time_s: float | None = None
    chain: str = "anvil"  # CHAINS
    keep_running: bool = False
    ipfs_api: str | None = None
    epochs: int = 5
    batch_size: int = 32
    learning_rate: float = 0.1
    samples_per_client: int = 0
    test_samples: int = 0
    round_duration_s: int = 300
    min_updates: int = 1
    seed: int = 0
    data_dir: Path | None = None  # the task's full data set; None = its default source
    xla_threads: int = 1
    # pin each client daemon to `xla_threads` CPUs (round-robin); None: auto (`pins_clients`)
    pin_cpus: bool | None = None
    swarm_key: bool = True  # bundled nodes form a private network (a fresh swarm.key per run)
    encrypt_updates: bool = False  # clients seal updates to the org's X25519 key
    models: str = "public"  # public | members: models sealed to every client's card key
    dp: str = "off"  # [privacy] mode: off | central | local (docs/privacy.md)
    dp_clip_norm: float = 1.0
    dp_noise_multiplier: float = 1.0
    dp_epsilon_budget: float = 0.0  # 0: none

    def to_json(self) -> dict[str, Any]:
        """A JSON-safe dict (paths as strings) for the run dir's state file."""
        out = dataclasses.asdict(self)
        return {k: str(v) if isinstance(v, Path) else v for k, v in out.items()}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> NetSpec:
        """Inverse of `to_json`."""
        fields = {f.name for f in dataclasses.fields(cls)}
        kwargs = {k: v for k, v in data.items() if k in fields}
        kwargs["run_dir"] = Path(kwargs["run_dir"])
        data_dir = kwargs.get("data_dir")
        kwargs["data_dir"] = Path(data_dir) if data_dir and data_dir != "None" else None
        return cls(**kwargs)


AUTO_SOLO_MAX = 16  # up to this many clients, one daemon each (the demo's layout)
AUTO_PER_HOST = 50  # above, hosts of this many: 100 clients = 2 host processes


def pins_clients(spec: NetSpec, available: Collection[int] | None = None) -> bool:
    """Whether the client daemons run pinned: as `--pin-cpus` / `--no-pin-cpus` say; auto
    (None): when there are client daemons (not hosts) and their XLA threads fill the CPUs.

    Then their pools share the cores anyway, and pinned they do not fight over them: on this
    2-CPU machine four copies of a demo client's training run at once took 3.0-3.2 s each
    pinned, 4.3-4.8 s not (in the demo itself the gain is within the VM's noise in some runs;
    docs/testnet.md). Below that, each daemon keeps a pool as large as the machine.
    """
    if spec.pin_cpus is not None:
        return spec.pin_cpus
    if clients_per_host(spec.clients, spec.clients_per_host):
        return False  # hosts keep every CPU (one JAX runtime for many clients)
    cpus = len(os.sched_getaffinity(0) if available is None else available)
    return spec.xla_threads < cpus <= spec.clients * spec.xla_threads


def clients_per_host(clients: int, per_host: int) -> int:
    """How many clients each host runs; 0: one client daemon per client (no hosts)."""
    if per_host > 0:
        return per_host
    return 0 if clients <= AUTO_SOLO_MAX else AUTO_PER_HOST


def _check(ok: bool, option: str, got: object, allowed: str) -> None:
    if not ok:
        raise ConfigError(f"testnet option {option}={got!r} is invalid: use {allowed}")


def validate(spec: NetSpec) -> NetSpec:
    """Reject bad options with a message naming the option and its allowed values."""
    _check(1 <= spec.clients <= 1000, "--clients", spec.clients, "an integer from 1 to 1000")
    _check(
        spec.clients_per_host >= 0, "--clients-per-host", spec.clients_per_host, ">= 0 (0: auto)"
    )
    solo = clients_per_host(spec.clients, spec.clients_per_host) == 0
    allowed = "at most 64 clients with one daemon each; pass --clients-per-host for more"
    _check(not solo or spec.clients <= 64, "--clients", spec.clients, allowed)
    _check(1 <= spec.rounds <= 10_000, "--rounds", spec.rounds, "an integer >= 1")
    modes = " | ".join(TRAINING_MODES)
    _check(spec.host_training in TRAINING_MODES, "--host-training", spec.host_training, modes)
    spec = _resolve_names(spec)
    _check(spec.partition in PARTITIONS, "--partition", spec.partition, " | ".join(PARTITIONS))
    _check(spec.penalty in PENALTIES, "--penalty", spec.penalty, " | ".join(PENALTIES))
    _check(spec.ewc_lambda >= 0, "--ewc-lambda", spec.ewc_lambda, "a number >= 0")
    _check(spec.alpha > 0, "--alpha", spec.alpha, "a number > 0")
    _check(spec.shards_per_client >= 1, "--shards-per-client", spec.shards_per_client, ">= 1")
    _check(spec.chain in CHAINS, "--chain", spec.chain, " | ".join(CHAINS))
    bt = spec.block_time_s
    _check(bt is None or bt > 0, "--block-time", bt, "seconds > 0 (omit for automine)")
    _check(spec.epochs >= 1, "--epochs", spec.epochs, "an integer >= 1")
    _check(spec.batch_size >= 1, "--batch-size", spec.batch_size, "an integer >= 1")
    _check(spec.learning_rate > 0, "--learning-rate", spec.learning_rate, "a number > 0")
    _check(spec.samples_per_client >= 0, "--samples-per-client", spec.samples_per_client, ">= 0")
    _check(spec.test_samples >= 0, "--test-samples", spec.test_samples, ">= 0 (0 = all)")
    _check(spec.round_duration_s >= 5, "--round-duration", spec.round_duration_s, ">= 5 s")
    _check(
        1 <= spec.min_updates <= spec.clients,
        "--min-updates",
        spec.min_updates,
        f"1..{spec.clients} (the number of clients)",
    )
    _check(spec.xla_threads >= 1, "--xla-threads", spec.xla_threads, "an integer >= 1")
    _check_dp(spec)
    _check(spec.models in ("public", "members"), "--models", spec.models, "public | members")
    api = spec.ipfs_api
    ok = api is None or api.startswith(("http://", "https://"))
    _check(ok, "--ipfs-api", api, "a Kubo RPC URL such as http://127.0.0.1:5001")
    return spec


def _check_name(option: str, value: str, builtins: tuple[str, ...]) -> None:
    if registry.is_plugin(value):
        problem = registry.check_plugin_ref(value)
        _check(problem is None, option, value, "'package.module:attribute'")
        return
    _check(value in builtins, option, value, " | ".join(builtins) + " | package.module:attr")


def _resolve_names(spec: NetSpec) -> NetSpec:
    """Check --task, --model and --strategy; an empty --model becomes the task's default."""
    _check_name("--task", spec.task, registry.TASKS)
    _check_name("--strategy", spec.strategy, registry.STRATEGIES)
    if registry.is_plugin(spec.task):
        return spec
    models = registry.task_models(spec.task)
    model = spec.model or models[0]
    _check(model in models, "--model", model, f"{' | '.join(models)} for task {spec.task}")
    return dataclasses.replace(spec, model=model)


def _check_dp(spec: NetSpec) -> None:
    """The DP options (the org's config checks repeat this; here it fails before any start)."""
    _check(spec.dp in DP_MODES, "--dp", spec.dp, " | ".join(DP_MODES))
    if spec.dp == "off":
        return
    _check(spec.dp_clip_norm > 0, "--dp-clip", spec.dp_clip_norm, "a number > 0")
    _check(spec.dp_noise_multiplier > 0, "--dp-noise", spec.dp_noise_multiplier, "a number > 0")
    _check(spec.dp_epsilon_budget >= 0, "--dp-budget", spec.dp_epsilon_budget, ">= 0 (0: none)")
    plain = spec.penalty in ("none", "fedprox") or (spec.penalty == "ewc" and not spec.ewc_lambda)
    no_fisher = plain and spec.strategy not in ("fedcurv", "fisher_merge")
    allowed = "none | fedprox (or ewc with --ewc-lambda 0) and a strategy without the Fisher"
    _check(no_fisher, "--penalty", spec.penalty, allowed + " with --dp")
    ok = spec.dp != "central" or spec.strategy == "fedavg"
    _check(ok, "--strategy", spec.strategy, "fedavg with --dp central (DP-FedAvg)")
    if spec.dp_epsilon_budget > 0:  # the run waits for --rounds rounds: they must all fit
        from models.accountant import rounds_within

        fit = rounds_within(spec.dp_noise_multiplier, DP_DELTA, spec.dp_epsilon_budget, spec.rounds)
        allowed = f"a budget that covers all --rounds (it allows {fit} of {spec.rounds} at z = "
        _check(fit >= spec.rounds, "--dp-budget", spec.dp_epsilon_budget, allowed + "--dp-noise)")


@dataclass(frozen=True)
class RunDir:
    """The layout of one run: logs/, configs/, data/, ipfs/, state/, plots/, report.html."""

    root: Path

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    @property
    def configs(self) -> Path:
        return self.root / "configs"

    @property
    def data(self) -> Path:
        return self.root / "data"

    @property
    def ipfs(self) -> Path:
        return self.root / "ipfs"

    @property
    def state(self) -> Path:
        return self.root / "state"

    @property
    def plots(self) -> Path:
        return self.root / "plots"

    @property
    def cache(self) -> Path:
        """Kept across runs in the same run dir: compile caches, the data split."""
        return self.root / "cache"

    @property
    def report_html(self) -> Path:
        return self.root / "report.html"

    @property
    def net_file(self) -> Path:
        """Written once the net is up: endpoints, contract, pids (read by `testnet down`)."""
        return self.root / "testnet.json"

    def subdirs(self) -> tuple[Path, ...]:
        return (self.logs, self.configs, self.data, self.ipfs, self.state, self.plots)

    def create(self) -> None:
        for d in self.subdirs():
            d.mkdir(parents=True, exist_ok=True)


def read_net_file(run: RunDir) -> dict[str, Any]:
    """The state file of a started net, or a clear error if there is none."""
    try:
        data: dict[str, Any] = json.loads(run.net_file.read_text())
    except FileNotFoundError:
        raise TestnetError(
            f"{run.net_file} not found: no testnet was started in {run.root} "
            "(pass the --run-dir you gave to `fedchain testnet up`)"
        ) from None
    except json.JSONDecodeError as e:
        raise TestnetError(f"{run.net_file} is not valid JSON ({e}); delete the run dir") from e
    return data


def write_net_file(run: RunDir, data: dict[str, Any]) -> None:
    """Atomically replace the state file."""
    tmp = run.net_file.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True))
    tmp.replace(run.net_file)
