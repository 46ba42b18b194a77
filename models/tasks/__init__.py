"""Built-in tasks and the loader of a task by name or ``module:attribute`` reference."""

from models.tasks.loader import TaskError, get_task, load_task, task_identity

__all__ = ["TaskError", "get_task", "load_task", "task_identity"]
