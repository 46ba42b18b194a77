"""A task's forgetting-ledger sets (`Task.heldout_sets`) and the built-in continual task."""

from __future__ import annotations

from dataclasses import replace

import jax
import numpy as np
import pytest

from daemons.errors import ConfigError
from daemons.runtime.task_setup import ledger_sets
from daemons.verify.pins import dataset_digest
from models import data as datalib
from models.data import DataError, Dataset
from models.evaluate import evaluate
from models.task import InputSpec, Task
from models.tasks import get_task


def tiny_task(sets: object) -> Task:
    def init(rng: jax.Array) -> dict:
        return {"out": {"w": jax.numpy.zeros((3, 2)), "b": jax.numpy.zeros(2)}}

    return Task(
        name="tiny",
        init=init,
        apply=lambda p, x: x @ p["out"]["w"] + p["out"]["b"],
        input_spec=InputSpec((3,)),
        heldout_sets=lambda: sets,  # type: ignore[arg-type,return-value]
    )


def rows(n: int, width: int = 3) -> Dataset:
    x = np.arange(n * width, dtype=np.float64).reshape(n, width)  # cast to float32 by the spec
    return Dataset(x, np.zeros(n, np.int64))


def test_read_heldout_conforms_each_set_and_names_what_is_wrong() -> None:
    got = tiny_task({"b": rows(2), "a": rows(4)}).read_heldout()
    assert list(got) == ["a", "b"] and got["a"].x.dtype == np.float32
    assert got["a"].y.dtype == np.int32
    assert replace(tiny_task({}), heldout_sets=None).read_heldout() == {}
    with pytest.raises(DataError, match=r"held-out set 'a'.*x has shape \(2, 5\)"):
        tiny_task({"a": rows(2, width=5)}).read_heldout()
    with pytest.raises(DataError, match="name 'a=b' must be a non-empty string without '='"):
        tiny_task({"a=b": rows(2)}).read_heldout()
    with pytest.raises(DataError, match=r"must return \{name: Dataset\}, got list"):
        tiny_task([rows(2)]).read_heldout()


def test_the_config_table_adds_sets_and_may_not_shadow_the_tasks() -> None:
    task = tiny_task({"task-a": rows(2)})
    both = ledger_sets(task, {"extra": rows(3)}, "org.toml")
    assert sorted(both) == ["extra", "task-a"]
    with pytest.raises(ConfigError, match=r"org.toml: federation.heldout_data names \['task-a'\]"):
        ledger_sets(task, {"task-a": rows(3)}, "org.toml")
    with pytest.raises(ConfigError, match=r"tiny.*its held-out sets.*without '='"):
        ledger_sets(tiny_task({"=": rows(2)}), {}, "org.toml")


def test_permuted_fashion_mnist_starts_from_task_a_and_holds_it_out() -> None:
    task = get_task("permuted_fashion_mnist")
    assert task.model == "logreg" and task.heldout_sets is not None
    sets = task.read_heldout()
    assert list(sets) == ["task-a"]
    _, test_a = datalib.load_idx_dir()
    assert np.array_equal(sets["task-a"].y, test_a.y) and len(sets["task-a"]) == len(test_a)
    assert dataset_digest(task.read_heldout()["task-a"]) == dataset_digest(sets["task-a"])
    _, test_b = task.source(None)
    assert np.array_equal(test_b.y, test_a.y)
    assert np.array_equal(np.sort(test_b.x[0].ravel()), np.sort(sets["task-a"].x[0].ravel()))
    assert not np.array_equal(test_b.x[0], sets["task-a"].x[0])  # same pixels, moved
    params = task.init(jax.random.PRNGKey(0))
    assert jax.tree_util.tree_all(
        jax.tree_util.tree_map(np.array_equal, params, task.init(jax.random.PRNGKey(1)))
    )
    acc_a = evaluate(task, params, sets["task-a"]).metrics["accuracy"]
    acc_b = evaluate(task, params, test_b).metrics["accuracy"]
    assert acc_a > 0.6 and acc_b < 0.3, (acc_a, acc_b)  # knows task A, not yet task B
    with pytest.raises(Exception, match="no model 'cnn'"):
        get_task("permuted_fashion_mnist", "cnn")
