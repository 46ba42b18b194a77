"""Partition files: disjoint, complete, loadable by the client's data loader, skewed on request."""

from pathlib import Path

import numpy as np
import pytest

from daemons.testnet.partition import PartitionPlan, split_indices, write_partitions
from models.data import DEFAULT_FASHION_MNIST, load_dataset, load_idx_dir

LABELS = np.repeat(np.arange(10), 100)


def test_iid_split_is_disjoint_and_complete() -> None:
    parts = split_indices(LABELS, PartitionPlan("iid", 4, seed=3))
    joined = np.concatenate(parts)
    assert sorted(joined.tolist()) == list(range(1000))
    assert [len(p) for p in parts] == [250] * 4


def test_cap_takes_a_subsample_of_each_part() -> None:
    full = split_indices(LABELS, PartitionPlan("iid", 4, seed=3))
    capped = split_indices(LABELS, PartitionPlan("iid", 4, seed=3, samples_per_client=40))
    assert [len(p) for p in capped] == [40] * 4
    for small, big in zip(capped, full, strict=True):
        assert set(small.tolist()) <= set(big.tolist())


def test_shards_give_each_client_few_labels() -> None:
    parts = split_indices(LABELS, PartitionPlan("shards", 5, seed=0, shards_per_client=2))
    assert all(len(np.unique(LABELS[p])) <= 2 for p in parts)


def test_small_alpha_dirichlet_is_skewed() -> None:
    parts = split_indices(LABELS, PartitionPlan("dirichlet", 4, seed=0, alpha=0.05))
    top_share = [np.bincount(LABELS[p]).max() / len(p) for p in parts]
    assert max(top_share) > 0.5


def test_unknown_kind_is_named() -> None:
    with pytest.raises(ValueError, match="zipf"):
        split_indices(LABELS, PartitionPlan("zipf", 2))


@pytest.mark.skipif(not DEFAULT_FASHION_MNIST.is_dir(), reason="needs dataset-fashion-mnist")
def test_written_files_load_back_bit_exact(tmp_path: Path) -> None:
    plan = PartitionPlan("iid", 3, seed=1, samples_per_client=500, test_samples=300)
    res = write_partitions(plan, DEFAULT_FASHION_MNIST, tmp_path)
    train, _test = load_idx_dir(DEFAULT_FASHION_MNIST)
    idx = split_indices(train.y, plan)
    for path, part in zip(res.client_paths, idx, strict=True):
        ds = load_dataset(path)
        np.testing.assert_array_equal(ds.x, train.x[part])
        np.testing.assert_array_equal(ds.y, train.y[part])
    org = load_dataset(res.test_path)
    assert len(org) == 300
    assert res.client_sizes == (500, 500, 500)
    assert sum(res.label_counts[0]) == 500


@pytest.mark.skipif(not DEFAULT_FASHION_MNIST.is_dir(), reason="needs dataset-fashion-mnist")
def test_the_org_file_comes_first_and_both_task_sides_write_the_same(tmp_path: Path) -> None:
    # the testnet starts the org on its file while the clients' files are still written
    from daemons.testnet.partition import task_data
    from models.tasks import get_task

    plan = PartitionPlan("dirichlet", 3, seed=2, samples_per_client=400, test_samples=200)
    seen: list[list[str]] = []
    res = write_partitions(
        plan,
        None,
        tmp_path / "data",
        task_data("fashion_mnist", "2nn"),
        lambda p: seen.append(sorted(f.name for f in p.parent.iterdir())),
    )
    assert seen == [["org-test.npz"]]
    full = write_partitions(plan, None, tmp_path / "full", get_task("fashion_mnist", "2nn"))
    ours, theirs = [*res.client_paths, res.test_path], [*full.client_paths, full.test_path]
    for a, b in zip(ours, theirs, strict=True):
        x, y = np.load(a), np.load(b)
        assert x["x"].dtype == y["x"].dtype == np.uint8
        np.testing.assert_array_equal(x["x"], y["x"])
        np.testing.assert_array_equal(x["y"], y["y"])
    assert res.label_counts == full.label_counts
