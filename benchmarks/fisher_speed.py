"""Fisher diagonal of the 2NN: the dense-layer fast path against ``vmap(grad)``, one run.

Usage: .venv/bin/python benchmarks/fisher_speed.py [--samples 1000] [--batch-size 32] [--repeats 7]
Both paths run ``fisher_diagonal`` on the same params and seeded random inputs (the cost of a
dense network does not depend on the values); the vmap path is the same model without
``apply_with_taps``. Runs alternate vmap / fast / one training epoch (``local_train``, B=10,
for scale) so background load hits all alike; compile is excluded and the median is reported.
The ratio is vmap seconds over fast seconds (> 1: the fast path is faster).
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def _set_threads(threads: int) -> None:
    # Must happen before jax is imported: XLA reads it once.
    os.environ["XLA_FLAGS"] = (
        os.environ.get("XLA_FLAGS", "") + " --xla_cpu_multi_thread_eigen=true"
        f" intra_op_parallelism_threads={threads}"
    ).strip()


def runners(samples: int, batch_size: int) -> dict[str, Callable[[], float]]:
    """Name -> a function that runs once and returns the seconds it took."""
    import jax

    from models.data import Dataset
    from models.fisher import fisher_diagonal
    from models.networks import Model
    from models.tasks.fashion_mnist import get_model
    from models.training import OptimizerRecipe, local_train

    fast = get_model("2nn")
    vmap = dataclasses.replace(fast, name="2nn-vmap", apply_with_taps=None)
    params = fast.init(jax.random.PRNGKey(0))
    rng = np.random.default_rng(0)
    x = rng.random((samples, *fast.input_shape), dtype=np.float32)
    data = Dataset(x, rng.integers(0, 10, samples).astype(np.int32))

    def timed(fn: Callable[[], object]) -> Callable[[], float]:
        def run() -> float:
            start = time.perf_counter()
            jax.block_until_ready(fn())
            return time.perf_counter() - start

        return run

    def fisher(model: Model) -> Callable[[], object]:
        return lambda: fisher_diagonal(model, params, data, batch_size, max_samples=samples)

    return {
        "vmap": timed(fisher(vmap)),
        "fast": timed(fisher(fast)),
        "epoch": timed(lambda: local_train(fast, params, data, OptimizerRecipe())[0]),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=1000)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    args = parser.parse_args()
    _set_threads(args.threads)
    runs = runners(args.samples, args.batch_size)
    for warm in runs.values():
        warm()  # compilation
    times: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(args.repeats):
        for name, run in runs.items():
            times[name].append(run())
    med = {name: statistics.median(t) for name, t in times.items()}
    print(f"2NN, {args.samples} samples, batch {args.batch_size}, {args.threads} threads")
    for name, seconds in med.items():
        print(f"  {name:6s} {seconds * 1e3:8.1f} ms  (min {min(times[name]) * 1e3:.1f} ms)")
    print(f"RESULT fisher_2nn_vmap_s {med['vmap']:.4f} s")
    print(f"RESULT fisher_2nn_fast_s {med['fast']:.4f} s")
    print(f"RESULT train_epoch_2nn_b10_s {med['epoch']:.4f} s")
    print(f"RESULT fisher_2nn_fast_over_vmap {med['vmap'] / med['fast']:.2f} ratio")


if __name__ == "__main__":
    main()
