"""Data: IDX parsing, the real Fashion-MNIST files, .npz round trip, partitioners, tasks."""

import gzip
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from models.data import (
    DEFAULT_FASHION_MNIST,
    DataError,
    Dataset,
    class_split,
    load_dataset,
    load_idx_dir,
    partition_dirichlet,
    partition_iid,
    partition_shards,
    permute_pixels,
    read_idx,
    save_npz,
)


def _idx_bytes(arr: np.ndarray) -> bytes:
    code = {np.uint8: 0x08}[arr.dtype.type]
    dims = b"".join(int(d).to_bytes(4, "big") for d in arr.shape)
    return bytes([0, 0, code, arr.ndim]) + dims + arr.tobytes()


def _write_idx_dir(root: Path, n_train: int = 4, n_test: int = 2, gz: bool = True) -> None:
    rng = np.random.default_rng(0)
    for split, n in (("train", n_train), ("t10k", n_test)):
        images = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
        images[0, 0, 0] = 255
        labels = np.arange(n, dtype=np.uint8) % 10
        for kind, arr in (("images-idx3", images), ("labels-idx1", labels)):
            data = _idx_bytes(arr)
            name = f"{split}-{kind}-ubyte"
            if gz:
                (root / f"{name}.gz").write_bytes(gzip.compress(data))
            else:
                (root / name).write_bytes(data)


@pytest.mark.parametrize("gz", [True, False])
def test_idx_dir_round_trip(tmp_path: Path, gz: bool) -> None:
    _write_idx_dir(tmp_path, gz=gz)
    train, test = load_idx_dir(tmp_path)
    assert train.x.shape == (4, 28, 28, 1) and test.x.shape == (2, 28, 28, 1)
    assert train.x.dtype == np.float32 and train.y.dtype == np.int32
    assert train.x[0, 0, 0, 0] == 1.0 and train.x.min() >= 0.0
    assert train.y.tolist() == [0, 1, 2, 3]


def test_missing_idx_file_names_directory_and_file(tmp_path: Path) -> None:
    _write_idx_dir(tmp_path)
    (tmp_path / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(DataError, match=r"t10k-labels-idx1-ubyte") as err:
        load_idx_dir(tmp_path)
    assert str(tmp_path) in str(err.value)


def test_missing_directory_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="does not exist"):
        load_idx_dir(tmp_path / "nope")


def test_truncated_idx_is_rejected(tmp_path: Path) -> None:
    path = tmp_path / "x-idx1-ubyte"
    path.write_bytes(_idx_bytes(np.arange(10, dtype=np.uint8))[:-3])
    with pytest.raises(DataError, match="expected 10"):
        read_idx(path)


def test_real_fashion_mnist_loads() -> None:
    train, test = load_idx_dir(DEFAULT_FASHION_MNIST)
    assert len(train) == 60_000 and len(test) == 10_000
    assert np.bincount(train.y).tolist() == [6000] * 10
    assert train.x.min() >= 0.0 and train.x.max() == 1.0


def test_npz_round_trip_and_directory_loading(tmp_path: Path) -> None:
    _write_idx_dir(tmp_path)
    ds = load_dataset(tmp_path)
    save_npz(tmp_path / "c.npz", ds)
    back = load_dataset(tmp_path / "c.npz")
    np.testing.assert_array_equal(back.x, ds.x)
    np.testing.assert_array_equal(back.y, ds.y)
    with pytest.raises(DataError, match="'x' and 'y'"):
        np.savez(tmp_path / "bad.npz", images=ds.x)
        load_dataset(tmp_path / "bad.npz")


def test_dataset_rejects_bad_shapes() -> None:
    with pytest.raises(DataError, match="2 samples but y has 3"):
        Dataset(np.zeros((2, 28, 28), np.float32), np.zeros(3, np.int32))
    with pytest.raises(DataError, match="sample axis"):
        Dataset(np.float32(1.0), np.zeros(1, np.int32))  # type: ignore[arg-type]


def test_fashion_task_rejects_other_shapes(tmp_path: Path) -> None:
    from models.tasks import get_task

    np.savez(tmp_path / "wrong.npz", x=np.zeros((2, 30), np.float32), y=np.zeros(2, np.int32))
    with pytest.raises(DataError, match=r"wants \(N, 28, 28, 1\)"):
        get_task("fashion_mnist").read(str(tmp_path / "wrong.npz"))


LABELS = np.repeat(np.arange(10), 100)


def _assert_exact_cover(parts: list[np.ndarray], n: int) -> None:
    everything = np.concatenate(parts)
    assert len(everything) == n
    assert np.array_equal(np.sort(everything), np.arange(n))


@pytest.mark.parametrize(
    "split",
    [
        lambda s: partition_iid(LABELS, 7, s),
        lambda s: partition_shards(LABELS, 10, s),
        lambda s: partition_dirichlet(LABELS, 10, s, alpha=0.3, min_size=5),
    ],
    ids=["iid", "shards", "dirichlet"],
)
def test_partitions_cover_each_sample_once_and_are_deterministic(split: Any) -> None:
    a, b, c = split(0), split(0), split(1)
    _assert_exact_cover(a, len(LABELS))
    assert all(np.array_equal(u, v) for u, v in zip(a, b, strict=True))
    assert any(not np.array_equal(u, v) for u, v in zip(a, c, strict=True))


def test_iid_sizes_are_balanced() -> None:
    sizes = [len(p) for p in partition_iid(LABELS, 7, 0)]
    assert max(sizes) - min(sizes) <= 1


def test_shards_give_each_client_at_most_two_labels() -> None:
    parts = partition_shards(LABELS, 10, seed=3)
    assert all(len(np.unique(LABELS[p])) <= 2 for p in parts)
    assert all(len(p) == 100 for p in parts)


def test_dirichlet_min_size_guard() -> None:
    parts = partition_dirichlet(LABELS, 10, seed=0, alpha=0.1, min_size=20)
    assert min(len(p) for p in parts) >= 20
    with pytest.raises(DataError, match="min_size"):
        partition_dirichlet(LABELS, 10, seed=0, min_size=200)


def test_permute_pixels_is_a_fixed_permutation() -> None:
    rng = np.random.default_rng(0)
    ds = Dataset(rng.random((3, 28, 28, 1), dtype=np.float32), np.arange(3, dtype=np.int32))
    a, b = permute_pixels(ds, 5), permute_pixels(ds, 5)
    np.testing.assert_array_equal(a.x, b.x)
    assert not np.array_equal(a.x, ds.x)
    np.testing.assert_array_equal(np.sort(a.x.reshape(3, -1)), np.sort(ds.x.reshape(3, -1)))
    np.testing.assert_array_equal(a.y, ds.y)


def test_class_split_keeps_only_those_classes() -> None:
    ds = Dataset(np.zeros((10, 28, 28, 1), np.float32), np.arange(10, dtype=np.int32))
    assert class_split(ds, [7, 2]).y.tolist() == [2, 7]
