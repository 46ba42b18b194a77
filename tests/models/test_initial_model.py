"""The round-0 model: `initial_sections` compiles the seeded init at XLA's optimisation level
1 (models/rounds.py), which must give the very bits of the eager init, or every run's initial
model CID (and `fedchain verify` of runs made before) would change."""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.nn import initializers

from models import adapters, registry
from models.rounds import initial_sections, seeded_init
from models.task import InputSpec
from models.tasks import get_task
from models.training import params_to_numpy

SEEDS = (0, 1, 12345, 2**31 - 1)
BUILT_IN = [(task, model) for task, models in registry.TASK_MODELS.items() for model in models]


def assert_same_bits(ours: Any, eager: Any) -> None:
    leaves, eager_leaves = jax.tree_util.tree_leaves(ours), jax.tree_util.tree_leaves(eager)
    assert str(jax.tree_util.tree_structure(ours)) == str(jax.tree_util.tree_structure(eager))
    for a, b in zip(leaves, eager_leaves, strict=True):
        assert np.asarray(a).dtype == np.asarray(b).dtype
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


@pytest.mark.parametrize(("task_name", "model"), BUILT_IN)
def test_every_built_in_round_0_model_has_the_eager_inits_bits(task_name: str, model: str) -> None:
    task = get_task(task_name, model)
    for seed in SEEDS:
        sections = initial_sections(model, seed, True, task)
        eager = params_to_numpy(task.init(jax.random.PRNGKey(seed)))
        assert_same_bits(sections["params"], eager)
        assert all(not np.any(leaf) for leaf in jax.tree_util.tree_leaves(sections["fisher"]))


def user_init(key: jax.Array) -> dict[str, jax.Array]:
    """A plug-in task's init drawing through erf-inverse, QR and the like (jax.nn's)."""
    keys = jax.random.split(key, 6)
    return {
        "lecun": initializers.lecun_normal()(keys[0], (784, 64)),
        "glorot": initializers.glorot_normal()(keys[1], (64, 64)),
        "he": initializers.he_uniform()(keys[2], (64, 32)),
        "orthogonal": initializers.orthogonal()(keys[3], (32, 32)),
        "normal": jax.random.normal(keys[4], (257,)),
        "truncated": jax.random.truncated_normal(keys[5], -2.0, 2.0, (1000,)),
    }


def test_a_plug_in_tasks_initializers_keep_their_eager_bits() -> None:
    for seed in SEEDS:
        assert_same_bits(seeded_init(user_init, seed), user_init(jax.random.PRNGKey(seed)))


def python_side_init(key: jax.Array) -> dict[str, jax.Array]:
    """An init that reads its key in Python (numpy's generator): it cannot be traced."""
    rng = np.random.default_rng(int(jax.random.key_data(key)[-1]))
    return {"w": jnp.asarray(rng.normal(size=(4, 3)), jnp.float32)}


def test_an_init_that_cannot_be_traced_runs_eagerly_as_before() -> None:
    with pytest.raises(TypeError):
        jax.jit(python_side_init).lower(jax.random.PRNGKey(0))
    for seed in SEEDS:
        assert_same_bits(
            seeded_init(python_side_init, seed), python_side_init(jax.random.PRNGKey(seed))
        )


@pytest.mark.parametrize("name", ["equinox", "linen", "nnx"])
def test_the_adapters_inits_keep_their_eager_bits(name: str) -> None:
    pytest.importorskip("flax")
    pytest.importorskip("equinox")
    make = {"equinox": equinox_init, "linen": linen_init, "nnx": nnx_init}[name]
    init = make()
    for seed in SEEDS[:2]:
        assert_same_bits(seeded_init(init, seed), init(jax.random.PRNGKey(seed)))


def equinox_init() -> Any:
    import equinox as eqx

    def make(key: jax.Array) -> Any:
        return eqx.nn.MLP(20, 4, 16, 2, key=key)

    return adapters.equinox(make)[0]


def linen_init() -> Any:
    import flax.linen as nn

    class MLP(nn.Module):
        @nn.compact
        def __call__(self, x: jax.Array) -> jax.Array:
            return nn.Dense(4)(nn.relu(nn.Dense(16)(x)))

    return adapters.linen(MLP(), InputSpec((20,)))[0]


def nnx_init() -> Any:
    from flax import nnx

    class MLP(nnx.Module):
        def __init__(self, rngs: nnx.Rngs) -> None:
            self.hidden, self.out = nnx.Linear(20, 16, rngs=rngs), nnx.Linear(16, 4, rngs=rngs)

        def __call__(self, x: jax.Array) -> jax.Array:
            return self.out(nnx.relu(self.hidden(x)))

    return adapters.nnx(MLP)[0]
