"""Diagonal Fisher information for EWC (Kirkpatrick et al. 2017) and FedCurv (Shoham et al. 2019).

We use the *empirical* Fisher: squared per-example gradients of ``log p(y_true | x)`` with the
true label. It is what FL EWC/FedCurv papers and implementations use, it needs one backward
pass per sample (no label sampling, so no extra randomness), and near a trained optimum it
approximates the true Fisher. Per-example gradients come from ``vmap(grad)``, a ``lax.scan``
over fixed-size batches keeps memory at ``batch_size x num_params`` floats.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from models.data import Dataset
from models.networks import Model
from models.training import to_batches
from models.types import ModelsError, Params


def _neg_log_likelihood(model: Model, params: Params, x: jax.Array, y: jax.Array) -> jax.Array:
    logits = model.apply(params, x[None])
    return optax.softmax_cross_entropy_with_integer_labels(logits, y[None])[0]


@functools.lru_cache(maxsize=16)
def _fisher_fn(model: Model, batch_size: int) -> Callable[..., Any]:
    """Jitted sum of squared per-example gradients over padded, masked batches."""
    per_example = jax.vmap(
        jax.grad(functools.partial(_neg_log_likelihood, model)), in_axes=(None, 0, 0)
    )

    def run(params: Params, x: jax.Array, y: jax.Array) -> Params:
        xb, yb, mb = to_batches(x, y, jnp.arange(x.shape[0]), batch_size)

        def step(acc: Params, batch: Any) -> tuple[Params, None]:
            grads = per_example(params, batch[0], batch[1])
            sq = jax.tree_util.tree_map(
                lambda g: jnp.tensordot(batch[2], jnp.square(g), axes=1), grads
            )
            return jax.tree_util.tree_map(jnp.add, acc, sq), None

        zeros = jax.tree_util.tree_map(jnp.zeros_like, params)
        total, _ = jax.lax.scan(step, zeros, (xb, yb, mb))
        return jax.tree_util.tree_map(lambda t: t / x.shape[0], total)

    return jax.jit(run)


def fisher_diagonal(
    model: Model,
    params: Params,
    data: Dataset,
    batch_size: int = 32,
    max_samples: int | None = 1000,
    seed: int = 0,
) -> Params:
    """Mean squared per-example gradient over at most ``max_samples`` samples (seeded subset)."""
    n = len(data)
    if n == 0:
        raise ModelsError("cannot compute a Fisher diagonal on an empty dataset")
    if batch_size < 1:
        raise ModelsError(f"batch_size must be >= 1, got {batch_size}")
    if max_samples is not None and n > max_samples:
        data = data.subset(np.sort(np.random.default_rng(seed).permutation(n)[:max_samples]))
    fn = _fisher_fn(model, min(batch_size, len(data)))
    return fn(params, jnp.asarray(data.x, jnp.float32), jnp.asarray(data.y, jnp.int32))


def online_fisher(prev: Params | None, mean_new: Params, gamma: float) -> Params:
    """Online EWC (Schwarz et al. 2018): ``F_r = gamma * F_{r-1} + mean_new``; prev None -> new."""
    if not 0.0 <= gamma <= 1.0:
        raise ModelsError(f"fisher gamma must be in [0, 1], got {gamma}")
    if prev is None:
        return mean_new
    return jax.tree_util.tree_map(lambda f, m: gamma * f + m, prev, mean_new)
