"""Find a task by built-in name or ``module:attribute``, and pin what it is (its identity).

The identity (name, model, parameter template, sha256 of the task's source module) goes into
every round config, so a client whose installed task differs from the org's refuses to train
instead of sending an update nobody can merge.
"""

from __future__ import annotations

import functools
import hashlib
import importlib
import importlib.util
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import jax
import numpy as np

from models import pytree, registry
from models.task import Task
from models.types import ModelsError


class TaskError(ModelsError):
    """A task could not be found, imported, or does not satisfy the Task interface."""


def get_task(name: str = registry.DEFAULT_TASK, model: str = "") -> Task:
    """A built-in task (``registry.TASKS``) or a plug-in one (``module:attribute``)."""
    name = name or registry.DEFAULT_TASK
    if registry.is_plugin(name):
        return load_task(name, model)
    if name not in registry.TASK_MODELS:
        raise TaskError(
            f"unknown task {name!r}; choose one of {', '.join(registry.TASKS)} or give "
            "'package.module:attribute' of your own Task"
        )
    model = model or registry.default_model(name)
    if model not in registry.task_models(name):
        raise TaskError(
            f"task {name!r} has no model {model!r}; choose one of "
            f"{', '.join(registry.task_models(name))}"
        )
    return _builtin(name, model)


@functools.cache
def _builtin(name: str, model: str) -> Task:
    if name == "fashion_mnist":
        from models.tasks.fashion_mnist import make_task

        return checked(make_task(model))
    if name == "permuted_fashion_mnist":
        from models.tasks.continual import make_task as make_continual

        return checked(make_continual(model))
    from models.tasks.tabular import make_task as make_tabular

    return checked(make_tabular(name, model))


@functools.cache
def load_task(ref: str, model: str = "") -> Task:
    """Import ``package.module:attribute``: a Task, or a callable returning one (``model`` arg).

    A callable is called with ``model=...`` when a model is named, else with no argument.
    """
    problem = registry.check_plugin_ref(ref)
    if problem:
        raise TaskError(f"task {problem}")
    module_name, _, attr = ref.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise TaskError(
            f"task {ref!r}: cannot import {module_name!r} ({exc}); install the package or put "
            "its directory on PYTHONPATH"
        ) from None
    obj: Any = module
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise TaskError(f"task {ref!r}: module {module_name!r} has no attribute {attr!r}")
        obj = getattr(obj, part)
    if not isinstance(obj, Task) and callable(obj):
        obj = obj(model=model) if model else obj()
    if not isinstance(obj, Task):
        raise TaskError(f"task {ref!r} is a {type(obj).__name__}, not a models.task.Task")
    if model and obj.model != model:
        raise TaskError(f"task {ref!r} has model {obj.model!r}, the config names {model!r}")
    from dataclasses import replace

    return checked(replace(obj, module=obj.module or module_name))


def param_template(task: Task) -> dict[str, tuple[tuple[int, ...], str]]:
    """``{path: (shape, dtype)}`` of the task's params, from ``jax.eval_shape`` (no compute)."""
    abstract = jax.eval_shape(task.init, jax.random.PRNGKey(0))
    if not isinstance(abstract, Mapping) or not abstract:
        raise TaskError(
            f"task {task.name!r}: init(rng) must return a non-empty nested dict of arrays, "
            f"got {type(abstract).__name__}"
        )
    try:
        flat = pytree.flatten(abstract)
    except ValueError as exc:
        raise TaskError(f"task {task.name!r}: params tree: {exc}") from None
    out = {}
    for path, leaf in flat.items():
        if not hasattr(leaf, "shape") or np.dtype(leaf.dtype) != np.float32:
            what = getattr(leaf, "dtype", type(leaf).__name__)
            raise TaskError(
                f"task {task.name!r}: param {path!r} is {what}; fedchain federates float32 "
                "arrays only (cast it in init, keep non-array state out of params)"
            )
        out[path] = (tuple(int(d) for d in leaf.shape), "float32")
    return out


def zeros_template(task: Task) -> dict[str, Any]:
    """A params-shaped tree of float32 zeros (the shapes every blob section is checked against)."""
    flat = {p: np.zeros(shape, np.float32) for p, (shape, _) in param_template(task).items()}
    return pytree.unflatten(flat)


def checked(task: Task) -> Task:
    """``task`` once its required fields are callables and its params template is sane."""
    for name in ("init", "apply", "loss", "metrics", "load_data"):
        if not callable(getattr(task, name)):
            raise TaskError(f"task {task.name!r}: {name} must be a function")
    if not task.name:
        raise TaskError("a task needs a non-empty name")
    param_template(task)
    return task


def source_digest(module: str) -> str:
    """sha256 hex of the source file of ``module`` ("" when it has none, e.g. a REPL)."""
    spec = importlib.util.find_spec(module) if module else None
    origin = spec.origin if spec else None
    if not origin or not Path(origin).is_file():
        return ""
    return hashlib.sha256(Path(origin).read_bytes()).hexdigest()


def task_identity(task: Task, ref: str = "") -> dict[str, Any]:
    """What the round config pins: task reference, model, params template, source digest."""
    template = {p: {"shape": list(s), "dtype": d} for p, (s, d) in param_template(task).items()}
    return {
        "name": ref or task.name,
        "model": task.model,
        "template": template,
        "digest": source_digest(task.module),
    }
