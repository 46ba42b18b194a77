"""The testnet's cached data split: reused for the same inputs, never for other ones."""

from pathlib import Path

import numpy as np

from daemons.testnet.datacache import cacheable, cached_partitions, split_key, store_partitions
from daemons.testnet.partition import PartitionPlan


def _files(d: Path, n: int) -> tuple[tuple[Path, ...], Path]:
    d.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(n):
        p = d / f"client-{i}.npz"
        np.savez(p, x=np.full(3, i), y=np.zeros(3))
        paths.append(p)
    test = d / "org-test.npz"
    np.savez(test, x=np.ones(2), y=np.zeros(2))
    return tuple(paths), test


def test_a_stored_split_is_placed_into_a_new_run(tmp_path: Path) -> None:
    paths, test = _files(tmp_path / "run1", 3)
    key = split_key("fashion_mnist", "2nn", None, PartitionPlan("iid", 3))
    store_partitions(tmp_path / "cache", key, paths, test, (3, 3, 3))
    got = cached_partitions(tmp_path / "cache", key, tmp_path / "run2", 3)
    assert got is not None
    new_paths, new_test, sizes = got
    assert sizes == (3, 3, 3) and new_test == tmp_path / "run2" / "org-test.npz"
    assert [np.load(p)["x"][0] for p in new_paths] == [0, 1, 2]


def test_other_inputs_miss(tmp_path: Path) -> None:
    paths, test = _files(tmp_path / "run1", 2)
    key = split_key("fashion_mnist", "2nn", None, PartitionPlan("iid", 2))
    store_partitions(tmp_path / "cache", key, paths, test, (3, 3))
    others = [
        split_key("fashion_mnist", "2nn", None, PartitionPlan("iid", 2, seed=1)),
        split_key("fashion_mnist", "2nn", None, PartitionPlan("dirichlet", 2)),
        split_key("breast_cancer", "mlp", None, PartitionPlan("iid", 2)),
    ]
    assert key not in others and len(set(others)) == 3
    for other in others:
        assert cached_partitions(tmp_path / "cache", other, tmp_path / "run2", 2) is None
    assert cached_partitions(tmp_path / "cache", key, tmp_path / "run2", 3) is None  # 3 clients


def test_the_data_set_files_are_part_of_the_key(tmp_path: Path) -> None:
    src = tmp_path / "idx"
    src.mkdir()
    (src / "a").write_bytes(b"1")
    plan = PartitionPlan("iid", 2)
    before = split_key("fashion_mnist", "2nn", src, plan)
    (src / "a").write_bytes(b"12")
    assert split_key("fashion_mnist", "2nn", src, plan) != before


def test_plugin_tasks_are_not_cached() -> None:
    assert cacheable("fashion_mnist") and not cacheable("mypkg.tasks:task")
