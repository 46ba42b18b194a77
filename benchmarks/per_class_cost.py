"""Cost of the org's per-class accuracy next to its plain evaluation, on the test split.

Times `models.evaluate.evaluate` and `models.per_class.per_class_accuracy` on the same
10 000 Fashion-MNIST test images, after one warm-up call each (compilation excluded), and
prints the ratio measured in this one run (the absolute times depend on the machine's load).
"""

from __future__ import annotations

import argparse
import time

import jax

from models.data import load_idx_dir
from models.evaluate import evaluate
from models.per_class import per_class_accuracy
from models.tasks.fashion_mnist import get_model


def best_of(fn: object, repeats: int) -> float:
    """The fastest of `repeats` timed calls (the least disturbed by other processes)."""
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        fn()  # type: ignore[operator]
        times.append(time.perf_counter() - started)
    return min(times)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--models", nargs="+", default=["2nn", "cnn"])
    p.add_argument("--repeats", type=int, default=3)
    a = p.parse_args()
    _, test = load_idx_dir()
    for name in a.models:
        model = get_model(name)
        params = model.init(jax.random.PRNGKey(0))
        evaluate(model, params, test)
        per_class_accuracy(model, params, test)
        ev = best_of(lambda: evaluate(model, params, test), a.repeats)  # noqa: B023
        pc = best_of(lambda: per_class_accuracy(model, params, test), a.repeats)  # noqa: B023
        print(f"{name}: evaluate {ev:.3f} s, per_class_accuracy {pc:.3f} s")
        print(f"RESULT per_class_cost_{name} {pc / ev:.2f} ratio")


if __name__ == "__main__":
    main()
