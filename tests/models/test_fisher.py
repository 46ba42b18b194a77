"""Fisher diagonal: hand-checked logreg values, equals a per-sample loop, online accumulation.

The dense-only networks (logreg, 2NN) take the per-example outer-product path; it must equal
the ``vmap(grad)`` path that every other network takes.
"""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from models.data import Dataset
from models.fisher import fisher_diagonal, online_fisher
from models.networks import Model
from models.tasks.fashion_mnist import get_model
from models.types import ModelsError


def test_logreg_fisher_by_hand() -> None:
    # Zero weights: softmax is 0.1 everywhere, d(-log p_y)/d(b) = 0.1 - onehot(y) and
    # d/dW[k] = x_k * (0.1 - onehot(y)). Only pixel 0 is set, to 2.
    model = get_model("logreg")
    params = jax.tree.map(jnp.zeros_like, model.init(jax.random.PRNGKey(0)))
    x = np.zeros((3, 28, 28, 1), np.float32)
    x[:, 0, 0, 0] = 2.0
    data = Dataset(x, np.array([0, 0, 1], np.int32))
    fisher = fisher_diagonal(model, params, data, batch_size=2)
    expected_b = np.full(10, 0.01)
    expected_b[0] = (0.81 + 0.81 + 0.01) / 3
    expected_b[1] = (0.01 + 0.01 + 0.81) / 3
    np.testing.assert_allclose(fisher["out"]["b"], expected_b, rtol=1e-5)
    np.testing.assert_allclose(fisher["out"]["w"][0], 4 * expected_b, rtol=1e-5)
    assert not np.any(fisher["out"]["w"][1:])


def test_2nn_fisher_equals_a_loop_over_samples() -> None:
    model = get_model("2nn")
    params = model.init(jax.random.PRNGKey(0))
    rng = np.random.default_rng(1)
    data = Dataset(rng.random((7, 28, 28, 1), dtype=np.float32), rng.integers(0, 10, 7, np.int32))

    def nll(p: dict, x: jax.Array, y: jax.Array) -> jax.Array:
        return optax.softmax_cross_entropy_with_integer_labels(model.apply(p, x), y)[0]

    grad = jax.jit(jax.grad(nll))
    grads = [grad(params, data.x[i : i + 1], data.y[i : i + 1]) for i in range(7)]
    expected = jax.tree.map(lambda *g: sum(jnp.square(t) for t in g) / 7, *grads)
    got = fisher_diagonal(model, params, data, batch_size=3)
    for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(expected), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-9)
        assert (np.asarray(a) >= 0).all()


def _random_setup(name: str, n: int) -> tuple[Model, dict, Dataset]:
    """Model, params with non-zero biases (mixed ReLU patterns) and random data."""
    model = get_model(name)
    params = model.init(jax.random.PRNGKey(0))
    keys = iter(jax.random.split(jax.random.PRNGKey(1), 16))
    params = jax.tree.map(lambda t: t + 0.1 * jax.random.normal(next(keys), t.shape), params)
    rng = np.random.default_rng(3)
    x = rng.normal(size=(n, 28, 28, 1)).astype(np.float32)
    return model, params, Dataset(x, rng.integers(0, 10, n).astype(np.int32))


@pytest.mark.parametrize("name", ["logreg", "2nn"])
@pytest.mark.parametrize("batch_size", [1, 5, 32])
def test_dense_fast_path_equals_vmap(name: str, batch_size: int) -> None:
    # 13 samples: batch 5 pads the last batch with 2 repeated samples that must be masked out.
    model, params, data = _random_setup(name, 13)
    assert model.apply_with_taps is not None
    fast = fisher_diagonal(model, params, data, batch_size=batch_size)
    vmap = fisher_diagonal(
        dataclasses.replace(model, apply_with_taps=None), params, data, batch_size=batch_size
    )
    assert jax.tree.map(jnp.shape, fast) == jax.tree.map(jnp.shape, params)
    for a, b in zip(jax.tree.leaves(fast), jax.tree.leaves(vmap), strict=True):
        assert a.shape == b.shape and a.dtype == b.dtype
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7 * float(np.max(b)))


def test_dense_fast_path_never_calls_vmap_apply() -> None:
    def unused(params: dict, x: jax.Array) -> jax.Array:
        raise AssertionError("the dense path must not fall back to vmap(grad) of apply")

    model, params, data = _random_setup("2nn", 4)
    fisher_diagonal(dataclasses.replace(model, apply=unused), params, data, batch_size=3)


@pytest.mark.parametrize("name", ["logreg", "2nn"])
def test_taps_shift_pre_activations_and_inputs_feed_the_layers(name: str) -> None:
    # Zero taps give apply's logits; d(sum loss)/d(tap) summed over the batch is d/d(bias);
    # each layer's returned input times its d/d(tap) gives d/d(w).
    model, params, data = _random_setup(name, 6)
    assert model.apply_with_taps is not None
    tapped = model.apply_with_taps
    x, y = jnp.asarray(data.x), jnp.asarray(data.y)
    zeros = {k: jnp.zeros((6, *layer["b"].shape)) for k, layer in params.items()}
    logits, inputs = tapped(params, x, zeros)
    np.testing.assert_array_equal(logits, model.apply(params, x))

    def loss(p: dict, taps: dict) -> jax.Array:
        return optax.softmax_cross_entropy_with_integer_labels(tapped(p, x, taps)[0], y).sum()

    grad_p, grad_taps = jax.grad(loss, argnums=(0, 1))(params, zeros)
    for k in params:
        np.testing.assert_allclose(grad_taps[k].sum(0), grad_p[k]["b"], rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(inputs[k].T @ grad_taps[k], grad_p[k]["w"], rtol=1e-4, atol=1e-5)


def test_cnn_has_no_dense_description() -> None:
    assert get_model("cnn").apply_with_taps is None


def test_max_samples_takes_a_seeded_subset() -> None:
    model = get_model("logreg")
    params = model.init(jax.random.PRNGKey(0))
    rng = np.random.default_rng(2)
    data = Dataset(rng.random((50, 28, 28, 1), dtype=np.float32), rng.integers(0, 10, 50, np.int32))
    a = fisher_diagonal(model, params, data, max_samples=10, seed=1)
    b = fisher_diagonal(model, params, data, max_samples=10, seed=1)
    c = fisher_diagonal(model, params, data, max_samples=10, seed=2)
    np.testing.assert_array_equal(a["out"]["w"], b["out"]["w"])
    assert not np.array_equal(a["out"]["w"], c["out"]["w"])


def test_online_fisher_by_hand() -> None:
    new = {"w": jnp.array([1.0, 2.0])}
    assert online_fisher(None, new, 0.9) is new
    out = online_fisher({"w": jnp.array([10.0, 0.0])}, new, 0.5)
    np.testing.assert_allclose(out["w"], [6.0, 2.0])
    with pytest.raises(ModelsError, match="gamma"):
        online_fisher(None, new, 1.5)
