"""Evaluation: accuracy and mean cross-entropy of a model on a dataset, in fixed-size batches."""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import jax
import jax.numpy as jnp

from models.data import Dataset
from models.networks import Model
from models.training import masked_cross_entropy, to_batches
from models.types import ModelsError, Params


@dataclass(frozen=True)
class EvalMetrics:
    """Accuracy in [0, 1], mean cross-entropy loss and the number of samples evaluated."""

    accuracy: float
    loss: float
    num_samples: int


@functools.lru_cache(maxsize=16)
def _eval_fn(model: Model, batch_size: int) -> Callable[..., Any]:
    """Sum of losses and of correct predictions, one ``lax.map`` step per batch (bounded memory)."""

    def run(params: Params, x: jax.Array, y: jax.Array) -> jax.Array:
        batches = to_batches(x, y, jnp.arange(x.shape[0]), batch_size)

        def one(batch: Any) -> jax.Array:
            loss, correct = masked_cross_entropy(model, params, *batch)
            return jnp.stack([loss * batch[2].sum(), correct])

        return jax.lax.map(one, batches).sum(axis=0)

    return jax.jit(run)


def evaluate(model: Model, params: Params, data: Dataset, batch_size: int = 1000) -> EvalMetrics:
    """Accuracy and loss of ``params`` on ``data``."""
    n = len(data)
    if n == 0:
        raise ModelsError("cannot evaluate on an empty dataset")
    batch_size = min(batch_size, n)
    sums = _eval_fn(model, batch_size)(params, jnp.asarray(data.x), jnp.asarray(data.y))
    return EvalMetrics(accuracy=float(sums[1]) / n, loss=float(sums[0]) / n, num_samples=n)
