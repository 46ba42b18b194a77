"""Diagonal Fisher information for EWC (Kirkpatrick et al. 2017) and FedCurv (Shoham et al. 2019).

We use the *empirical* Fisher: squared per-example gradients of the task's ``log p(y_true | x)``
(``Task.log_likelihood``: the softmax for classes, a unit Gaussian for regression) at the
true label. It is what FL EWC/FedCurv papers and implementations use, it needs one backward
pass per sample (no label sampling, so no extra randomness), and near a trained optimum it
approximates the true Fisher. A ``lax.scan`` over fixed-size padded batches bounds memory.

Networks made of dense layers alone (``Task.apply_with_taps``) use Goodfellow 2015,
"Efficient per-example gradient computations": for ``z = a W + b`` the per-example gradient of
``W`` is ``a_i (x) delta_i``, so ``sum_i (grad_i W)^2 = (A^2)^T (Delta^2)`` is one matmul and
``sum_i (grad_i b)^2 = sum_i delta_i^2``. ``Delta`` for a whole batch is one backward pass of
``sum_i loss_i`` with respect to zero taps on the pre-activations (the examples are independent).
It is exact, and memory is ``batch_size x num_units``. Other networks use ``vmap(grad)``, with
memory ``batch_size x num_params``.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from models.data import Dataset
from models.networks import Model, TappedApply
from models.task import Task, as_task
from models.training import to_batches
from models.types import ModelsError, Params


def _neg_log_likelihood(task: Task, params: Params, x: jax.Array, y: jax.Array) -> jax.Array:
    return task.nll(task.apply(params, x[None]), y[None])[0]


BatchSquares = Callable[[Params, jax.Array, jax.Array, jax.Array], Params]


def _vmap_squares(task: Task) -> BatchSquares:
    """Masked sum over a batch of squared per-example gradients, from ``vmap(grad)``."""
    per_example = jax.vmap(
        jax.grad(functools.partial(_neg_log_likelihood, task)), in_axes=(None, 0, 0)
    )

    def squares(params: Params, x: jax.Array, y: jax.Array, mask: jax.Array) -> Params:
        grads = per_example(params, x, y)
        return jax.tree_util.tree_map(lambda g: jnp.tensordot(mask, jnp.square(g), axes=1), grads)

    return squares


def _dense_layer_squares(a: jax.Array, delta: jax.Array, mask: jax.Array) -> Params:
    """``sum_i mask_i (a_i (x) delta_i)^2`` and ``sum_i mask_i delta_i^2`` for one dense layer."""
    d2 = jnp.square(delta)
    a2 = jnp.square(a) * mask[:, None]
    return {"w": jnp.matmul(a2.T, d2, precision=jax.lax.Precision.HIGHEST), "b": mask @ d2}


def _dense_squares(task: Task, apply_with_taps: TappedApply) -> BatchSquares:
    """The same sum for a dense-only network: one backward pass and one matmul per layer."""

    def squares(params: Params, x: jax.Array, y: jax.Array, mask: jax.Array) -> Params:
        def total_nll(taps: dict[str, jax.Array]) -> tuple[jax.Array, dict[str, jax.Array]]:
            outputs, inputs = apply_with_taps(params, x, taps)
            return task.nll(outputs, y).sum(), inputs

        zeros = {k: jnp.zeros((x.shape[0], *layer["b"].shape)) for k, layer in params.items()}
        deltas, inputs = jax.grad(total_nll, has_aux=True)(zeros)
        return {k: _dense_layer_squares(inputs[k], deltas[k], mask) for k in params}

    return squares


@functools.lru_cache(maxsize=16)
def _fisher_fn(task: Task, batch_size: int) -> Callable[..., Any]:
    """Jitted sum of squared per-example gradients over padded, masked batches."""
    if task.apply_with_taps is not None:
        squares = _dense_squares(task, task.apply_with_taps)
    else:
        squares = _vmap_squares(task)

    def run(params: Params, x: jax.Array, y: jax.Array) -> Params:
        xb, yb, mb = to_batches(x, y, jnp.arange(x.shape[0]), batch_size)

        def step(acc: Params, batch: Any) -> tuple[Params, None]:
            sq = squares(params, *batch)
            return jax.tree_util.tree_map(jnp.add, acc, sq), None

        zeros = jax.tree_util.tree_map(jnp.zeros_like, params)
        total, _ = jax.lax.scan(step, zeros, (xb, yb, mb))
        return jax.tree_util.tree_map(lambda t: t / x.shape[0], total)

    return jax.jit(run)


def fisher_diagonal(
    model: Model | Task,
    params: Params,
    data: Dataset,
    batch_size: int = 32,
    max_samples: int | None = 1000,
    seed: int = 0,
) -> Params:
    """Mean squared per-example gradient over at most ``max_samples`` samples (seeded subset)."""
    fn, x, y = _fisher_inputs(model, data, batch_size, max_samples, seed)
    return fn(params, x, y)


def _fisher_inputs(
    model: Model | Task, data: Dataset, batch_size: int, max_samples: int | None, seed: int
) -> tuple[Callable[..., Any], jax.Array, jax.Array]:
    n = len(data)
    if n == 0:
        raise ModelsError("cannot compute a Fisher diagonal on an empty dataset")
    if batch_size < 1:
        raise ModelsError(f"batch_size must be >= 1, got {batch_size}")
    if max_samples is not None and n > max_samples:
        data = data.subset(np.sort(np.random.default_rng(seed).permutation(n)[:max_samples]))
    fn = _fisher_fn(as_task(model), min(batch_size, len(data)))
    return fn, jnp.asarray(data.x), jnp.asarray(data.y)


def precompile_fisher_diagonal(
    model: Model | Task,
    params: Params,
    data: Dataset,
    batch_size: int = 32,
    max_samples: int | None = 1000,
    seed: int = 0,
) -> None:
    """Compile what ``fisher_diagonal`` with these arguments runs, without running it."""
    fn, x, y = _fisher_inputs(model, data, batch_size, max_samples, seed)
    jitted: Any = fn  # a jax.jit function: AOT lower/compile
    jitted.lower(params, x, y).compile()


def online_fisher(prev: Params | None, mean_new: Params, gamma: float) -> Params:
    """Online EWC (Schwarz et al. 2018): ``F_r = gamma * F_{r-1} + mean_new``; prev None -> new."""
    if not 0.0 <= gamma <= 1.0:
        raise ModelsError(f"fisher gamma must be in [0, 1], got {gamma}")
    if prev is None:
        return mean_new
    return jax.tree_util.tree_map(lambda f, m: gamma * f + m, prev, mean_new)
