"""Datasets: any-shape ``(x, y)`` arrays, IDX and ``.npz`` loading, partitioners, task builders.

Partitioners follow McMahan et al. 2017 (IID, 2 label-sorted shards per client) and
Hsu et al. 2019 (Dirichlet(alpha) label skew). All are deterministic for a seed.
"""

from __future__ import annotations

import gzip
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from models.errors import ModelsError  # JAX-free: the testnet's data split loads no JAX

DEFAULT_FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")
IDX_FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}
_IDX_DTYPES: dict[int, str] = {
    0x08: "u1",
    0x09: "i1",
    0x0B: ">i2",
    0x0C: ">i4",
    0x0D: ">f4",
    0x0E: ">f8",
}


_UINT8_SCALED = np.arange(256, dtype=np.float32) / np.float32(255.0)


class DataError(ModelsError, ValueError):
    """A dataset file is missing or malformed, or a partition is impossible."""


@dataclass(frozen=True)
class Dataset:
    """Inputs ``x`` ``(N, ...)`` and labels or targets ``y`` ``(N, ...)``, one row per sample.

    Any shapes and dtypes; a task's ``InputSpec`` says which it wants (models/task.py).
    """

    x: np.ndarray
    y: np.ndarray

    def __post_init__(self) -> None:
        if self.x.ndim < 1 or self.y.ndim < 1:
            raise DataError(
                f"x and y need a sample axis, got shapes {self.x.shape}, {self.y.shape}"
            )
        if self.y.shape[0] != self.x.shape[0]:
            raise DataError(
                f"x has {self.x.shape[0]} samples but y has {self.y.shape[0]} (y: {self.y.shape})"
            )

    def __len__(self) -> int:
        return int(self.y.shape[0])

    def subset(self, indices: np.ndarray) -> Dataset:
        """The samples at ``indices``, in that order."""
        return Dataset(self.x[indices], self.y[indices])


def make_dataset(images: np.ndarray, labels: np.ndarray, scaled: bool = True) -> Dataset:
    """A Dataset of ``(N, H, W, 1)`` float32 images (uint8 scaled to [0, 1]) and int32 labels.

    ``(N, H, W)`` images gain a channel axis; ``(N, H, W, C)`` ones keep theirs.
    ``scaled`` False keeps uint8 images as the pixels they are (splitting them into files
    needs no floats).
    """
    # uint8: one pass through a 256-entry table, the same floats as x / 255 in float32
    # (0.2 instead of 1.2 s for Fashion-MNIST's 60,000 images)
    uint8 = images.dtype == np.uint8
    if uint8 and not scaled:
        x = images
    else:
        x = _UINT8_SCALED[images] if uint8 else np.asarray(images, dtype=np.float32)
    if x.ndim == 3:
        x = x[..., None]
    return Dataset(x, np.asarray(labels, dtype=np.int32))


