"""Catastrophic forgetting in an in-process federation: FedAvg vs EWC vs FedCurv.

10 clients train on Fashion-MNIST (task A) for K rounds, then on task B for K rounds: the same
images with one fixed pixel permutation (--task-b permute, the default), or, with
--task-b class_split, task A = classes 0-4 and task B = classes 5-9. We report task-A accuracy
after task B (what was kept) and task-B accuracy (what was learned), mean over seeds, and plot
accuracy per round. Model, K, local epochs and lambdas default per task (TASK_DEFAULTS): the
permutation uses a 784-64-64-10 MLP, K=10 and 5 local epochs, because the 2NN trained for 5+5
rounds of 2 epochs hardly forgets a permuted task (docs/models.md, "Forgetting").
EWC (Kirkpatrick et al. 2017) uses the federation's online Fisher F_r = gamma F_{r-1} + mean_r
(Schwarz et al. 2018) around each round's base model; FedCurv (Shoham et al. 2019) uses the
published u/v sums of the previous round. Aggregation is models.strategies (fedavg / fedcurv).
No chain, no IPFS: this isolates the learning dynamics.

Usage: .venv/bin/python benchmarks/forgetting.py [--quick] [--task-b class_split] [--out X.png]
"""

from __future__ import annotations

import argparse
import functools
import math
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from models.data import Dataset, class_split, load_idx_dir, partition_iid, permute_pixels
from models.evaluate import evaluate
from models.fisher import fisher_diagonal, online_fisher
from models.networks import Model
from models.penalties import Penalty, ewc, fedcurv, fedcurv_others
from models.strategies import ClientUpdate, get_strategy
from models.tasks.fashion_mnist import get_model
from models.training import OptimizerRecipe, local_train
from models.types import Params

METHODS = ("fedavg", "ewc", "fedcurv")
EWC_LAMBDA_PERMUTE = 10.0
FEDCURV_LAMBDA_PERMUTE = 10.0
TASK_LABELS = {
    "permute": ("original images", "fixed pixel permutation"),
    "class_split": ("classes 0-4", "classes 5-9"),
}


@dataclass(frozen=True)
class Setup:
    """Clients' task-A and task-B data, the two test sets, and the run's knobs."""

    tasks: tuple[list[Dataset], list[Dataset]]
    tests: tuple[Dataset, Dataset]
    args: argparse.Namespace


@dataclass
class ServerState:
    """What the federation publishes with each base model, plus clients' own FedCurv memory."""

    params: Params
    fisher: Params | None = None
    u_sum: Params | None = None
    v_sum: Params | None = None
    own_uv: dict[str, tuple[Params, Params]] = field(default_factory=dict)


@functools.lru_cache(maxsize=8)
def mlp(hidden: int) -> Model:
    """A 784-hidden-hidden-10 ReLU MLP (the 2NN's shape; the 2NN itself is hidden=200).

    One Model object per width, so that the jitted training/Fisher caches keyed on it hit.
    """

    def dense(rng: jax.Array, fan_in: int, fan_out: int) -> dict[str, jax.Array]:
        limit = math.sqrt(6.0 / (fan_in + fan_out))
        w = jax.random.uniform(rng, (fan_in, fan_out), jnp.float32, -limit, limit)
        return {"w": w, "b": jnp.zeros((fan_out,), jnp.float32)}

    def init(rng: jax.Array) -> Params:
        k1, k2, k3 = jax.random.split(rng, 3)
        return {
            "fc1": dense(k1, 784, hidden),
            "fc2": dense(k2, hidden, hidden),
            "out": dense(k3, hidden, 10),
        }

    def apply(params: Params, x: jax.Array) -> jax.Array:
        h = jax.nn.relu(x.reshape(x.shape[0], -1) @ params["fc1"]["w"] + params["fc1"]["b"])
        h = jax.nn.relu(h @ params["fc2"]["w"] + params["fc2"]["b"])
        return h @ params["out"]["w"] + params["out"]["b"]

    return Model(f"mlp{hidden}", init, apply)


def build_model(args: Any) -> Model:
    """``--model`` from models.networks, or ``mlp`` with ``--hidden`` units per layer."""
    return mlp(args.hidden) if args.model == "mlp" else get_model(args.model)


