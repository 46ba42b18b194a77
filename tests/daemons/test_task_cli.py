"""`fedchain data split` and `fedchain new task`, through the real CLI entry point."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from daemons.cli.main import main
from daemons.runtime.config import load_config
from models.tasks import get_task

pytestmark = pytest.mark.timeout(300)


def test_data_split_writes_client_files_and_the_eval_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "data"
    args = ["data", "split", "--task", "breast_cancer", "--clients", "4"]
    assert main([*args, "--partition", "dirichlet", "--alpha", "0.5", "--out", str(out)]) == 0
    task = get_task("breast_cancer")
    parts = [task.read(str(out / f"client-{i}.npz")) for i in range(4)]
    test = task.read(str(out / "org-test.npz"), "org")
    assert sum(len(p) for p in parts) == 455 and len(test) == 114  # 569 patients, 80/20
    shares = [float(np.mean(p.y)) for p in parts]
    assert max(shares) - min(shares) > 0.2  # label-skewed hospitals
    printed = capsys.readouterr().out
    assert "client-3.npz" in printed and "labels [" in printed and "eval_data" in printed


def test_data_split_errors_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = str(tmp_path / "d")
    assert main(["data", "split", "--task", "mnist", "--clients", "2", "--out", out]) == 2
    assert "unknown task 'mnist'" in capsys.readouterr().err
    args = ["data", "split", "--task", "diabetes", "--clients", "2", "--partition", "shards"]
    assert main([*args, "--out", out]) == 2
    assert "integer class labels" in capsys.readouterr().err


def test_new_task_writes_a_project_that_loads(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "proj"
    assert main(["new", "task", "heart", "--dir", str(root)]) == 0
    for name in ("heart/task.py", "org.toml", "client-0.toml", "client-1.toml", "testnet.sh"):
        assert (root / name).is_file(), name
    org = load_config(root / "org.toml", "org")
    client = load_config(root / "client-1.toml", "client")
    assert org.federation is not None and org.federation.task == "heart.task:task"
    assert client.data is not None and client.data.task == "heart.task:task"
    monkeypatch.syspath_prepend(str(root))
    monkeypatch.chdir(root)
    assert (
        main(["data", "split", "--task", "heart.task:task", "--clients", "2", "--out", "data"]) == 0
    )
    task = get_task("heart.task:task")
    assert len(task.read(str(root / "data/client-0.npz"))) == 500
    assert main(["new", "task", "heart", "--dir", str(root)]) == 2  # not over a non-empty dir
    assert main(["new", "task", "fashion_mnist", "--dir", str(tmp_path / "x")]) == 2
    sys.modules.pop("heart.task", None)
    sys.modules.pop("heart", None)
