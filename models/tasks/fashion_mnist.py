"""Fashion-MNIST (Xiao et al. 2017) with the networks of McMahan et al. 2017.

Inputs are float32 ``(N, 28, 28, 1)`` in ``[0, 1]``; outputs are ``(N, 10)`` logits. With its data
side (fashion_mnist_data.py, JAX-free) the only place in fedchain that knows these numbers
(tests/models/test_no_fashion_literals.py).
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import jax

from models import registry
from models.networks import (
    Model,
    conv_init,
    conv_same,
    conv_same_lax,
    conv_same_slices,
    dense,
    dense_init,
    dense_model,
    max_pool_2x2,
)
from models.task import InputSpec, Task
from models.tasks.fashion_mnist_data import INPUT_SHAPE, NUM_CLASSES, load, save_uint8, source
from models.types import ModelsError, Params, PRNGKey

SPEC = InputSpec(INPUT_SHAPE, "float32", (), "int32")


def _logreg_init(rng: PRNGKey) -> Params:
    return {"out": dense_init(rng, 784, NUM_CLASSES)}


def _mlp_init(rng: PRNGKey) -> Params:
    k1, k2, k3 = jax.random.split(rng, 3)
    return {
        "fc1": dense_init(k1, 784, 200),
        "fc2": dense_init(k2, 200, 200),
        "out": dense_init(k3, 200, NUM_CLASSES),
    }


def _cnn_init(rng: PRNGKey) -> Params:
    k1, k2, k3, k4 = jax.random.split(rng, 4)
    return {
        "conv1": conv_init(k1, 5, 1, 32),
        "conv2": conv_init(k2, 5, 32, 64),
        "fc1": dense_init(k3, 7 * 7 * 64, 512),
        "out": dense_init(k4, 512, NUM_CLASSES),
    }


def _cnn_apply(
    params: Params, x: jax.Array, conv: Callable[[jax.Array, jax.Array], jax.Array] = conv_same
) -> jax.Array:
    h = jax.nn.relu(conv(x, params["conv1"]["w"]) + params["conv1"]["b"])
    h = max_pool_2x2(h)
    h = jax.nn.relu(conv(h, params["conv2"]["w"]) + params["conv2"]["b"])
    h = max_pool_2x2(h)
    h = jax.nn.relu(dense(params["fc1"], h.reshape(h.shape[0], -1)))
    return dense(params["out"], h)


cnn_apply_slices = functools.partial(_cnn_apply, conv=conv_same_slices)
cnn_apply_lax = functools.partial(_cnn_apply, conv=conv_same_lax)

_NETWORKS: dict[str, Model] = {
    "logreg": dense_model("logreg", _logreg_init, ("out",), INPUT_SHAPE),
    "2nn": dense_model("2nn", _mlp_init, ("fc1", "fc2", "out"), INPUT_SHAPE),
    "cnn": Model("cnn", _cnn_init, _cnn_apply, INPUT_SHAPE),
}
assert tuple(sorted(_NETWORKS)) == tuple(sorted(registry.MODELS))


def get_model(name: str) -> Model:
    """Fashion-MNIST's model ``name``: logistic regression, the 2NN or the CNN (McMahan 2017)."""
    return get_network(name)


def get_network(name: str) -> Model:
    """The network called ``name``: logistic regression, the 2NN or the CNN."""
    try:
        return _NETWORKS[name]
    except KeyError:
        raise ModelsError(
            f"unknown model {name!r}; choose one of {', '.join(registry.MODELS)}"
        ) from None


@functools.cache
def make_task(model: str = "2nn") -> Task:
    """Fashion-MNIST with network ``model`` (logreg | 2nn | cnn), softmax cross-entropy."""
    net = get_network(model)
    return Task(
        name="fashion_mnist",
        init=net.init,
        apply=net.apply,
        input_spec=SPEC,
        load_data=load,
        save_data=save_uint8,
        source=source,
        apply_with_taps=net.apply_with_taps,
        num_classes=NUM_CLASSES,
        model_name=model,
        module=__name__,
    )
