"""Evaluation: a task's metrics and mean loss of a model on a dataset, in fixed-size batches.

Outputs and per-example losses come from one jitted ``lax.map`` over padded batches (bounded
memory); the task's ``metrics`` then see every output at once on the host, so metrics that
do not decompose per batch (ROC AUC) are exact.
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
from models.task import Task, as_task
from models.training import to_batches
from models.types import ModelsError, Params


@dataclass(frozen=True)
class EvalMetrics:
    """The task's metrics (headline first, then ``loss``) and the number of samples evaluated."""

    metrics: dict[str, float]
    num_samples: int

    @property
    def headline(self) -> str:
        """The name of the metric shown first in tables and plots."""
        return next(iter(self.metrics))

    @property
    def accuracy(self) -> float:
        """Classification accuracy in [0, 1] (KeyError-free: NaN for a task without one)."""
        return self.metrics.get("accuracy", float("nan"))

    @property
    def loss(self) -> float:
        """Mean per-example task loss."""
        return self.metrics["loss"]


@functools.lru_cache(maxsize=16)
def _eval_fn(task: Task, batch_size: int) -> Callable[..., Any]:
    """Outputs and per-example losses, one ``lax.map`` step per batch (bounded memory)."""

    def run(params: Params, x: jax.Array, y: jax.Array) -> tuple[jax.Array, jax.Array]:
        xb, yb, _ = to_batches(x, y, jnp.arange(x.shape[0]), batch_size)

        def one(batch: Any) -> tuple[jax.Array, jax.Array]:
            outputs = task.apply(params, batch[0])
            return outputs, task.loss(outputs, batch[1])

        outputs, losses = jax.lax.map(one, (xb, yb))
        n = x.shape[0]
        return outputs.reshape(-1, *outputs.shape[2:])[:n], losses.reshape(-1)[:n]

    return jax.jit(run)


def predict(model: Model | Task, params: Params, data: Dataset, batch_size: int = 1000) -> Any:
    """``(outputs, per-example losses)`` of ``params`` on ``data`` as host numpy arrays."""
    n = len(data)
    if n == 0:
        raise ModelsError("cannot evaluate on an empty dataset")
    fn = _eval_fn(as_task(model), min(batch_size, n))
    outputs, losses = fn(params, jnp.asarray(data.x), jnp.asarray(data.y))
    return np.asarray(outputs), np.asarray(losses)


def evaluate(
    model: Model | Task, params: Params, data: Dataset, batch_size: int = 1000
) -> EvalMetrics:
    """The task's metrics (headline first) plus the mean ``loss`` of ``params`` on ``data``."""
    task = as_task(model)
    outputs, losses = predict(task, params, data, batch_size)
    metrics = {k: float(v) for k, v in task.metrics(outputs, np.asarray(data.y)).items()}
    if not metrics:
        raise ModelsError(f"task {task.name!r}: metrics() returned no metric")
    metrics.setdefault("loss", float(np.mean(losses, dtype=np.float64)))
    return EvalMetrics(metrics, len(data))