def read_idx(path: Path) -> np.ndarray:
    """Parse one IDX file (raw or gzip, chosen by the magic bytes) into an array."""
    raw = path.read_bytes()
    if raw[:2] == b"\x1f\x8b":
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError) as err:
            raise DataError(f"{path}: corrupt gzip data ({err})") from err
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_DTYPES:
        raise DataError(f"{path}: not an IDX file (bad magic {raw[:4].hex()})")
    ndim = raw[3]
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise DataError(f"{path}: IDX header truncated")
    shape = tuple(int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    dtype = np.dtype(_IDX_DTYPES[raw[2]])
    expected = int(np.prod(shape)) * dtype.itemsize
    if len(raw) - header != expected:
        raise DataError(f"{path}: IDX body has {len(raw) - header} bytes, expected {expected}")
    return np.frombuffer(raw, dtype=dtype, offset=header).reshape(shape)


def _find_idx(directory: Path, stem: str) -> Path:
    for name in (stem + ".gz", stem, stem.replace("-idx", ".idx")):
        if (directory / name).is_file():
            return directory / name
    raise DataError(
        f"dataset directory {directory} has no {stem}.gz (or {stem}); it needs the four "
        f"standard IDX files {', '.join(IDX_FILES.values())} (apt-get install "
        "dataset-fashion-mnist, or `make setup`)"
    )


def load_idx_dir(
    path: str | os.PathLike[str] = DEFAULT_FASHION_MNIST, scaled: bool = True
) -> tuple[Dataset, Dataset]:
    """Load the (train, test) splits from a directory with the four standard IDX files
    (``scaled`` False: uint8 pixels as stored, see `make_dataset`)."""
    directory = Path(path)
    if not directory.is_dir():
        raise DataError(f"dataset directory {directory} does not exist")
    arrays = {key: read_idx(_find_idx(directory, stem)) for key, stem in IDX_FILES.items()}
    for split in ("train", "test"):
        n_img, n_lab = len(arrays[f"{split}_images"]), len(arrays[f"{split}_labels"])
        if n_img != n_lab:
            raise DataError(f"{directory}: {split} has {n_img} images but {n_lab} labels")
    train = make_dataset(arrays["train_images"], arrays["train_labels"], scaled)
    test = make_dataset(arrays["test_images"], arrays["test_labels"], scaled)
    return train, test


def save_npz(path: str | os.PathLike[str], ds: Dataset) -> None:
    """Write a dataset as an ``.npz`` with arrays ``x`` and ``y``."""
    np.savez_compressed(Path(path), x=ds.x, y=ds.y)


def load_arrays(path: str | os.PathLike[str]) -> Dataset:
    """The arrays ``x`` and ``y`` of an ``.npz`` file as stored (any shapes and dtypes)."""
    p = Path(path)
    if not p.is_file():
        raise DataError(f"dataset {p} does not exist (want an .npz file with arrays x and y)")
    try:
        with np.load(p, allow_pickle=False) as f:
            x, y = f["x"], f["y"]
    except KeyError as err:
        raise DataError(f"{p}: .npz must hold arrays 'x' and 'y' ({err})") from err
    except (OSError, ValueError) as err:
        raise DataError(f"{p}: not a readable .npz file ({err})") from err
    return Dataset(x, y)


def load_dataset(path: str | os.PathLike[str]) -> Dataset:
    """Image data from an ``.npz`` (uint8 pixels scaled to [0, 1]) or an IDX dir (train split)."""
    p = Path(path)
    if p.is_dir():
        return load_idx_dir(p)[0]
    ds = load_arrays(p)
    if ds.x.dtype == np.uint8:
        return make_dataset(ds.x, ds.y)
    return Dataset(np.asarray(ds.x, np.float32), np.asarray(ds.y, np.int32))


def _check_split(num_samples: int, num_clients: int) -> None:
    if num_clients < 1 or num_clients > num_samples:
        raise DataError(f"num_clients must be in [1, {num_samples}], got {num_clients}")


def partition_iid(labels: np.ndarray, num_clients: int, seed: int) -> list[np.ndarray]:
    """Shuffle and split into ``num_clients`` near-equal parts (McMahan et al. 2017, IID)."""
    _check_split(len(labels), num_clients)
    perm = np.random.default_rng(seed).permutation(len(labels))
    return [np.sort(part) for part in np.array_split(perm, num_clients)]


def partition_shards(
    labels: np.ndarray, num_clients: int, seed: int, shards_per_client: int = 2
) -> list[np.ndarray]:
    """Sort by label, cut into shards, give each client ``shards_per_client`` at random.

    The pathological non-IID split of McMahan et al. 2017.
    """
    num_shards = num_clients * shards_per_client
    _check_split(len(labels), num_shards)
    rng = np.random.default_rng(seed)
    tiebreak = rng.permutation(len(labels))
    by_label = tiebreak[np.argsort(np.asarray(labels)[tiebreak], kind="stable")]
    shards = np.array_split(by_label, num_shards)
    order = rng.permutation(num_shards).reshape(num_clients, shards_per_client)
    return [np.sort(np.concatenate([shards[s] for s in row])) for row in order]


def partition_dirichlet(
    labels: np.ndarray,
    num_clients: int,
    seed: int,
    alpha: float = 0.5,
    min_size: int = 10,
    max_tries: int = 100,
) -> list[np.ndarray]:
    """Per class, split samples over clients by Dirichlet(alpha) proportions (Hsu et al. 2019).

    Redraws until every client has at least ``min_size`` samples.
    """
    labels = np.asarray(labels)
    _check_split(len(labels), num_clients)
    if alpha <= 0:
        raise DataError(f"alpha must be > 0, got {alpha}")
    if min_size * num_clients > len(labels):
        raise DataError(f"min_size {min_size} x {num_clients} clients > {len(labels)} samples")
    rng = np.random.default_rng(seed)
    for _ in range(max_tries):
        parts: list[list[np.ndarray]] = [[] for _ in range(num_clients)]
        for cls in np.unique(labels):
            idx = rng.permutation(np.flatnonzero(labels == cls))
            cuts = (np.cumsum(rng.dirichlet([alpha] * num_clients))[:-1] * len(idx)).astype(int)
            for client, chunk in enumerate(np.split(idx, cuts)):
                parts[client].append(chunk)
        result = [np.sort(np.concatenate(p)) for p in parts]
        if min(len(p) for p in result) >= min_size:
            return result
    raise DataError(
        f"no Dirichlet(alpha={alpha}) split gave every one of {num_clients} clients "
        f">= {min_size} samples in {max_tries} tries; raise alpha or lower min_size"
    )


def permute_pixels(ds: Dataset, seed: int) -> Dataset:
    """The same images with one fixed pixel permutation (Goodfellow et al. 2013 task)."""
    size = int(np.prod(ds.x.shape[1:]))
    perm = np.random.default_rng(seed).permutation(size)
    x = ds.x.reshape(len(ds), size)[:, perm].reshape(ds.x.shape)
    return Dataset(x, ds.y)


def class_split(ds: Dataset, classes: Sequence[int]) -> Dataset:
    """Only the samples whose label is in ``classes`` (split-class continual-learning task)."""
    wanted = np.asarray(sorted(set(int(c) for c in classes)), dtype=ds.y.dtype)
    return ds.subset(np.flatnonzero(np.isin(ds.y, wanted)))


Split = Callable[[np.ndarray, int, str, int, Mapping[str, Any]], list[np.ndarray]]
"""``(y, num_clients, partition, seed, options) -> index array per client``."""


def split_on_labels(
    y: np.ndarray, num_clients: int, partition: str, seed: int, options: Mapping[str, Any]
) -> list[np.ndarray]:
    """The default split: iid, label shards (McMahan 2017) or Dirichlet on labels (Hsu 2019)."""
    if partition == "iid":
        return partition_iid(y, num_clients, seed)
    if np.asarray(y).ndim != 1 or not np.issubdtype(np.asarray(y).dtype, np.integer):
        raise DataError(
            f"partition {partition!r} needs integer class labels y of shape (N,); this task's "
            f"labels are {np.asarray(y).dtype} {np.shape(y)[1:]} per example: use iid"
        )
    if partition == "shards":
        return partition_shards(y, num_clients, seed, int(options.get("shards", 2)))
    if partition == "dirichlet":
        alpha = float(options.get("alpha", 0.5))
        return partition_dirichlet(y, num_clients, seed, alpha=alpha)
    raise DataError(f"unknown partition {partition!r}; use iid | shards | dirichlet")


@dataclass(frozen=True)
class TaskData:
    """The data side of a built-in task, without its networks (and so without JAX).

    What splitting the task's data set into files needs (daemons/testnet/partition.py); the
    task's `Task` has the same fields, so either can be split.
    """

    name: str
    source: Callable[[str | None], tuple[Dataset, Dataset]]
    save_data: Callable[[str | os.PathLike[str], Dataset], None]
    num_classes: int
    classification: bool = True
    split: Split = split_on_labels
