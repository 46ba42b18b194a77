"""Local training of many clients at once: the epoch of `models.training`, vmapped.

A client host (docs/daemons.md, "Client host") trains the clients it runs in one compiled
call per epoch wherever they agree on the task, the optimizer recipe, the epoch count, the
shapes of their data and the penalty's kind and shapes: then `jax.vmap` stacks them along a
leading client axis. Each client keeps its own seed, data, starting params and penalty
arrays, so each trains exactly as `local_train` would train it alone (the shuffling key is
per client and the padded last batch is masked the same way); `train_all` falls back to one
`local_train` per client where a group has a single member.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import jax
import jax.numpy as jnp

from models.data import Dataset
from models.networks import Model
from models.penalties import Penalty
from models.task import Task, as_task
from models.training import (
    OptimizerRecipe,
    TrainingError,
    TrainMetrics,
    cache_key,
    epoch_body,
    local_train,
    make_transform,
    penalty_value,
)
from models.types import Params


@dataclass(frozen=True)
class TrainJob:
    """One client's local training: its starting params, data, recipe (seed) and penalty."""

    params: Params
    data: Dataset
    config: OptimizerRecipe
    penalty: Penalty | None = None


@functools.lru_cache(maxsize=64)
def _many_fn(task: Task, config: OptimizerRecipe) -> Callable[..., Any]:
    """The epoch vmapped over a leading client axis of every argument, jitted."""
    return jax.jit(jax.vmap(epoch_body(task, config)), donate_argnums=(0, 1))


def _shapes(tree: Any) -> tuple[Any, ...]:
    leaves, structure = jax.tree_util.tree_flatten(tree)
    return (structure, tuple((jnp.shape(a), jnp.result_type(a).name) for a in leaves))


def group_key(job: TrainJob) -> tuple[Any, ...]:
    """Jobs with equal keys can share one vmapped call (same shapes, same compiled epoch)."""
    d = job.data
    data = (d.x.shape, d.x.dtype.name, d.y.shape, d.y.dtype.name)
    kind = None if job.penalty is None else job.penalty.kind
    penalty = None if job.penalty is None else _shapes(job.penalty)
    return (cache_key(job.config), job.config.epochs, data, _shapes(job.params), kind, penalty)


def groups(jobs: Sequence[TrainJob]) -> list[list[int]]:
    """Indices of `jobs` grouped by `group_key`, in order of first appearance."""
    found: dict[tuple[Any, ...], list[int]] = {}
    for i, job in enumerate(jobs):
        found.setdefault(group_key(job), []).append(i)
    return list(found.values())


def _stack(trees: Sequence[Any]) -> Any:
    return jax.tree_util.tree_map(lambda *xs: jnp.stack([jnp.asarray(x) for x in xs]), *trees)


def _f32_copy(params: Params) -> Params:
    return jax.tree_util.tree_map(lambda a: jnp.array(a, jnp.float32, copy=True), params)


def local_train_many(
    model: Model | Task, jobs: Sequence[TrainJob]
) -> list[tuple[Params, TrainMetrics]]:
    """Train every job (all with one `group_key`) in one vmapped call per epoch."""
    if not jobs:
        return []
    if len({group_key(j) for j in jobs}) != 1:
        raise TrainingError("local_train_many needs jobs of one group; use train_all")
    if len(jobs[0].data) == 0:
        raise TrainingError("cannot train on an empty dataset")
    task = as_task(model)
    first = jobs[0].config
    fn = _many_fn(task, cache_key(first))
    params = _stack([_f32_copy(j.params) for j in jobs])
    opt_state = _stack(
        [make_transform(j.config, j.penalty).init(_f32_copy(j.params)) for j in jobs]
    )
    x = jnp.stack([jnp.asarray(j.data.x) for j in jobs])
    y = jnp.stack([jnp.asarray(j.data.y) for j in jobs])
    penalty = None if jobs[0].penalty is None else _stack([j.penalty for j in jobs])
    base_keys = [jax.random.PRNGKey(j.config.seed) for j in jobs]
    sums = jnp.zeros((len(jobs), 2))
    for epoch in range(first.epochs):
        keys = jnp.stack([jax.random.fold_in(k, epoch) for k in base_keys])
        params, opt_state, sums = fn(params, opt_state, x, y, keys, penalty)
    n = len(jobs[0].data)
    out = []
    for i, job in enumerate(jobs):
        mine = jax.tree_util.tree_map(lambda a, i=i: a[i], params)
        extra = 0.0 if job.penalty is None else float(penalty_value(job.penalty, mine))
        accuracy = float(sums[i, 1]) / n if task.classification else None
        out.append((mine, TrainMetrics(float(sums[i, 0]) / n + extra, accuracy, n)))
    return out


def train_all(model: Model | Task, jobs: Sequence[TrainJob]) -> list[tuple[Params, TrainMetrics]]:
    """Every job trained, vmapped per group of agreeing jobs, alone where a job has no peer."""
    results: list[tuple[Params, TrainMetrics] | None] = [None] * len(jobs)
    for members in groups(jobs):
        if len(members) == 1:
            j = jobs[members[0]]
            results[members[0]] = local_train(model, j.params, j.data, j.config, j.penalty)
            continue
        trained = local_train_many(model, [jobs[i] for i in members])
        for i, result in zip(members, trained, strict=True):
            results[i] = result
    return [r for r in results if r is not None]
