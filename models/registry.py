"""The one list of names (tasks, models, penalties, strategies, optimizers, partitions).

JAX-free on purpose: the daemon config, the testnet spec and the CLI import it to check a
name at start without loading JAX; the networks, penalties and strategies import it so their
registries and these names cannot drift apart (tests/models/test_registry.py checks both).
A name with a colon, ``"my_pkg.my_task:task"``, is a plug-in found by import (Flower's
``module:attribute`` convention) and is checked when the daemon loads it.
"""

from __future__ import annotations

# Built-in tasks -> their models; the first model is the task's default.
TASK_MODELS: dict[str, tuple[str, ...]] = {
    "fashion_mnist": ("2nn", "logreg", "cnn"),
    "breast_cancer": ("logreg", "mlp"),
    "diabetes": ("linear", "mlp"),
    # continual learning: task B (permuted pixels) from task A's model, task A held out
    "permuted_fashion_mnist": ("logreg",),
}
TASKS: tuple[str, ...] = tuple(TASK_MODELS)
# Built-in tasks whose data side (a `models.data.TaskData` called DATA) loads without JAX.
TASK_DATA_MODULES: dict[str, str] = {"fashion_mnist": "models.tasks.fashion_mnist_data"}
DEFAULT_TASK = "fashion_mnist"
# Fashion-MNIST's networks, in the order the CLI has always listed them.
MODELS: tuple[str, ...] = ("logreg", "2nn", "cnn")
PENALTIES: tuple[str, ...] = ("none", "ewc", "fedprox", "fedcurv")
STRATEGIES: tuple[str, ...] = (
    "fedavg",
    "fedcurv",
    "fisher_merge",
    "median",
    "trimmed_mean",
    "krum",
    "multi_krum",
    "fedadam",
    "fedyogi",
    "fedavgm",
)
OPTIMIZERS: tuple[str, ...] = ("sgd", "adam")
PARTITIONS: tuple[str, ...] = ("iid", "shards", "dirichlet")
# Penalties and strategies that read the Fisher diagonal (EWC's importance, FedCurv's u = F,
# Fisher-weighted merging); a plug-in strategy says so with a `uses_fisher = True` attribute.
FISHER_PENALTIES = frozenset({"ewc", "fedcurv"})
FISHER_STRATEGIES = frozenset({"fedcurv", "fisher_merge"})


def is_plugin(name: str) -> bool:
    """True for a ``module:attribute`` reference (a user's task or strategy)."""
    return ":" in name


def check_plugin_ref(name: str) -> str | None:
    """None if ``name`` is a well-formed ``pkg.module:attr`` reference, else what is wrong."""
    module, _, attr = name.partition(":")
    parts = module.split(".")
    if not module or not attr or not all(p.isidentifier() for p in parts):
        return f"{name!r} is not of the form 'package.module:attribute'"
    if not all(p.isidentifier() for p in attr.split(".")):
        return f"{name!r}: {attr!r} is not an attribute name"
    return None


def task_models(task: str) -> tuple[str, ...]:
    """The model names a built-in task offers (empty for a plug-in task: it has its own)."""
    return TASK_MODELS.get(task, ())


def default_model(task: str) -> str:
    """The model a built-in task uses when none is named ("" for a plug-in task)."""
    models = task_models(task)
    return models[0] if models else ""
