"""Each built-in task federated vs centrally trained, in one run (issue #11).

An in-process federation (no chain, no IPFS) that calls the same pure functions as the
daemons: the task's split, `local_train` with the round's `OptimizerRecipe` and penalty, the
clients' Fisher, `get_strategy("fedavg")`, online EWC, and the task's metrics on the org's
held-out split. The central baseline trains one model on the union of the clients' data for
the same number of passes over it (rounds x local epochs), with the same optimizer.

  .venv/bin/python benchmarks/tasks.py             # every built-in task (minutes on 2 cores)
  .venv/bin/python benchmarks/tasks.py --quick     # fewer rounds, smaller Fashion-MNIST

Prints a markdown table and `RESULT <task>_federated_<metric>` / `RESULT <task>_central_<metric>`
lines (a task's non-default model adds `_<model>` to the task part).
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass
from typing import Any

import jax
import numpy as np

from daemons.testnet.partition import PartitionPlan, split_indices
from models.data import Dataset
from models.evaluate import evaluate
from models.fisher import fisher_diagonal, online_fisher
from models.penalties import make_penalty
from models.strategies import ClientUpdate, get_strategy
from models.task import Task
from models.tasks import get_task
from models.training import OptimizerRecipe, local_train, params_to_numpy


@dataclass(frozen=True)
class Plan:
    """One benchmark row: a task, its federation and its recipe."""

    task: str
    model: str
    clients: int
    partition: str
    rounds: int
    epochs: int
    penalty: str = "none"
    ewc_lambda: float = 0.0
    batch_size: int = 16
    learning_rate: float = 0.05
    samples_per_client: int = 0
    test_samples: int = 0


PLANS = (
    Plan("fashion_mnist", "2nn", 4, "iid", 5, 2, batch_size=32, learning_rate=0.1,
         samples_per_client=2500, test_samples=5000),
    Plan("breast_cancer", "logreg", 4, "dirichlet", 20, 2),
    Plan("breast_cancer", "mlp", 4, "dirichlet", 20, 2),
    Plan("diabetes", "linear", 4, "iid", 20, 2, penalty="ewc", ewc_lambda=1.0),
    Plan("diabetes", "mlp", 4, "iid", 20, 2, penalty="ewc", ewc_lambda=1.0),
)  # fmt: skip


def _data(task: Task, plan: Plan) -> tuple[list[Dataset], Dataset]:
    train, test = task.source(None)
    split = PartitionPlan(
        plan.partition, plan.clients, seed=0, alpha=0.5, samples_per_client=plan.samples_per_client
    )
    parts = [train.subset(idx) for idx in split_indices(train.y, split, task)]
    if plan.test_samples:
        test = test.subset(np.arange(min(plan.test_samples, len(test))))
    return parts, test


def federated(task: Task, plan: Plan, parts: list[Dataset], test: Dataset) -> dict[str, float]:
    """FedAvg over `plan.rounds` rounds, all clients each round, EWC where the plan says."""
    params = params_to_numpy(task.init(jax.random.PRNGKey(0)))
    fisher: Any = jax.tree_util.tree_map(np.zeros_like, params)
    strategy = get_strategy("fedavg")
    for r in range(plan.rounds):
        updates = []
        for i, data in enumerate(parts):
            config = OptimizerRecipe(
                plan.epochs, plan.batch_size, plan.learning_rate, seed=r * 97 + i
            )
            penalty = make_penalty(plan.penalty, anchor=params, fisher=fisher, lam=plan.ewc_lambda)
            trained, _ = local_train(task, params, data, config, penalty)
            f = fisher_diagonal(task, trained, data) if plan.penalty == "ewc" else None
            f = None if f is None else params_to_numpy(f)
            updates.append(ClientUpdate(f"c{i}", params_to_numpy(trained), len(data), fisher=f))
        result = strategy.aggregate(params, updates)
        assert result is not None
        params = params_to_numpy(result.params)
        if result.fisher is not None:
            fisher = params_to_numpy(online_fisher(fisher, result.fisher, 0.9))
    return evaluate(task, params, test).metrics


def central(task: Task, plan: Plan, parts: list[Dataset], test: Dataset) -> dict[str, float]:
    """One model on the union of the clients' data, rounds x epochs passes."""
    union = Dataset(np.concatenate([p.x for p in parts]), np.concatenate([p.y for p in parts]))
    config = OptimizerRecipe(plan.rounds * plan.epochs, plan.batch_size, plan.learning_rate, seed=0)
    params, _ = local_train(task, task.init(jax.random.PRNGKey(0)), union, config)
    return evaluate(task, params, test).metrics


def _label(plan: Plan) -> str:
    from models import registry

    default = registry.default_model(plan.task)
    return plan.task if plan.model == default else f"{plan.task}_{plan.model}"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="5 rounds, 500 samples per client")
    args = p.parse_args()
    rows = []
    for plan in PLANS:
        if args.quick:
            plan = Plan(**{**plan.__dict__, "rounds": min(plan.rounds, 5)})
            if plan.task == "fashion_mnist":
                plan = Plan(**{**plan.__dict__, "samples_per_client": 500, "test_samples": 1000})
        task = get_task(plan.task, plan.model)
        parts, test = _data(task, plan)
        started = time.perf_counter()
        fed = federated(task, plan, parts, test)
        cen = central(task, plan, parts, test)
        rows.append((plan, fed, cen, time.perf_counter() - started))
    print("| task | model | clients, split | rounds x epochs | metric | federated | central |")
    print("|---|---|---|---|---|---|---|")
    for plan, fed, cen, _ in rows:
        for metric in (m for m in fed if m != "loss"):
            split = f"{plan.clients}, {plan.partition}"
            print(
                f"| {plan.task} | {plan.model} | {split} | {plan.rounds} x {plan.epochs} | "
                f"{metric} | {fed[metric]:.4f} | {cen[metric]:.4f} |"
            )
    for plan, fed, cen, _ in rows:
        unit = "target_units" if plan.task == "diabetes" else "fraction"
        for metric in (m for m in fed if m != "loss"):
            print(f"RESULT {_label(plan)}_federated_{metric} {fed[metric]:.4f} {unit}")
            print(f"RESULT {_label(plan)}_central_{metric} {cen[metric]:.4f} {unit}")


if __name__ == "__main__":
    main()
