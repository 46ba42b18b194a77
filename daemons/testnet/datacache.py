"""The testnet's data split, made once and reused by later runs with the same inputs.

Splitting Fashion-MNIST (read 60,000 images, partition, write one file per client) cost
~2.4 CPU-seconds of every `testnet up`. The files depend only on the task, the data set,
the partition plan and the code that splits, so they are kept under the run dir's `cache/`
by a key over all of those (the data set's file sizes and mtimes, the sha256 of every
source file under models/ and daemons/testnet/partition.py) and hard-linked (or copied)
into `data/`. Only built-in tasks are cached: a plug-in task's split is its own code.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
from pathlib import Path
from typing import Any

from models import registry

REPO = Path(__file__).resolve().parents[2]
CODE_DIRS = (REPO / "models",)
CODE_FILES = (REPO / "daemons" / "testnet" / "partition.py",)
MANIFEST = "split.json"


def split_key(task: str, model: str, source: Path | None, plan: Any) -> str:
    """A digest of everything the split files depend on."""
    h = hashlib.sha256()
    doc = {"task": task, "model": model, "plan": dataclasses.asdict(plan)}
    doc["source"] = str(source) if source else ""
    h.update(json.dumps(doc, sort_keys=True).encode())
    if source is not None and source.exists():
        files = sorted(source.rglob("*")) if source.is_dir() else [source]
        for f in files:
            st = f.stat()
            h.update(f"{f.relative_to(source.parent)}:{st.st_size}:{st.st_mtime_ns}".encode())
    code = sorted(p for d in CODE_DIRS for p in d.rglob("*.py")) + list(CODE_FILES)
    for p in code:
        h.update(str(p.relative_to(REPO)).encode())
        h.update(hashlib.sha256(p.read_bytes()).digest())
    return h.hexdigest()[:32]


def _place(src: Path, dst: Path) -> None:
    dst.unlink(missing_ok=True)
    try:
        os.link(src, dst)
    except OSError:
        shutil.copyfile(src, dst)


def cached_partitions(
    cache_dir: Path, key: str, out_dir: Path, num_clients: int
) -> tuple[tuple[Path, ...], Path, tuple[int, ...]] | None:
    """The cached split for `key` placed into `out_dir`: (client paths, test path, sizes)."""
    entry = cache_dir / key
    try:
        doc = json.loads((entry / MANIFEST).read_text())
    except (OSError, ValueError):
        return None
    sizes = tuple(int(n) for n in doc.get("client_sizes", ()))
    if len(sizes) != num_clients:
        return None
    out_dir.mkdir(parents=True, exist_ok=True)
    names = [f"client-{i}.npz" for i in range(num_clients)] + ["org-test.npz"]
    if not all((entry / n).is_file() for n in names):
        return None
    for n in names:
        _place(entry / n, out_dir / n)
    paths = tuple(out_dir / n for n in names[:-1])
    return paths, out_dir / "org-test.npz", sizes


def store_partitions(
    cache_dir: Path, key: str, paths: tuple[Path, ...], test: Path, sizes: tuple[int, ...]
) -> None:
    """Keep a finished split under `key` (written to a temporary dir, then renamed)."""
    entry, tmp = cache_dir / key, cache_dir / f".{key}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    for p in (*paths, test):
        _place(p, tmp / p.name)
    (tmp / MANIFEST).write_text(json.dumps({"client_sizes": list(sizes)}))
    shutil.rmtree(entry, ignore_errors=True)
    tmp.rename(entry)


def cacheable(task: str) -> bool:
    """Built-in tasks only: a plug-in's split code is not covered by the key."""
    return not registry.is_plugin(task)
