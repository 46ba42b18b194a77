"""Split Fashion-MNIST into per-client `.npz` files plus the org's held-out test set."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from models.data import (
    Dataset,
    load_idx_dir,
    partition_dirichlet,
    partition_iid,
    partition_shards,
)


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
    label_counts: tuple[tuple[int, ...], ...]  # per client, samples per class 0..9


def split_indices(labels: np.ndarray, plan: PartitionPlan) -> list[np.ndarray]:
    """Index arrays per client, capped at `samples_per_client` (a seeded subsample)."""
    if plan.kind == "iid":
        parts = partition_iid(labels, plan.num_clients, plan.seed)
    elif plan.kind == "shards":
        parts = partition_shards(labels, plan.num_clients, plan.seed, plan.shards_per_client)
    elif plan.kind == "dirichlet":
        parts = partition_dirichlet(labels, plan.num_clients, plan.seed, alpha=plan.alpha)
    else:
        raise ValueError(f"unknown partition {plan.kind!r}; use iid | shards | dirichlet")
    if plan.samples_per_client <= 0:
        return parts
    rng = np.random.default_rng(plan.seed + 1)
    return [_cap(p, plan.samples_per_client, rng) for p in parts]


def _cap(idx: np.ndarray, limit: int, rng: np.random.Generator) -> np.ndarray:
    if len(idx) <= limit:
        return idx
    return np.sort(rng.choice(idx, size=limit, replace=False))


def save_uint8_npz(path: Path, ds: Dataset) -> None:
    """Write `x` back as uint8 pixels: 4x smaller and lossless for IDX data.

    `models.data.load_dataset` scales uint8 `x` to [0, 1] again, so clients see the same floats.
    """
    pixels = np.rint(ds.x * 255.0)
    if not np.allclose(pixels / 255.0, ds.x, atol=1e-6):
        raise ValueError("dataset is not 8-bit; cannot store it as uint8 pixels")
    np.savez(path, x=pixels.astype(np.uint8), y=ds.y.astype(np.int32))


def write_partitions(plan: PartitionPlan, source: Path, out_dir: Path) -> PartitionResult:
    """Load the IDX files at `source`, write client-<i>.npz and org-test.npz into `out_dir`."""
    train, test = load_idx_dir(source)
    out_dir.mkdir(parents=True, exist_ok=True)
    parts = split_indices(train.y, plan)
    paths = []
    for i, idx in enumerate(parts):
        path = out_dir / f"client-{i}.npz"
        save_uint8_npz(path, train.subset(idx))
        paths.append(path)
    if plan.test_samples > 0:
        keep = np.random.default_rng(plan.seed + 2).permutation(len(test.y))[: plan.test_samples]
        test = test.subset(np.sort(keep))
    test_path = out_dir / "org-test.npz"
    save_uint8_npz(test_path, test)
    counts = tuple(tuple(int(c) for c in np.bincount(train.y[idx], minlength=10)) for idx in parts)
    return PartitionResult(tuple(paths), test_path, tuple(len(p) for p in parts), counts)
