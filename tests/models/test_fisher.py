"""Fisher diagonal: hand-checked logreg values, equals a per-sample loop, online accumulation."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from models.data import Dataset
from models.fisher import fisher_diagonal, online_fisher
from models.networks import get_model
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
