"""Per-class accuracy of a classifier: which labels a model gets right, not only how many.

A federation's overall accuracy hides a class the model forgot (non-IID splits, continual
tasks); the org records this breakdown in each round's manifest for the report.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from models.data import Dataset
from models.networks import Model
from models.training import to_batches
from models.types import Params


@dataclass(frozen=True)
class PerClass:
    """Correct predictions and samples per label (index = class id)."""

    correct: tuple[int, ...]
    num_samples: tuple[int, ...]

    @property
    def accuracy(self) -> tuple[float | None, ...]:
        """Correct / samples per class; None for a class absent from the data."""
        pairs = zip(self.correct, self.num_samples, strict=True)
        return tuple(c / n if n else None for c, n in pairs)


@functools.lru_cache(maxsize=16)
def _counts_fn(model: Model, batch_size: int, k: int) -> Callable[..., jax.Array]:
    """Correct predictions per true label, one ``lax.map`` step per batch (as evaluate does)."""

    def run(params: Params, x: jax.Array, y: jax.Array) -> jax.Array:
        xb, yb, mask = to_batches(x, y, jnp.arange(x.shape[0]), batch_size)

        def one(batch: Any) -> jax.Array:
            bx, by, bm = batch
            hit = (jnp.argmax(model.apply(params, bx), -1) == by) * bm
            return jnp.zeros(k, jnp.float32).at[by].add(hit)

        return jax.lax.map(one, (xb, yb, mask)).sum(axis=0)

    return jax.jit(run)


def is_classification(data: Dataset) -> bool:
    """Integer labels mean a classification task (regression targets are floats)."""
    return bool(np.issubdtype(np.asarray(data.y).dtype, np.integer))


def per_class_accuracy(
    model: Model, params: Params, data: Dataset, batch_size: int = 1000, num_classes: int = 0
) -> PerClass:
    """Count correct argmax predictions per true label, in fixed-size batches.

    `num_classes` 0 means: as many as the highest label seen + 1.
    """
    y = np.asarray(data.y).astype(np.int32)
    k = max(num_classes, int(y.max()) + 1 if len(y) else 0)
    if not len(y):
        return PerClass((0,) * k, (0,) * k)
    size = min(batch_size, len(y))
    correct = np.asarray(_counts_fn(model, size, k)(params, jnp.asarray(data.x), jnp.asarray(y)))
    counts = np.bincount(y, minlength=k)[:k]
    return PerClass(tuple(int(c + 0.5) for c in correct), tuple(int(n) for n in counts))
