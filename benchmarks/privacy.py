"""Accuracy vs ε: DP-FedAvg (central and local noise) on Fashion-MNIST and a tabular task.

An in-process federation (no chain, no IPFS) using the org's and clients' own functions:
`models.dp.DpFedAvg` (central: clipped fixed-weight mean + the org's secret-keyed noise),
`models.dp.privatize_update` (local: each client clips and noises its own change), and the
accountant `models.accountant.noise_for_epsilon` to pick the noise multiplier z whose
`--rounds` rounds compose to ε at δ = 1e-5 (RDP, dp-accounting; every client in every
round, sampling rate 1). ε = ∞ is the clipped mean without noise; `fedavg` is the plain
sample-weighted mean without clipping, for reference.

- fmnist: `--clients` IID shards of the Fashion-MNIST training set, logistic regression,
  each client one epoch of `local_train` (B = 10, lr = 0.05) per round, C = `--clip`;
  test accuracy on the 10,000 test images.
- breast_cancer: the built-in tabular task (`models.tasks`, scikit-learn's
  `load_breast_cancer`: 569 patients, 30 standardised features, its fixed 80/20 split) with
  its logistic model; the 455 training rows dealt to 91 clients of 5 rows each, 5 local
  epochs of one 5-row batch (lr = 0.5) per round, C = `--tab-clip`; accuracy on the 114
  held-out rows.

Prints a markdown table, the time of one DP aggregation relative to plain FedAvg, and one
RESULT line per (task, mode, ε).

  .venv/bin/python benchmarks/privacy.py           # the table in docs/privacy.md
  .venv/bin/python benchmarks/privacy.py --quick   # smoke run (2 rounds, few clients)
"""

from __future__ import annotations

import argparse
import math
import time
from collections.abc import Callable
from dataclasses import dataclass

import jax
import numpy as np

from models.accountant import epsilon_spent, noise_for_epsilon
from models.data import DEFAULT_FASHION_MNIST, load_idx_dir, partition_iid
from models.dp import DpFedAvg, noise_key, privatize_update
from models.evaluate import evaluate
from models.strategies import ClientUpdate, get_strategy
from models.tasks import get_task
from models.tasks.fashion_mnist import get_model
from models.training import OptimizerRecipe, local_train, params_to_numpy

Params = dict
SECRET = b"benchmark-secret-not-for-real-use"
DELTA = 1e-5
EPSILONS = (1.0, 4.0, 8.0, math.inf)


@dataclass(frozen=True)
class BenchTask:
    """A federation to benchmark: initial params, one round of client training, test accuracy."""

    name: str
    init: Params
    train: Callable[[Params, int], list[ClientUpdate]]
    accuracy: Callable[[Params], float]
    clip: float


def fmnist_task(num_clients: int, clip: float) -> BenchTask:
    """Logistic regression on IID shards of Fashion-MNIST, trained with `local_train`."""
    if not DEFAULT_FASHION_MNIST.exists():
        raise SystemExit(f"Fashion-MNIST not found at {DEFAULT_FASHION_MNIST}: run `make setup`")
    train, test = load_idx_dir()
    shards = [train.subset(np.sort(i)) for i in partition_iid(train.y, num_clients, seed=0)]
    model = get_model("logreg")

    def run_round(params: Params, round_id: int) -> list[ClientUpdate]:
        out = []
        for i, shard in enumerate(shards):
            cfg = OptimizerRecipe(batch_size=10, learning_rate=0.05, seed=round_id * 100_003 + i)
            trained, _ = local_train(model, params, shard, cfg)
            out.append(ClientUpdate(f"c{i:05d}", params_to_numpy(trained), len(shard)))
        return out

    init = params_to_numpy(model.init(jax.random.PRNGKey(0)))
    return BenchTask("fmnist", init, run_round, lambda p: evaluate(model, p, test).accuracy, clip)


def tabular_task(rows_per_client: int, clip: float, fraction: float = 1.0) -> BenchTask:
    """The built-in `breast_cancer` task (logreg), its training rows dealt out 5 per client."""
    task = get_task("breast_cancer", "logreg")
    train, test = task.source(None)
    clients = int(len(train) * fraction) // rows_per_client
    order = np.random.default_rng(0).permutation(len(train))[: clients * rows_per_client]
    shards = [train.subset(np.sort(i)) for i in order.reshape(clients, rows_per_client)]

    def run_round(params: Params, round_id: int) -> list[ClientUpdate]:
        out = []
        for i, shard in enumerate(shards):
            cfg = OptimizerRecipe(epochs=5, batch_size=rows_per_client, learning_rate=0.5, seed=i)
            trained, _ = local_train(task, params, shard, cfg)
            out.append(ClientUpdate(f"c{i:05d}", params_to_numpy(trained), len(shard)))
        return out

    init = params_to_numpy(task.init(jax.random.PRNGKey(0)))
    return BenchTask(
        "breast_cancer", init, run_round, lambda p: evaluate(task, p, test).accuracy, clip
    )


