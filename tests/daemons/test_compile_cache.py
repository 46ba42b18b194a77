"""The persistent compilation cache: same bits cold, warm and without; a bad dir is survivable.

Each run is a fresh process (JAX reads the cache setting once per process and keeps compiled
programs in memory), training a small model with EWC and computing its Fisher, as a client does.
"""

import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest

from daemons.runtime.compile_cache import cache_dir_for, enable_compile_cache

TRAIN = r"""
import hashlib, json, sys
from pathlib import Path
import jax, numpy as np
from jax import monitoring
hits = []
monitoring.register_event_listener(
    lambda name, **kw: hits.append(name) if name.endswith("cache_hits") else None)
from daemons.runtime.compile_cache import enable_compile_cache
enabled = enable_compile_cache(Path(sys.argv[1])) if sys.argv[1] else False
from models.data import Dataset
from models.fisher import fisher_diagonal
from models.tasks.fashion_mnist import get_model
from models.penalties import make_penalty
from models.training import OptimizerRecipe, local_train, params_to_numpy
model = get_model("logreg")
rng = np.random.default_rng(0)
x = rng.random((40, 28, 28, 1), dtype=np.float32)
data = Dataset(x, rng.integers(0, 10, 40).astype(np.int32))
params = params_to_numpy(model.init(jax.random.PRNGKey(0)))
penalty = make_penalty("ewc", anchor=params, fisher=jax.tree.map(np.ones_like, params), lam=5.0)
recipe = OptimizerRecipe(epochs=2, batch_size=8, seed=3)
trained, metrics = local_train(model, params, data, recipe, penalty)
fisher = fisher_diagonal(model, trained, data, max_samples=30, seed=3)
leaves = [np.asarray(a) for a in jax.tree.leaves((trained, fisher))]
digest = hashlib.sha256(b"".join(a.tobytes() for a in leaves)).hexdigest()
print(json.dumps({"digest": digest, "loss": metrics.loss, "enabled": enabled, "hits": len(hits)}))
"""


def _train(cache: str) -> dict:
    env = dict(os.environ, JAX_PLATFORMS="cpu")
    out = subprocess.run(
        [sys.executable, "-c", TRAIN, cache],
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
        check=False,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    doc: dict = json.loads(out.stdout.strip().splitlines()[-1])
    doc["stderr"] = out.stderr
    return doc


def test_cached_programs_give_the_same_bits_as_fresh_ones(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    plain = _train("")
    cold = _train(str(cache))
    entries = list(cache.iterdir())
    warm = _train(str(cache))
    assert cold["enabled"] and warm["enabled"] and not plain["enabled"]
    assert len(entries) >= 3  # the epoch, the Fisher pass and small eager programs
    assert cold["hits"] == 0 and warm["hits"] >= 3  # the warm run loaded them from disk
    assert plain["digest"] == cold["digest"] == warm["digest"]
    assert plain["loss"] == cold["loss"] == warm["loss"]


def test_corrupt_entries_warn_and_compile_with_the_same_bits(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    good = _train(str(cache))
    for entry in cache.iterdir():
        if entry.is_file() and not entry.name.startswith("."):
            entry.write_bytes(b"not an executable")
    broken = _train(str(cache))
    assert broken["digest"] == good["digest"]
    assert "Error reading persistent compilation cache entry" in broken["stderr"]


def test_an_unwritable_cache_dir_is_a_warning_not_a_crash(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("in the way")
    with caplog.at_level(logging.WARNING, logger="fedchain.service"):
        assert enable_compile_cache(blocker / "cache") is False
    assert "compile cache disabled" in caplog.text
    assert "a-file" in caplog.text


def test_a_daemon_whose_cache_dir_is_unusable_still_trains(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("in the way")
    broken = _train(str(blocker / "cache"))
    assert broken["enabled"] is False and broken["hits"] == 0
    assert "compile cache disabled" in broken["stderr"]
    assert broken["digest"] == _train("")["digest"]


def test_the_default_dir_is_in_the_state_dir(tmp_path: Path) -> None:
    assert cache_dir_for(str(tmp_path)) == tmp_path / "compile-cache"
    assert cache_dir_for(str(tmp_path), "/elsewhere") == Path("/elsewhere")