def build_setup(args: argparse.Namespace, seed: int) -> Setup:
    """Partition a seeded subset of the training set IID over the clients; task B = permuted."""
    train, test = load_idx_dir(args.data)
    rng = np.random.default_rng(seed)
    pool = train.subset(rng.permutation(len(train))[: args.clients * args.samples_per_client])
    parts = partition_iid(pool.y, args.clients, seed)
    test = test.subset(np.arange(args.test_samples))
    if args.task_b == "class_split":
        a_cls, b_cls = range(5), range(5, 10)
        task_a = [class_split(pool.subset(p), a_cls) for p in parts]
        task_b = [class_split(pool.subset(p), b_cls) for p in parts]
        return Setup((task_a, task_b), (class_split(test, a_cls), class_split(test, b_cls)), args)
    task_a = [pool.subset(p) for p in parts]
    perm_seed = 10_000 + seed
    task_b = [permute_pixels(d, perm_seed) for d in task_a]
    return Setup((task_a, task_b), (test, permute_pixels(test, perm_seed)), args)


def client_penalty(method: str, state: ServerState, client: str, args: Any) -> Penalty | None:
    """The penalty a client builds from what the federation published with the base model."""
    if method == "ewc" and state.fisher is not None:
        return ewc(state.params, state.fisher, args.ewc_lambda)
    if method == "fedcurv" and state.u_sum is not None and state.v_sum is not None:
        own = state.own_uv.get(client)
        u, v = fedcurv_others(state.u_sum, state.v_sum, *(own or (None, None)))
        return fedcurv(u, v, args.fedcurv_lambda)
    return None


def client_round(
    method: str, state: ServerState, data: Dataset, client: str, cfg: OptimizerRecipe, args: Any
) -> ClientUpdate:
    """Train locally (with the method's penalty), then compute the Fisher if the method needs it."""
    model = build_model(args)
    penalty = client_penalty(method, state, client, args)
    params, _ = local_train(model, state.params, data, cfg, penalty)
    if method == "fedavg":
        return ClientUpdate(client, params, len(data))
    fisher = fisher_diagonal(model, params, data, max_samples=args.fisher_samples, seed=cfg.seed)
    if method == "fedcurv":
        v = {k: {n: fisher[k][n] * params[k][n] for n in params[k]} for k in params}
        state.own_uv[client] = (fisher, v)
        return ClientUpdate(client, params, len(data), fisher=fisher, u=fisher, v=v)
    return ClientUpdate(client, params, len(data), fisher=fisher)


def run_federation(method: str, setup: Setup, seed: int) -> np.ndarray:
    """Accuracy on (task A, task B) after every round: array (2K, 2)."""
    args = setup.args
    model = build_model(args)
    strategy = get_strategy("fedcurv" if method == "fedcurv" else "fedavg")
    state = ServerState(jax.tree_util.tree_map(np.asarray, model.init(jax.random.PRNGKey(seed))))
    history = []
    for rnd in range(2 * args.rounds):
        datasets = setup.tasks[0 if rnd < args.rounds else 1]
        updates = []
        for i, data in enumerate(datasets):
            cfg = OptimizerRecipe(
                args.epochs,
                args.batch_size,
                args.lr,
                args.optimizer,
                seed=seed * 10**5 + rnd * 100 + i,
            )
            updates.append(client_round(method, state, data, f"client-{i:02d}", cfg, args))
        result = strategy.aggregate(state.params, updates, strategy.init(state.params))
        assert result is not None, "every client trained, so aggregation cannot be empty"
        state.params = result.params
        if method == "ewc" and result.fisher is not None:
            state.fisher = online_fisher(state.fisher, result.fisher, args.gamma)
        state.u_sum, state.v_sum = result.u, result.v
        history.append([evaluate(model, state.params, t).accuracy for t in setup.tests])
    return np.asarray(history)