def aggregate(
    mode: str, params: Params, updates: list[ClientUpdate], z: float, clip: float, r: int
) -> Params:
    """One round's merge: plain FedAvg, central DP-FedAvg, or local DP then a uniform mean."""
    if mode == "fedavg":
        result = get_strategy("fedavg").aggregate(params, updates)
    elif mode == "central":
        key = noise_key(SECRET, "0x" + "00" * 20, r)
        result = DpFedAvg(clip, z, float(len(updates)), key).aggregate(params, updates)
    else:
        noisy = [
            ClientUpdate(
                u.client,
                privatize_update(params, u.params, clip, z, _client_key(u.client, r))[0],
                1,
            )
            for u in updates
        ]
        result = get_strategy("fedavg").aggregate(params, noisy)
    assert result is not None
    return result.params


def _client_key(client: str, round_id: int) -> jax.Array:
    """A benchmark stand-in for the client's own fresh key (reproducible runs)."""
    return noise_key(SECRET, client, round_id)


def run(task: BenchTask, mode: str, epsilon: float, rounds: int) -> float:
    """Final test accuracy of `rounds` rounds at `epsilon` (z from the accountant)."""
    z = 0.0 if math.isinf(epsilon) else noise_for_epsilon(epsilon, rounds, DELTA)
    params = task.init
    for r in range(1, rounds + 1):
        params = aggregate(mode, params, task.train(params, r), z, task.clip, r)
    return task.accuracy(params)


def aggregation_ratio(task: BenchTask) -> float:
    """Seconds of one central DP-FedAvg aggregation / one plain FedAvg, same updates."""
    updates = task.train(task.init, 1)
    timings = {}
    for mode in ("fedavg", "central"):
        aggregate(mode, task.init, updates, 1.0, task.clip, 1)  # warm (jit)
        started = time.perf_counter()
        for _ in range(3):
            aggregate(mode, task.init, updates, 1.0, task.clip, 1)
        timings[mode] = time.perf_counter() - started
    return timings["central"] / timings["fedavg"]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--clients", type=int, default=600, help="Fashion-MNIST clients")
    parser.add_argument("--clip", type=float, default=0.5, help="Fashion-MNIST clip norm C")
    parser.add_argument("--tab-clip", type=float, default=1.0, help="tabular clip norm C")
    parser.add_argument("--quick", action="store_true", help="2 rounds, 60 clients, ε ∈ {8, ∞}")
    args = parser.parse_args()
    rounds, clients, epsilons = args.rounds, args.clients, EPSILONS
    fraction = 1.0
    if args.quick:
        rounds, clients, epsilons, fraction = 2, 60, (8.0, math.inf), 0.25
    started = time.perf_counter()
    tasks = [fmnist_task(clients, args.clip), tabular_task(5, args.tab_clip, fraction)]
    results: dict[tuple[str, str, float], float] = {}
    for task in tasks:
        results[(task.name, "fedavg", math.inf)] = run(task, "fedavg", math.inf, rounds)
        for mode in ("central", "local"):
            for eps in epsilons:
                results[(task.name, mode, eps)] = run(task, mode, eps, rounds)
                print(
                    f"  {task.name} {mode} ε={eps}: {results[(task.name, mode, eps)]:.4f}",
                    flush=True,
                )
    ratio = aggregation_ratio(tasks[0])
    _print_table(results, tasks, epsilons, rounds)
    print(
        f"\none central DP aggregation / one FedAvg aggregation ({clients} clients, logreg): "
        f"{ratio:.2f}x; wall {time.perf_counter() - started:.0f} s"
    )
    for (name, mode, eps), acc in results.items():
        tag = "inf" if math.isinf(eps) else f"{eps:g}"
        print(f"RESULT privacy_{name}_{mode}_eps{tag}_accuracy {acc:.4f} fraction")
    print(f"RESULT privacy_dp_aggregate_vs_fedavg {ratio:.2f} ratio")


def _print_table(
    results: dict[tuple[str, str, float], float],
    tasks: list[BenchTask],
    epsilons: tuple[float, ...],
    rounds: int,
) -> None:
    zs = {e: (0.0 if math.isinf(e) else noise_for_epsilon(e, rounds, DELTA)) for e in epsilons}
    print(
        f"\n{rounds} rounds, δ = {DELTA:g}; z per ε: "
        + ", ".join(f"ε={e:g}: z={z:.3f}" for e, z in zs.items())
    )
    for e, z in zs.items():
        if z > 0:
            assert epsilon_spent([z] * rounds, DELTA) <= e * (1 + 1e-6)
    head = (
        "| task | fedavg (no DP) | "
        + " | ".join(f"{m} ε={e:g}" for m in ("central", "local") for e in epsilons)
        + " |"
    )
    print(head)
    print("|" + "---|" * (2 + 2 * len(epsilons)))
    for task in tasks:
        cells = [
            f"{results[(task.name, m, e)]:.3f}" for m in ("central", "local") for e in epsilons
        ]
        print(
            f"| {task.name} | {results[(task.name, 'fedavg', math.inf)]:.3f} | "
            + " | ".join(cells)
            + " |"
        )


if __name__ == "__main__":
    main()
