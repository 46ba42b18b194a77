"""Split a task's data set into per-client files plus the org's held-out evaluation file.

Used by `fedchain testnet up` and `fedchain data split`; the task says where its whole data
set comes from (`Task.source`), how it is split (`Task.split`) and how a file is written
(`Task.save_data`). Without a task it is Fashion-MNIST, as before.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from models.data import Dataset
from models.task import Task, split_on_labels


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


def split_indices(
    labels: np.ndarray, plan: PartitionPlan, task: Task | None = None
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
    from models.tasks.fashion_mnist import save_uint8

    save_uint8(path, ds)


def _label_counts(
    task: Task, train: Dataset, parts: list[np.ndarray]
) -> tuple[tuple[int, ...], ...]:
    if not task.classification or train.y.ndim != 1:
        return tuple(() for _ in parts)
    y = train.y.astype(np.int64)
    size = max(task.num_classes, int(y.max()) + 1 if len(y) else 0)
    return tuple(tuple(int(c) for c in np.bincount(y[idx], minlength=size)) for idx in parts)


def write_partitions(
    plan: PartitionPlan, source: Path | None, out_dir: Path, task: Task | None = None
) -> PartitionResult:
    """Load the task's data set (`source`: its path, None = default), write client-<i>.npz
    and org-test.npz into `out_dir`."""
    if task is None:
        from models.tasks import get_task

        task = get_task("fashion_mnist")
    if task.source is None:
        raise ValueError(
            f"task {task.name!r} has no `source`: give each client its file by hand (its "
            "load_data reads it) or add source(path) -> (train, test) to the task"
        )
    train, test = task.source(None if source is None else str(source))
    out_dir.mkdir(parents=True, exist_ok=True)
    parts = split_indices(train.y, plan, task)
    paths = []
    for i, idx in enumerate(parts):
        path = out_dir / f"client-{i}.npz"
        task.save_data(path, train.subset(idx))
        paths.append(path)
    if plan.test_samples > 0:
        keep = np.random.default_rng(plan.seed + 2).permutation(len(test.y))[: plan.test_samples]
        test = test.subset(np.sort(keep))
    test_path = out_dir / "org-test.npz"
    task.save_data(test_path, test)
    counts = _label_counts(task, train, parts)
    return PartitionResult(tuple(paths), test_path, tuple(len(p) for p in parts), counts)