def plot(curves: dict[str, np.ndarray], rounds: int, labels: tuple[str, str], path: Path) -> None:
    """Accuracy per round on task A and task B, mean over seeds with min/max bands."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4), sharey=True)
    x = np.arange(1, 2 * rounds + 1)
    for method, runs in curves.items():
        for task, ax in enumerate(axes):
            acc = runs[:, :, task] * 100
            ax.plot(x, acc.mean(0), marker="o", label=method)
            ax.fill_between(x, acc.min(0), acc.max(0), alpha=0.2)
    for task, ax in enumerate(axes):
        ax.axvline(rounds + 0.5, color="grey", linestyle="--")
        ax.set_title(f"task {'AB'[task]} test accuracy ({labels[task]})")
        ax.set_xlabel("round (task A, then task B after the dashed line)")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("accuracy (%)")
    axes[0].legend()
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)


# Per-task defaults (docs/models.md, "Forgetting"): each is the setting the docs' tables measured.
# Permuted pixels need a capacity-limited MLP trained long on task B before FedAvg forgets;
# the class split forgets completely with the 2NN after 5+5 rounds of 2 epochs.
TASK_DEFAULTS: dict[str, dict[str, Any]] = {
    "permute": {
        "model": "mlp",
        "hidden": 64,
        "rounds": 10,
        "epochs": 5,
        "ewc_lambda": EWC_LAMBDA_PERMUTE,
        "fedcurv_lambda": FEDCURV_LAMBDA_PERMUTE,
    },
    "class_split": {
        "model": "2nn",
        "hidden": 200,
        "rounds": 5,
        "epochs": 2,
        "ewc_lambda": 2000.0,
        "fedcurv_lambda": 2000.0,
    },
}


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description="FedAvg vs EWC vs FedCurv under a task shift")
    p.add_argument("--quick", action="store_true", help="1 seed, 3+3 rounds, fewer samples")
    p.add_argument("--task-b", default="permute", choices=list(TASK_DEFAULTS))
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--rounds", type=int, help="K rounds per task (default: per task)")
    p.add_argument("--clients", type=int, default=10)
    p.add_argument("--samples-per-client", type=int, default=500)
    p.add_argument("--test-samples", type=int, default=5000)
    p.add_argument("--model", help="logreg, 2nn, cnn, or mlp (see --hidden); default: per task")
    p.add_argument("--hidden", type=int, help="units per layer for --model mlp")
    p.add_argument("--epochs", type=int, help="local epochs per round (default: per task)")
    p.add_argument("--batch-size", type=int, default=10)
    p.add_argument("--lr", type=float, default=0.001)
    p.add_argument("--optimizer", default="adam", choices=["sgd", "adam"])
    p.add_argument("--ewc-lambda", type=float)
    p.add_argument("--fedcurv-lambda", type=float)
    p.add_argument("--gamma", type=float, default=0.9, help="online Fisher decay")
    p.add_argument("--fisher-samples", type=int, default=200)
    p.add_argument("--methods", default=",".join(METHODS))
    p.add_argument("--data", default="/usr/share/datasets/fashion-mnist")
    p.add_argument("--out", type=Path, default=Path("docs/forgetting.png"))
    args = p.parse_args()
    for name, value in TASK_DEFAULTS[args.task_b].items():
        if getattr(args, name) is None:
            setattr(args, name, value)
    if args.quick:
        args.seeds, args.rounds, args.samples_per_client, args.test_samples = 1, 3, 300, 2000
    return args


def main() -> None:
    args = parse_args()
    methods = args.methods.split(",")
    start = time.perf_counter()
    curves = {m: [] for m in methods}  # type: dict[str, list[np.ndarray]]
    for seed in range(args.seeds):
        setup = build_setup(args, seed)
        for method in methods:
            curves[method].append(run_federation(method, setup, seed))
            acc = curves[method][-1][-1] * 100
            print(f"seed {seed} {method:8s} after B: task A {acc[0]:5.1f}%  task B {acc[1]:5.1f}%")
    runs = {m: np.stack(c) for m, c in curves.items()}
    labels = TASK_LABELS[args.task_b]
    plot(runs, args.rounds, labels, args.out)
    print(f"plot: {args.out}  ({time.perf_counter() - start:.0f} s)")
    report(runs, args)


def report(runs: dict[str, np.ndarray], args: argparse.Namespace) -> None:
    """Print the summary table and one RESULT line per headline figure."""
    K = args.rounds
    print(
        f"\n{args.task_b}: {args.clients} clients x {args.samples_per_client} samples, "
        f"{build_model(args).name}, K={K}, {args.epochs} epochs, {args.optimizer} lr {args.lr}, "
        f"{args.seeds} seed(s), ewc_lambda={args.ewc_lambda}, fedcurv_lambda={args.fedcurv_lambda}"
    )
    print("method    A after A   A after B   B after B   (mean over seeds, %)")
    for m, r in runs.items():
        a_a, a_b, b_b = (r[:, K - 1, 0].mean(), r[:, -1, 0].mean(), r[:, -1, 1].mean())
        print(f"{m:8s}  {a_a * 100:9.1f}   {a_b * 100:9.1f}   {b_b * 100:9.1f}")
    for m, r in runs.items():
        print(f"RESULT {m}_task_a_after_b {r[:, -1, 0].mean() * 100:.1f} %")
        print(f"RESULT {m}_task_b_after_b {r[:, -1, 1].mean() * 100:.1f} %")
    if "ewc" in runs and "fedavg" in runs:
        kept = (runs["ewc"][:, -1, 0] - runs["fedavg"][:, -1, 0]).mean() * 100
        lost = (runs["fedavg"][:, -1, 1] - runs["ewc"][:, -1, 1]).mean() * 100
        print(f"RESULT ewc_minus_fedavg_task_a_after_b {kept:.1f} points")
        print(f"RESULT fedavg_minus_ewc_task_b_after_b {lost:.1f} points")


if __name__ == "__main__":
    main()
