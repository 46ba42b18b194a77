"""Network building blocks as pure ``init(rng) -> params`` / ``apply(params, x)`` pairs.

Dense and 'SAME' convolution layers, a dense-stack builder with the fast-Fisher taps, and
``Model``. The concrete networks live with their task (Fashion-MNIST's logreg / 2NN / CNN of
McMahan et al. 2017 in ``models/tasks/fashion_mnist.py``, the tabular ones in
``models/tasks/tabular.py``): ``models.tasks.fashion_mnist.get_model`` names Fashion-MNIST's.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import jax
import jax.numpy as jnp

from models import registry
from models.types import Params, PRNGKey

Taps = Mapping[str, jax.Array]
TappedApply = Callable[[Params, jax.Array, Taps], tuple[jax.Array, dict[str, jax.Array]]]


@dataclass(frozen=True)
class Model:
    """A named network: ``init(rng) -> params`` and ``apply(params, x) -> logits``.

    ``apply_with_taps(params, x, taps) -> (logits, inputs)`` is set only for networks made of
    dense layers alone (``params[name] == {"w", "b"}`` for every ``name``): it adds
    ``taps[name]`` to each layer's pre-activation and returns each layer's input, which is all
    that per-example gradients of a dense layer need (models/fisher.py).
    """

    name: str
    init: Callable[[PRNGKey], Params]
    apply: Callable[[Params, jax.Array], jax.Array]
    input_shape: tuple[int, ...] = ()
    apply_with_taps: TappedApply | None = None


def dense_init(rng: PRNGKey, fan_in: int, fan_out: int) -> Params:
    """Glorot-uniform weights and zero bias, the usual default for these models."""
    limit = math.sqrt(6.0 / (fan_in + fan_out))
    w = jax.random.uniform(rng, (fan_in, fan_out), jnp.float32, -limit, limit)
    return {"w": w, "b": jnp.zeros((fan_out,), jnp.float32)}


def conv_init(rng: PRNGKey, size: int, c_in: int, c_out: int) -> Params:
    """Glorot-uniform HWIO kernel and zero bias."""
    fan_in, fan_out = size * size * c_in, size * size * c_out
    limit = math.sqrt(6.0 / (fan_in + fan_out))
    w = jax.random.uniform(rng, (size, size, c_in, c_out), jnp.float32, -limit, limit)
    return {"w": w, "b": jnp.zeros((c_out,), jnp.float32)}


def dense(p: Params, x: jax.Array) -> jax.Array:
    return x @ p["w"] + p["b"]


def conv_same_slices(x: jax.Array, w: jax.Array) -> jax.Array:
    """'SAME' stride-1 NHWC convolution as im2col: shifted views concatenated, one matmul.

    XLA's CPU convolution is ~10x slower than this on the CNN at B=10 (docs/models.md).
    """
    kh, kw, c_in, c_out = w.shape
    n, h, wd, _ = x.shape
    ph, pw = kh // 2, kw // 2
    xp = jnp.pad(x, ((0, 0), (ph, kh - 1 - ph), (pw, kw - 1 - pw), (0, 0)))
    views = [xp[:, i : i + h, j : j + wd, :] for i in range(kh) for j in range(kw)]
    patches = jnp.concatenate(views, axis=-1)  # (n, h, w, kh*kw*c_in), HWI order
    return (patches.reshape(n * h * wd, kh * kw * c_in) @ w.reshape(-1, c_out)).reshape(
        n, h, wd, c_out
    )


def conv_same_lax(x: jax.Array, w: jax.Array) -> jax.Array:
    """'SAME' stride-1 NHWC convolution with ``lax.conv_general_dilated`` (fast on GPU/TPU)."""
    return jax.lax.conv_general_dilated(
        x, w, (1, 1), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC")
    )


def conv_same(x: jax.Array, w: jax.Array) -> jax.Array:
    """Pick the faster convolution for the current JAX backend."""
    if jax.default_backend() == "cpu":
        return conv_same_slices(x, w)
    return conv_same_lax(x, w)


def max_pool_2x2(x: jax.Array) -> jax.Array:
    n, h, w, c = x.shape
    return x.reshape(n, h // 2, 2, w // 2, 2, c).max(axis=(2, 4))


def _dense_stack(
    names: tuple[str, ...], params: Params, x: jax.Array, taps: Taps | None
) -> tuple[jax.Array, dict[str, jax.Array]]:
    """Flatten, then dense layers ``names`` with ReLU between them; logits and layer inputs."""
    inputs: dict[str, jax.Array] = {}
    h = x.reshape(x.shape[0], -1)
    for i, name in enumerate(names):
        if i > 0:
            h = jax.nn.relu(h)
        inputs[name] = h
        h = dense(params[name], h)
        if taps is not None:
            h = h + taps[name]
    return h, inputs


def dense_model(
    name: str,
    init: Callable[[PRNGKey], Params],
    layers: tuple[str, ...],
    input_shape: tuple[int, ...] = (),
) -> Model:
    """A dense-only network whose ``apply`` and ``apply_with_taps`` share one forward pass."""

    def apply(params: Params, x: jax.Array) -> jax.Array:
        return _dense_stack(layers, params, x, None)[0]

    taps = functools.partial(_dense_stack, layers)
    return Model(name, init, apply, input_shape, apply_with_taps=taps)


def dense_stack_init(sizes: tuple[int, ...], names: tuple[str, ...]) -> Callable[..., Params]:
    """``init(rng)`` for dense layers ``names`` of widths ``sizes`` (input width first)."""
    if len(sizes) != len(names) + 1:
        raise ValueError(f"{len(names)} layers need {len(names) + 1} sizes, got {sizes}")

    def init(rng: PRNGKey) -> Params:
        keys = jax.random.split(rng, len(names)) if len(names) > 1 else [rng]
        return {
            name: dense_init(key, sizes[i], sizes[i + 1])
            for i, (name, key) in enumerate(zip(names, keys, strict=True))
        }

    return init


MODEL_NAMES = registry.MODELS


def num_params(params: Params) -> int:
    """Total number of scalars in a params tree."""
    return sum(int(leaf.size) for leaf in jax.tree_util.tree_leaves(params))
