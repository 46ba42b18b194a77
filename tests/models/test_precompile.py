"""Ahead-of-time compilation: after `precompile_*`, the real call compiles nothing.

Each test uses a data size and learning rate no other test uses, so the programs are new to
this process and a count of zero means the precompile did the work (the control case counts
the compilations the same call needs without it).
"""

from collections.abc import Iterator
from contextlib import contextmanager

import jax
import numpy as np
from jax import monitoring

from models.data import Dataset
from models.fisher import fisher_diagonal, precompile_fisher_diagonal
from models.penalties import make_penalty
from models.tasks.fashion_mnist import get_model
from models.training import OptimizerRecipe, local_train, params_to_numpy, precompile_local_train

COMPILE_EVENT = "/jax/core/compile/backend_compile_duration"
MODEL = get_model("2nn")


@contextmanager
def counting_compiles() -> Iterator[list[float]]:
    """The XLA compilations that happen inside the block (durations, one per program)."""
    seen: list[float] = []
    active = [True]

    def listener(name: str, duration: float, **_: object) -> None:
        if active[0] and name == COMPILE_EVENT:
            seen.append(duration)

    monitoring.register_event_duration_secs_listener(listener)
    try:
        yield seen
    finally:
        active[0] = False


def _data(n: int, seed: int) -> Dataset:
    rng = np.random.default_rng(seed)
    x = rng.random((n, 28, 28, 1), dtype=np.float32)
    return Dataset(x, rng.integers(0, 10, n).astype(np.int32))


def _ewc_setup(n: int, lr: float) -> tuple[dict, Dataset, OptimizerRecipe, object]:
    params = params_to_numpy(MODEL.init(jax.random.PRNGKey(3)))
    zeros = jax.tree_util.tree_map(np.zeros_like, params)
    penalty = make_penalty("ewc", anchor=params, fisher=zeros, lam=5.0)
    config = OptimizerRecipe(epochs=2, batch_size=8, learning_rate=lr, seed=11)
    return params, _data(n, n), config, penalty


def test_local_train_after_precompile_compiles_nothing() -> None:
    params, data, config, penalty = _ewc_setup(53, 0.0173)
    precompile_local_train(MODEL, params, data, config, penalty)
    with counting_compiles() as seen:
        trained, _ = local_train(MODEL, params, data, config, penalty)
        jax.block_until_ready(trained)
    assert seen == []


def test_without_precompile_the_same_call_compiles() -> None:
    # the control: a fresh recipe does compile, so the zero above is the precompile's doing
    params, data, config, penalty = _ewc_setup(59, 0.0179)
    with counting_compiles() as seen:
        jax.block_until_ready(local_train(MODEL, params, data, config, penalty)[0])
    assert len(seen) >= 1


def test_precompile_does_not_change_the_result() -> None:
    params, data, config, penalty = _ewc_setup(61, 0.0181)
    plain, _ = local_train(MODEL, params, data, config, penalty)
    precompile_local_train(MODEL, params, data, config, penalty)
    again, _ = local_train(MODEL, params, data, config, penalty)
    for a, b in zip(jax.tree.leaves(plain), jax.tree.leaves(again), strict=True):
        assert np.array_equal(np.asarray(a), np.asarray(b))


def test_fisher_after_precompile_compiles_nothing() -> None:
    params = params_to_numpy(MODEL.init(jax.random.PRNGKey(4)))
    data = _data(67, 5)
    precompile_fisher_diagonal(MODEL, params, data, batch_size=7, max_samples=41, seed=2)
    with counting_compiles() as seen:
        jax.block_until_ready(
            fisher_diagonal(MODEL, params, data, batch_size=7, max_samples=41, seed=2)
        )
    assert seen == []
