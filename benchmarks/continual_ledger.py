"""The forgetting ledger of `permuted_fashion_mnist` in an in-process FedAvg federation.

The same pure functions as the daemons (the task's init, `local_train`, FedAvg, the task's
metrics) without chain or IPFS: clients learn task B (permuted pixels) from task A's model;
each round prints the accuracy on the task's held-out set `task-a` (what the manifests'
ledger records) and on task B's test images (the eval set).

  .venv/bin/python benchmarks/continual_ledger.py [--rounds 4] [--clients 3] [--samples 300]

Prints one line per round and `RESULT continual_task_a_round_<r> <acc> accuracy` /
`RESULT continual_task_b_round_<r> <acc> accuracy` lines (round 0 = the initial model).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import jax
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from models.evaluate import evaluate
from models.strategies import ClientUpdate, get_strategy
from models.tasks import get_task
from models.training import OptimizerRecipe, local_train


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--clients", type=int, default=3)
    parser.add_argument("--samples", type=int, default=300, help="task-B images per client")
    parser.add_argument("--test", type=int, default=500, help="task-B test images")
    args = parser.parse_args()
    task = get_task("permuted_fashion_mnist")
    held_out = task.read_heldout()["task-a"]
    train, test = task.source(None)
    test = test.subset(np.arange(args.test))
    params = task.init(jax.random.PRNGKey(0))
    fedavg = get_strategy("fedavg")
    for r in range(args.rounds + 1):
        if r > 0:
            updates = []
            for c in range(args.clients):
                data = train.subset(np.arange(c * args.samples, (c + 1) * args.samples))
                config = OptimizerRecipe(epochs=1, batch_size=20, learning_rate=0.1, seed=r)
                trained, _ = local_train(task, params, data, config)
                updates.append(ClientUpdate(str(c), trained, args.samples))
            result = fedavg.aggregate(params, updates, fedavg.init(params))
            assert result is not None
            params = result.params
        acc_a = evaluate(task, params, held_out).metrics["accuracy"]
        acc_b = evaluate(task, params, test).metrics["accuracy"]
        print(f"round {r}: task-a {acc_a:.4f}  task-b {acc_b:.4f}", flush=True)
        print(f"RESULT continual_task_a_round_{r} {acc_a:.4f} accuracy")
        print(f"RESULT continual_task_b_round_{r} {acc_b:.4f} accuracy")


if __name__ == "__main__":
    main()
