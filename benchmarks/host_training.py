"""A client host's two ways to train a batch of clients, timed in one process.

"loop": one `local_train` per client (what a host runs on a CPU: each client exactly as a
single client daemon trains it). "vmap": `models.training_many.train_all`, one vmapped call
per epoch for all clients (what a host runs on an accelerator). The same jobs (own seed, own
data, the same base model) are trained both ways, alternating, after one warm-up each; the
figure is the best of --trials. The ratio is vmap time over loop time: above 1, the loop is
faster (`[host] training = "auto"` picks the loop on a CPU for this reason).

    .venv/bin/python benchmarks/host_training.py [--model 2nn] [--clients 16] [--samples 2000]
        [--batch-size 10] [--epochs 1] [--trials 3]
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import jax
import numpy as np

from models.data import Dataset
from models.tasks.fashion_mnist import get_model
from models.training import OptimizerRecipe, local_train
from models.training_many import TrainJob, train_all


def make_jobs(args: argparse.Namespace) -> tuple[object, list[TrainJob]]:
    model = get_model(args.model)
    base = model.init(jax.random.PRNGKey(0))
    rng = np.random.default_rng(0)
    jobs = []
    for seed in range(args.clients):
        x = rng.random((args.samples, 28, 28, 1), dtype=np.float32)
        data = Dataset(x, rng.integers(0, 10, args.samples).astype(np.int32))
        recipe = OptimizerRecipe(args.epochs, args.batch_size, 0.05, seed=seed)
        jobs.append(TrainJob(base, data, recipe))
    return model, jobs


def best_of(trials: int, run: Callable[[], object]) -> float:
    jax.block_until_ready(run())  # compile
    times = []
    for _ in range(trials):
        started = time.perf_counter()
        jax.block_until_ready(run())
        times.append(time.perf_counter() - started)
    return min(times)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="2nn")
    p.add_argument("--clients", type=int, default=16)
    p.add_argument("--samples", type=int, default=2000, help="samples per client")
    p.add_argument("--batch-size", type=int, default=10)
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--trials", type=int, default=3)
    args = p.parse_args()
    model, jobs = make_jobs(args)

    def loop() -> object:
        return [local_train(model, j.params, j.data, j.config, j.penalty)[0] for j in jobs]

    def vmap() -> object:
        return [params for params, _ in train_all(model, jobs)]

    loop_s = best_of(args.trials, loop)
    vmap_s = best_of(args.trials, vmap)
    samples = args.clients * args.samples * args.epochs
    print(
        f"# {args.model}, {args.clients} clients x {args.samples} samples, B={args.batch_size}, "
        f"{args.epochs} epoch(s), backend {jax.default_backend()}, best of {args.trials}"
    )
    print(f"loop  {loop_s:7.3f} s  {samples / loop_s:9.0f} samples/s")
    print(f"vmap  {vmap_s:7.3f} s  {samples / vmap_s:9.0f} samples/s")
    print(f"RESULT host_train_loop {loop_s:.3f} s")
    print(f"RESULT host_train_vmap {vmap_s:.3f} s")
    print(f"RESULT host_train_vmap_vs_loop {vmap_s / loop_s:.2f} ratio")


if __name__ == "__main__":
    main()
