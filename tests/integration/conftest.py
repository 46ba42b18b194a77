"""Fixtures for the multi-process federation tests: small per-client data files, one per session."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from models.data import DEFAULT_FASHION_MNIST, load_idx_dir, partition_iid, save_npz

CLIENT_SAMPLES = 300
EVAL_SAMPLES = 500
MAX_CLIENTS = 5


@pytest.fixture(scope="session")
def fed_data(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """`org` (held-out eval set) and `client-<i>` .npz files cut from Fashion-MNIST."""
    if not DEFAULT_FASHION_MNIST.exists():
        pytest.fail(f"Fashion-MNIST not found at {DEFAULT_FASHION_MNIST}: run `make setup`")
    out = tmp_path_factory.mktemp("fed-data")
    train, test = load_idx_dir()
    head = train.subset(np.arange(CLIENT_SAMPLES * MAX_CLIENTS))
    parts = partition_iid(head.y, MAX_CLIENTS, seed=0)
    files = {"org": out / "org.npz"}
    save_npz(files["org"], test.subset(np.arange(EVAL_SAMPLES)))
    for i, idx in enumerate(parts):
        files[f"client-{i}"] = out / f"client-{i}.npz"
        save_npz(files[f"client-{i}"], head.subset(np.sort(idx)))
    return files
