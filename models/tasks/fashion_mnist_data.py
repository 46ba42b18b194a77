"""Fashion-MNIST's data side: shapes, files and the data set, without JAX.

`models/tasks/fashion_mnist.py` builds the task (networks, loss) on these. The testnet's
supervisor splits the data set through `DATA` alone, so a cold `testnet up` loads no JAX
before the org can start (docs/testnet.md, "Start-up").
"""

from __future__ import annotations

import os

import numpy as np

from models import data as datalib
from models.data import DataError, Dataset, TaskData

NUM_CLASSES = 10
INPUT_SHAPE = (28, 28, 1)


def load(path: str) -> Dataset:
    """A client's or the org's data: an ``.npz`` (x, y; uint8 pixels scaled) or an IDX dir."""
    ds = datalib.load_dataset(path)
    if ds.x.shape[1:] != INPUT_SHAPE and ds.x[0].size == 784:  # (N, 784) or (N, 28, 28)
        ds = Dataset(ds.x.reshape(-1, *INPUT_SHAPE), ds.y)
    return ds


def source(path: str | None) -> tuple[Dataset, Dataset]:
    """The whole (train, test) data set from the IDX directory ``path`` (default: Debian's)."""
    return datalib.load_idx_dir(path or datalib.DEFAULT_FASHION_MNIST)


def source_pixels(path: str | None) -> tuple[Dataset, Dataset]:
    """`source` with the images as the uint8 pixels they are stored as: what splitting the
    data into files needs (no float round trip: 0.4 instead of 2.7 s for the 4-client split)."""
    return datalib.load_idx_dir(path or datalib.DEFAULT_FASHION_MNIST, scaled=False)


def save_uint8(path: str | os.PathLike[str], ds: Dataset) -> None:
    """Write ``x`` back as uint8 pixels: 4x smaller and lossless for IDX data.

    ``load`` scales uint8 ``x`` to [0, 1] again, so clients see the same floats. uint8 ``x``
    (from `source_pixels`) is written as it is.
    """
    if ds.x.dtype == np.uint8:
        np.savez(path, x=ds.x, y=ds.y.astype(np.int32))
        return
    pixels = np.rint(ds.x * 255.0)
    if not np.allclose(pixels / 255.0, ds.x, atol=1e-6):
        raise DataError("dataset is not 8-bit; cannot store it as uint8 pixels")
    np.savez(path, x=pixels.astype(np.uint8), y=ds.y.astype(np.int32))


DATA = TaskData("fashion_mnist", source_pixels, save_uint8, NUM_CLASSES)
