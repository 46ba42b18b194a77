"""Split a task's data set into per-client files plus the org's held-out evaluation file.

Used by `fedchain testnet up` and `fedchain data split`; the task says where its whole data
set comes from (`Task.source`), how it is split (`Task.split`) and how a file is written
(`Task.save_data`). Without a task it is Fashion-MNIST, as before.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from models import registry
from models.data import Dataset, TaskData, split_on_labels

if TYPE_CHECKING:
    from models.task import Task


@dataclass(frozen=True)
class PartitionPlan:
    """How to split: IID, label shards (McMahan et al. 2017) or Dirichlet(alpha) (Hsu 2019)."""

    kind: str
    num_clients: int
    seed: int = 0
    alpha: float = 0.5
    shards_per_client: int = 2
    samples_per_client: int = 0  # 0 = every sample the partitioner gave
    test_samples: int = 0  # 0 = the whole test split


@dataclass(frozen=True)
class PartitionResult:
    """Where the files went and what is in them."""

    client_paths: tuple[Path, ...]
    test_path: Path
    client_sizes: tuple[int, ...]
    label_counts: tuple[tuple[int, ...], ...]  # per client, samples per class (classes only)


def task_data(task: str, model: str) -> Task | TaskData:
    """What splitting `task`'s data needs: a built-in task's JAX-free data side, else the task."""
    module = registry.TASK_DATA_MODULES.get(task)
    if module is not None:
        data: TaskData = importlib.import_module(module).DATA
        return data
    from models.tasks import get_task

    return get_task(task, model)


def split_indices(
    labels: np.ndarray, plan: PartitionPlan, task: Task | TaskData | None = None
) -> list[np.ndarray]:
    """Index arrays per client, capped at `samples_per_client` (a seeded subsample)."""
    options = {"alpha": plan.alpha, "shards": plan.shards_per_client}
    split = task.split if task is not None else split_on_labels
    parts = split(labels, plan.num_clients, plan.kind, plan.seed, options)
    if plan.samples_per_client <= 0:
        return parts
    rng = np.random.default_rng(plan.seed + 1)
    return [_cap(p, plan.samples_per_client, rng) for p in parts]


def _cap(idx: np.ndarray, limit: int, rng: np.random.Generator) -> np.ndarray:
    if len(idx) <= limit:
        return idx
    return np.sort(rng.choice(idx, size=limit, replace=False))


def save_uint8_npz(path: Path, ds: Dataset) -> None:
    """Fashion-MNIST's file format: `x` as uint8 pixels (4x smaller, lossless for IDX data)."""
    from models.tasks.fashion_mnist_data import save_uint8

    save_uint8(path, ds)


def _label_counts(
    task: Task | TaskData, train: Dataset, parts: list[np.ndarray]
) -> tuple[tuple[int, ...], ...]:
    if not task.classification or train.y.ndim != 1:
        return tuple(() for _ in parts)
    y = train.y.astype(np.int64)
    size = max(task.num_classes, int(y.max()) + 1 if len(y) else 0)
    return tuple(tuple(int(c) for c in np.bincount(y[idx], minlength=size)) for idx in parts)


def write_partitions(
    plan: PartitionPlan,
    source: Path | None,
    out_dir: Path,
    task: Task | TaskData | None = None,
    on_test_written: Callable[[Path], None] | None = None,
) -> PartitionResult:
    """Load the task's data set (`source`: its path, None = default), write org-test.npz and
    then client-<i>.npz into `out_dir`; `on_test_written` hears of the first at once (the
    testnet starts the org on it while the clients' files are written)."""
    if task is None:
        task = task_data(registry.DEFAULT_TASK, "")
    if task.source is None:
        raise ValueError(
            f"task {task.name!r} has no `source`: give each client its file by hand (its "
            "load_data reads it) or add source(path) -> (train, test) to the task"
        )
    train, test = task.source(None if source is None else str(source))
    out_dir.mkdir(parents=True, exist_ok=True)
    if plan.test_samples > 0:
        keep = np.random.default_rng(plan.seed + 2).permutation(len(test.y))[: plan.test_samples]
        test = test.subset(np.sort(keep))
    test_path = out_dir / "org-test.npz"
    task.save_data(test_path, test)
    if on_test_written is not None:
        on_test_written(test_path)
    parts = split_indices(train.y, plan, task)
    paths = []
    for i, idx in enumerate(parts):
        path = out_dir / f"client-{i}.npz"
        task.save_data(path, train.subset(idx))
        paths.append(path)
    counts = _label_counts(task, train, parts)
    return PartitionResult(tuple(paths), test_path, tuple(len(p) for p in parts), counts)
