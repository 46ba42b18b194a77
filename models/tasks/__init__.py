"""Built-in tasks and the loader of a task by name or ``module:attribute`` reference.

The loader (and with it JAX) is imported on first use, so a task's JAX-free data side
(e.g. ``models.tasks.fashion_mnist_data``) imports without it.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from models.tasks.loader import TaskError, get_task, load_task, task_identity

__all__ = ["TaskError", "get_task", "load_task", "task_identity"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        return getattr(importlib.import_module("models.tasks.loader"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
