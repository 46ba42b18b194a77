"""Vmapped training of many clients equals each client's solo `local_train`."""

from __future__ import annotations

import jax
import numpy as np
import pytest

from models.data import Dataset
from models.penalties import make_penalty
from models.tasks import get_task
from models.tasks.loader import zeros_template
from models.training import OptimizerRecipe, TrainingError, local_train
from models.training_many import TrainJob, groups, local_train_many, train_all

# The largest |vmapped - solo| difference accepted, per parameter, after 2 epochs. Not
# bit-identical on XLA:CPU: batched matmuls sum in another order, ~1.5e-8 (about one float32
# ulp at the weights' scale) was the largest difference seen; 1e-6 leaves room, and any real
# mix-up of clients (data, seed, penalty) differs by > 1e-3.
ATOL = 1e-6


def _random_params(task, seed: int) -> dict:
    rng = np.random.default_rng(seed)
    return jax.tree.map(
        lambda a: rng.normal(0, 0.05, a.shape).astype(np.float32), zeros_template(task)
    )


def _data(seed: int, n: int) -> Dataset:
    rng = np.random.default_rng(100 + seed)
    x = rng.random((n, 28, 28, 1), dtype=np.float32)
    return Dataset(x, rng.integers(0, 10, n).astype(np.int32))


def _max_diff(a, b) -> float:
    pairs = zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True)
    return max(float(np.max(np.abs(np.asarray(u) - np.asarray(v)))) for u, v in pairs)


@pytest.mark.parametrize("penalty_kind", ["none", "ewc", "fedprox"])
def test_vmapped_equals_solo_per_client(penalty_kind: str) -> None:
    task = get_task("fashion_mnist", "2nn" if penalty_kind == "ewc" else "logreg")
    base = _random_params(task, 0)
    fisher = jax.tree.map(np.abs, _random_params(task, 1))
    penalty = None
    if penalty_kind != "none":
        penalty = make_penalty(penalty_kind, anchor=base, fisher=fisher, lam=5.0, mu=0.5)
    # 53 samples at batch 10: a ragged, masked last batch; each client its own data and seed
    jobs = [
        TrainJob(base, _data(k, 53), OptimizerRecipe(epochs=2, batch_size=10, seed=k), penalty)
        for k in range(4)
    ]
    many = local_train_many(task, jobs)
    for job, (params, metrics) in zip(jobs, many, strict=True):
        solo, solo_metrics = local_train(task, job.params, job.data, job.config, job.penalty)
        assert _max_diff(params, solo) <= ATOL
        assert metrics.accuracy == solo_metrics.accuracy
        assert metrics.loss == pytest.approx(solo_metrics.loss, abs=1e-5)
        assert metrics.num_samples == 53
    assert _max_diff(many[0][0], many[1][0]) > 1e-3  # the clients did train differently


def test_groups_split_on_shapes_and_train_all_falls_back() -> None:
    task = get_task("fashion_mnist", "logreg")
    base = _random_params(task, 0)
    jobs = [
        TrainJob(base, _data(0, 40), OptimizerRecipe(seed=1)),
        TrainJob(base, _data(1, 41), OptimizerRecipe(seed=2)),  # another size: its own group
        TrainJob(base, _data(2, 40), OptimizerRecipe(seed=3)),
        TrainJob(base, _data(3, 40), OptimizerRecipe(seed=4, epochs=2)),  # another epoch count
    ]
    assert groups(jobs) == [[0, 2], [1], [3]]
    results = train_all(task, jobs)
    for job, (params, _) in zip(jobs, results, strict=True):
        solo, _ = local_train(task, job.params, job.data, job.config, job.penalty)
        assert _max_diff(params, solo) <= ATOL
    with pytest.raises(TrainingError, match="one group"):
        local_train_many(task, jobs)
