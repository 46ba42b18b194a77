"""Flax (linen, nnx) and Equinox models become plain init/apply with the same outputs."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from models import adapters
from models.task import InputSpec, Task
from models.tasks.loader import param_template

pytest.importorskip("flax")
pytest.importorskip("equinox")
X = jax.random.normal(jax.random.PRNGKey(1), (5, 3))


def test_linen() -> None:
    import flax.linen as nn

    module = nn.Dense(2)
    init, apply = adapters.linen(module, InputSpec((3,)))
    params = init(jax.random.PRNGKey(0))
    assert param_template(Task("t", init, apply, InputSpec((3,)))) == {
        "bias": ((2,), "float32"),
        "kernel": ((3, 2), "float32"),
    }
    want = module.apply({"params": params}, X)
    np.testing.assert_allclose(apply(params, X), want)
    np.testing.assert_allclose(want, X @ params["kernel"] + params["bias"], rtol=1e-6)


def test_linen_refuses_batch_stats() -> None:
    import flax.linen as nn

    init, _ = adapters.linen(nn.BatchNorm(use_running_average=False), InputSpec((3,)))
    with pytest.raises(Exception, match="batch_stats"):
        init(jax.random.PRNGKey(0))


def test_nnx() -> None:
    from flax import nnx

    init, apply = adapters.nnx(lambda rngs: nnx.Linear(3, 2, rngs=rngs))
    params = init(jax.random.PRNGKey(0))
    assert sorted(params) == ["bias", "kernel"]
    np.testing.assert_allclose(apply(params, X), X @ params["kernel"] + params["bias"], rtol=1e-6)
    grads = jax.grad(lambda p: jnp.sum(apply(p, X)))(params)  # differentiable through merge
    np.testing.assert_allclose(grads["bias"], [5.0, 5.0])


def test_equinox() -> None:
    import equinox as eqx

    init, apply = adapters.equinox(lambda key: eqx.nn.Linear(3, 2, key=key))
    params = init(jax.random.PRNGKey(0))
    assert sorted(params) == ["bias", "weight"]
    np.testing.assert_allclose(apply(params, X), X @ params["weight"].T + params["bias"], rtol=1e-6)
    jitted = jax.jit(apply)(params, X)
    np.testing.assert_allclose(jitted, apply(params, X), rtol=1e-6)
