"""Networks of McMahan et al. 2017 as pure ``init(rng) -> params`` / ``apply(params, x)`` pairs.

Inputs are float32 ``(N, 28, 28, 1)`` in ``[0, 1]``; outputs are ``(N, 10)`` logits.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import jax
import jax.numpy as jnp

from models.types import ModelsError, Params, PRNGKey

NUM_CLASSES = 10
INPUT_SHAPE = (28, 28, 1)

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
    input_shape: tuple[int, ...] = INPUT_SHAPE
    apply_with_taps: TappedApply | None = None


def _dense_init(rng: PRNGKey, fan_in: int, fan_out: int) -> Params:
    """Glorot-uniform weights and zero bias, the usual default for these models."""
    limit = math.sqrt(6.0 / (fan_in + fan_out))
    w = jax.random.uniform(rng, (fan_in, fan_out), jnp.float32, -limit, limit)
    return {"w": w, "b": jnp.zeros((fan_out,), jnp.float32)}


def _conv_init(rng: PRNGKey, size: int, c_in: int, c_out: int) -> Params:
    """Glorot-uniform HWIO kernel and zero bias."""
    fan_in, fan_out = size * size * c_in, size * size * c_out
    limit = math.sqrt(6.0 / (fan_in + fan_out))
    w = jax.random.uniform(rng, (size, size, c_in, c_out), jnp.float32, -limit, limit)
    return {"w": w, "b": jnp.zeros((c_out,), jnp.float32)}


def _dense(p: Params, x: jax.Array) -> jax.Array:
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


def _max_pool_2x2(x: jax.Array) -> jax.Array:
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
        h = _dense(params[name], h)
        if taps is not None:
            h = h + taps[name]
    return h, inputs


def _dense_model(name: str, init: Callable[[PRNGKey], Params], layers: tuple[str, ...]) -> Model:
    """A dense-only network whose ``apply`` and ``apply_with_taps`` share one forward pass."""

    def apply(params: Params, x: jax.Array) -> jax.Array:
        return _dense_stack(layers, params, x, None)[0]

    return Model(name, init, apply, apply_with_taps=functools.partial(_dense_stack, layers))


def _logreg_init(rng: PRNGKey) -> Params:
    return {"out": _dense_init(rng, 784, NUM_CLASSES)}


def _mlp_init(rng: PRNGKey) -> Params:
    k1, k2, k3 = jax.random.split(rng, 3)
    return {
        "fc1": _dense_init(k1, 784, 200),
        "fc2": _dense_init(k2, 200, 200),
        "out": _dense_init(k3, 200, NUM_CLASSES),
    }


def _cnn_init(rng: PRNGKey) -> Params:
    k1, k2, k3, k4 = jax.random.split(rng, 4)
    return {
        "conv1": _conv_init(k1, 5, 1, 32),
        "conv2": _conv_init(k2, 5, 32, 64),
        "fc1": _dense_init(k3, 7 * 7 * 64, 512),
        "out": _dense_init(k4, 512, NUM_CLASSES),
    }


def _cnn_apply(
    params: Params, x: jax.Array, conv: Callable[[jax.Array, jax.Array], jax.Array] = conv_same
) -> jax.Array:
    h = jax.nn.relu(conv(x, params["conv1"]["w"]) + params["conv1"]["b"])
    h = _max_pool_2x2(h)
    h = jax.nn.relu(conv(h, params["conv2"]["w"]) + params["conv2"]["b"])
    h = _max_pool_2x2(h)
    h = jax.nn.relu(_dense(params["fc1"], h.reshape(h.shape[0], -1)))
    return _dense(params["out"], h)


cnn_apply_slices = functools.partial(_cnn_apply, conv=conv_same_slices)
cnn_apply_lax = functools.partial(_cnn_apply, conv=conv_same_lax)

_MODELS: dict[str, Model] = {
    "logreg": _dense_model("logreg", _logreg_init, ("out",)),
    "2nn": _dense_model("2nn", _mlp_init, ("fc1", "fc2", "out")),
    "cnn": Model("cnn", _cnn_init, _cnn_apply),
}
MODEL_NAMES = tuple(_MODELS)


def get_model(name: str) -> Model:
    """The model called ``name``: logistic regression, the 2NN or the CNN of McMahan et al. 2017."""
    try:
        return _MODELS[name]
    except KeyError:
        raise ModelsError(
            f"unknown model {name!r}; choose one of {', '.join(MODEL_NAMES)}"
        ) from None


def num_params(params: Params) -> int:
    """Total number of scalars in a params tree."""
    return sum(int(leaf.size) for leaf in jax.tree_util.tree_leaves(params))
