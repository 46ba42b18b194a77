"""Tasks: built-ins, plug-ins by module path, identity, and the Fisher for regression."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from models.evaluate import evaluate
from models.fisher import fisher_diagonal
from models.strategies import get_strategy, strategy_uses_fisher
from models.task import Task
from models.tasks import TaskError, get_task, task_identity
from models.tasks.fashion_mnist import get_model
from models.tasks.loader import param_template
from models.tasks.tabular import roc_auc
from models.training import OptimizerRecipe, local_train

TOY = "tests.models.plugin_pkg.toy"


def test_fashion_task_is_todays_network() -> None:
    task = get_task("fashion_mnist", "2nn")
    key = jax.random.PRNGKey(3)
    for a, b in zip(
        jax.tree_util.tree_leaves(task.init(key)),
        jax.tree_util.tree_leaves(get_model("2nn").init(key)),
        strict=True,
    ):
        np.testing.assert_array_equal(a, b)
    assert get_task().model == "2nn" and get_task("fashion_mnist", "cnn").model == "cnn"
    assert param_template(task)["fc1/w"] == ((784, 200), "float32")


def test_unknown_names_say_what_to_use() -> None:
    with pytest.raises(TaskError, match="choose one of fashion_mnist, breast_cancer, diabetes"):
        get_task("mnist")
    with pytest.raises(TaskError, match="has no model 'cnn'; choose one of logreg, mlp"):
        get_task("breast_cancer", "cnn")


def test_plugin_task_by_module_path() -> None:
    task = get_task(f"{TOY}:task")
    assert isinstance(task, Task) and task.module == TOY
    assert get_task(f"{TOY}:make", "toy").name == "toy"
    with pytest.raises(TaskError, match=r"cannot import 'no_such_pkg\.x'"):
        get_task("no_such_pkg.x:task")
    with pytest.raises(TaskError, match="no attribute 'nope'"):
        get_task(f"{TOY}:nope")
    with pytest.raises(TaskError, match=r"is a int, not a models\.task\.Task"):
        get_task(f"{TOY}:not_a_task")
    with pytest.raises(TaskError, match="float32 arrays only"):
        get_task(f"{TOY}:int_params")


def test_identity_pins_template_and_source_digest() -> None:
    ident = task_identity(get_task(f"{TOY}:task"), f"{TOY}:task")
    assert ident["name"] == f"{TOY}:task" and ident["model"] == "toy"
    assert ident["template"] == {
        "b": {"shape": [1], "dtype": "float32"},
        "w": {"shape": [3, 1], "dtype": "float32"},
    }
    import hashlib
    from pathlib import Path

    import tests.models.plugin_pkg.toy as toy

    assert ident["digest"] == hashlib.sha256(Path(toy.__file__).read_bytes()).hexdigest()


def test_regression_task_trains_and_has_a_gaussian_fisher() -> None:
    task = get_task(f"{TOY}:task")
    train, test = task.source(None)
    params = task.init(jax.random.PRNGKey(0))
    before = evaluate(task, params, test)
    params, metrics = local_train(task, params, train, OptimizerRecipe(epochs=20, batch_size=16))
    after = evaluate(task, params, test)
    assert metrics.accuracy is None and list(after.metrics) == ["rmse", "mae", "loss"]
    assert after.metrics["rmse"] < 0.05 < before.metrics["rmse"]
    # Gaussian log-likelihood at sigma 1: grad_b = (y - f), so F_b = mean residual^2 exactly
    fisher = fisher_diagonal(task, params, train, max_samples=None)
    residual = np.asarray(task.apply(params, jnp.asarray(train.x)))[:, 0] - train.y
    np.testing.assert_allclose(fisher["b"][0], np.mean(residual**2), rtol=1e-4)


@pytest.mark.parametrize(("name", "model"), [("breast_cancer", "mlp"), ("diabetes", "linear")])
def test_tabular_tasks_learn(name: str, model: str) -> None:
    task = get_task(name, model)
    train, test = task.source(None)
    assert train.x.shape[1:] == task.input_spec.x_shape and len(train) + len(test) in (569, 442)
    params = task.init(jax.random.PRNGKey(0))
    params, _ = local_train(task, params, train, OptimizerRecipe(epochs=10, batch_size=16))
    ev = evaluate(task, params, test).metrics
    if name == "breast_cancer":
        assert list(ev) == ["accuracy", "roc_auc", "loss"] and ev["roc_auc"] > 0.97
    else:
        assert list(ev) == ["rmse", "mae", "loss"] and ev["rmse"] < 65  # target std is ~77
    fisher = fisher_diagonal(task, params, train)
    assert all(float(np.sum(f)) > 0 for f in jax.tree_util.tree_leaves(fisher))


def test_roc_auc_by_hand() -> None:
    # positives score 0.9, 0.4; negatives 0.4, 0.1: pairs (0.9>0.4, 0.9>0.1, 0.4=0.4, 0.4>0.1)
    assert roc_auc(np.array([0.9, 0.4, 0.4, 0.1]), np.array([1, 1, 0, 0])) == 3.5 / 4


def test_plugin_strategy_by_module_path() -> None:
    strategy = get_strategy(f"{TOY}:MeanStrategy")
    assert strategy.name == "mean" and strategy_uses_fisher(f"{TOY}:MeanStrategy")
    assert not strategy_uses_fisher("fedavg") and strategy_uses_fisher("fisher_merge")
    from models.errors import StrategyError

    with pytest.raises(StrategyError, match="bad options"):
        get_strategy(f"{TOY}:MeanStrategy", nope=1)
    with pytest.raises(StrategyError, match="lacks"):
        get_strategy(f"{TOY}:make")


def test_tabular_tasks_say_how_to_install_scikit_learn(monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    from models.tasks import tabular

    monkeypatch.setitem(sys.modules, "sklearn", None)  # as if it were not installed
    monkeypatch.setattr(tabular, "_raw", tabular._raw.__wrapped__)  # bypass the cache
    with pytest.raises(Exception, match=r"pip install 'fedchain\[tabular\]'"):
        tabular._raw("diabetes")
