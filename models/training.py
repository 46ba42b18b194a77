"""Local training: one jitted ``lax.scan`` over shuffled minibatches per epoch.

ClientUpdate of FedAvg (McMahan et al. 2017).

The ragged last batch is padded (with repeated samples) and masked out of the loss, so every
sample counts exactly once per epoch and all batches share one shape (one compilation).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from models import registry
from models.data import Dataset
from models.networks import Model
from models.penalties import Penalty
from models.task import Task, as_task
from models.types import ModelsError, Params

OPTIMIZERS = registry.OPTIMIZERS
# Two steps per loop iteration: ~8% more samples/s for the CNN at B=10 on 2 CPU cores
# (4 was no better); see docs/models.md.
SCAN_UNROLL = 2


class TrainingError(ModelsError):
    """A training configuration or input is invalid."""


@dataclass(frozen=True)
class OptimizerRecipe:
    """The optimizer recipe of local training (from the round's `[training]` table + a seed);
    every client of a round uses the same one."""

    epochs: int = 1
    batch_size: int = 10
    learning_rate: float = 0.05
    optimizer: str = "sgd"
    momentum: float = 0.0
    seed: int = 0

    def __post_init__(self) -> None:
        if self.epochs < 1 or self.batch_size < 1:
            raise TrainingError(f"epochs and batch_size must be >= 1, got {self}")
        if not self.learning_rate > 0:
            raise TrainingError(f"learning_rate must be > 0, got {self.learning_rate}")
        if not 0.0 <= self.momentum < 1.0:
            raise TrainingError(f"momentum must be in [0, 1), got {self.momentum}")
        if self.optimizer not in OPTIMIZERS:
            raise TrainingError(
                f"unknown optimizer {self.optimizer!r}; choose one of {', '.join(OPTIMIZERS)}"
            )


@dataclass(frozen=True)
class TrainMetrics:
    """Last-epoch mean training loss (task loss + penalty at the final params), accuracy.

    ``accuracy`` is None for a task whose labels are not classes (regression).
    """

    loss: float
    accuracy: float | None
    num_samples: int


def make_optimizer(config: OptimizerRecipe) -> optax.GradientTransformation:
    """The optax optimizer named by the config."""
    if config.optimizer == "adam":
        return optax.adam(config.learning_rate)
    return optax.sgd(config.learning_rate, momentum=config.momentum or None)


def make_transform(
    config: OptimizerRecipe, penalty: Penalty | None
) -> optax.GradientTransformation:
    """The penalty's gradient transform chained before the optimizer (STYLE.md: EWC as optax)."""
    opt = make_optimizer(config)
    return opt if penalty is None else optax.chain(penalty.transform(), opt)


def batch_indices(order: jax.Array, batch_size: int) -> tuple[jax.Array, jax.Array]:
    """``order`` as ``(num_batches, batch_size)`` sample indices, padded by repeating it, and
    the mask that leaves the padding out."""
    n = order.shape[0]
    num_batches = -(-n // batch_size)
    idx = jnp.resize(order, (num_batches * batch_size,))
    mask = (jnp.arange(num_batches * batch_size) < n).astype(jnp.float32)
    shape = (num_batches, batch_size)
    return idx.reshape(shape), mask.reshape(shape)


def gather_batch(x: jax.Array, y: jax.Array, idx: jax.Array) -> tuple[jax.Array, jax.Array]:
    """The samples ``idx`` of ``x`` and ``y`` (indices from `batch_indices`: in bounds)."""
    return x.at[idx].get(mode="promise_in_bounds"), y.at[idx].get(mode="promise_in_bounds")


def to_batches(
    x: jax.Array, y: jax.Array, order: jax.Array, batch_size: int
) -> tuple[jax.Array, jax.Array, jax.Array]:
    """Gather ``order`` into ``(num_batches, batch_size, ...)``, padded; returns x, y, mask."""
    idx, mask = batch_indices(order, batch_size)
    xb, yb = gather_batch(x, y, idx.reshape(-1))
    return xb.reshape(idx.shape + x.shape[1:]), yb.reshape(idx.shape + y.shape[1:]), mask


def masked_loss(
    task: Task, params: Params, x: jax.Array, y: jax.Array, mask: jax.Array
) -> tuple[jax.Array, jax.Array]:
    """Mean task loss over the unmasked samples, and how many are correct (0 if not classes)."""
    outputs = task.apply(params, x)
    losses = task.loss(outputs, y)
    count = jnp.maximum(mask.sum(), 1.0)
    if task.classification:
        correct = jnp.sum((jnp.argmax(outputs, -1) == y) * mask)
    else:
        correct = jnp.float32(0.0)
    return jnp.sum(losses * mask) / count, correct


def masked_cross_entropy(
    model: Model | Task, params: Params, x: jax.Array, y: jax.Array, mask: jax.Array
) -> tuple[jax.Array, jax.Array]:
    """``masked_loss`` of a Model's (cross-entropy) task; kept for callers of the old name."""
    return masked_loss(as_task(model), params, x, y, mask)


def _train_step(
    task: Task,
    tx: optax.GradientTransformation,
    x: jax.Array,
    y: jax.Array,
    carry: Any,
    batch: tuple[jax.Array, jax.Array],
) -> tuple[Any, jax.Array]:
    params, opt_state = carry
    idx, mb = batch
    # Gathered here, a batch at a time, not the whole shuffled epoch before the scan: the
    # epoch-sized copy cost about a fifth of a 2NN epoch on this CPU (docs/models.md); same bits.
    xb, yb = gather_batch(x, y, idx)
    (loss, correct), grads = jax.value_and_grad(functools.partial(masked_loss, task), has_aux=True)(
        params, xb, yb, mb
    )
    updates, opt_state = tx.update(grads, opt_state, params)
    params = optax.apply_updates(params, updates)
    return (params, opt_state), jnp.stack([loss * mb.sum(), correct])


@functools.lru_cache(maxsize=64)
def _epoch_fn(task: Task, config: OptimizerRecipe) -> Callable[..., Any]:
    """One jitted epoch per (model, optimizer config); jit itself caches per shapes/penalty kind."""
    return jax.jit(epoch_body(task, config), donate_argnums=(0, 1))


def epoch_body(task: Task, config: OptimizerRecipe) -> Callable[..., Any]:
    """One epoch, not yet jitted: `(params, opt_state, x, y, key, penalty) -> (params,
    opt_state, [loss sum, correct])`; models.training_many vmaps it across clients."""

    def epoch(
        params: Params, opt_state: Any, x: jax.Array, y: jax.Array, key: jax.Array, penalty: Any
    ) -> tuple[Params, Any, jax.Array]:
        tx = make_transform(config, penalty)
        order = jax.random.permutation(key, x.shape[0])
        batches = batch_indices(order, config.batch_size)
        step = functools.partial(_train_step, task, tx, x, y)
        (params, opt_state), sums = jax.lax.scan(
            step, (params, opt_state), batches, unroll=SCAN_UNROLL
        )
        return params, opt_state, sums.sum(axis=0)

    return epoch


def cache_key(config: OptimizerRecipe) -> OptimizerRecipe:
    # The seed and epoch count are runtime inputs; keying on them would recompile per round.
    return OptimizerRecipe(
        1, config.batch_size, config.learning_rate, config.optimizer, config.momentum
    )


@jax.jit
def penalty_value(penalty: Penalty, params: Params) -> jax.Array:
    return penalty.value(params)


def local_train(
    model: Model | Task,
    params: Params,
    data: Dataset,
    config: OptimizerRecipe,
    penalty: Penalty | None = None,
) -> tuple[Params, TrainMetrics]:
    """Train ``params`` on ``data`` for ``config.epochs`` epochs; deterministic for a seed."""
    task, fn, params, opt_state, x, y = _prepare(model, params, data, config, penalty)
    base_key = jax.random.PRNGKey(config.seed)
    sums = jnp.zeros(2)
    for epoch in range(config.epochs):
        key = jax.random.fold_in(base_key, epoch)
        params, opt_state, sums = fn(params, opt_state, x, y, key, penalty)
    return params, _metrics(task, sums, penalty, params, len(data))


def _prepare(
    model: Model | Task, params: Params, data: Dataset, config: OptimizerRecipe, penalty: Any
) -> tuple[Task, Callable[..., Any], Params, Any, jax.Array, jax.Array]:
    if len(data) == 0:
        raise TrainingError("cannot train on an empty dataset")
    task = as_task(model)
    fn = _epoch_fn(task, cache_key(config))
    # Copy, so donating buffers to the jitted epoch never invalidates the caller's arrays.
    params = jax.tree_util.tree_map(lambda a: jnp.array(a, jnp.float32, copy=True), params)
    opt_state = make_transform(config, penalty).init(params)
    return task, fn, params, opt_state, jnp.asarray(data.x), jnp.asarray(data.y)


def _metrics(task: Task, sums: jax.Array, penalty: Any, params: Params, n: int) -> TrainMetrics:
    loss = float(sums[0]) / n + (0.0 if penalty is None else float(penalty_value(penalty, params)))
    accuracy = float(sums[1]) / n if task.classification else None
    return TrainMetrics(loss, accuracy, n)


def precompile_local_train(
    model: Model | Task,
    params: Params,
    data: Dataset,
    config: OptimizerRecipe,
    penalty: Penalty | None = None,
) -> None:
    """Compile what ``local_train`` with these arguments runs, without training.

    The epoch is lowered and compiled ahead of time (jit reuses that executable for the same
    shapes); the few eager ops around it run once on the same shapes. A later
    ``local_train`` with the same shapes, recipe and penalty kind compiles nothing
    (tests/models/test_precompile.py).
    """
    task, fn, params, opt_state, x, y = _prepare(model, params, data, config, penalty)
    key = jax.random.fold_in(jax.random.PRNGKey(config.seed), 0)
    jitted: Any = fn  # a jax.jit function: AOT lower/compile
    jitted.lower(params, opt_state, x, y, key, penalty).compile()
    _metrics(task, jnp.zeros(2), penalty, params, len(data))


def params_to_numpy(params: Params) -> Params:
    """A host copy of a params tree (float32 numpy arrays)."""
    return jax.tree_util.tree_map(lambda a: np.asarray(a, np.float32), params)
