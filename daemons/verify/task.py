"""The round's task for the replay: loaded and checked against the round config's pin.

The org pins its task's identity (name, model, parameter template, sha256 of the source)
in every round config; verify loads the installed task of that name the way a client does
(`daemons.runtime.task_setup.client_task`) and refuses to replay with a task whose source differs.
The task's own forgetting-ledger sets (`Task.heldout_sets`) are derived here once per task.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from daemons.errors import FedchainError
from daemons.runtime.task_setup import client_task
from daemons.verify.checks import Check, ok, unchecked
from daemons.verify.pins import dataset_digest
from daemons.wire.round_config import RoundConfig
from models.data import Dataset
from models.schema import FederationSchema
from models.strategies import strategy_uses_fisher
from models.task import Task
from models.tasks.loader import zeros_template
from models.types import ModelsError

DEFAULT_TASK = "fashion_mnist"  # what an org from before tasks ran


@dataclass(frozen=True)
class RoundTask:
    """The task and the blob schema (template) the round's updates were judged against."""

    task: Task
    schema: FederationSchema


def round_task(cfg: RoundConfig, strategy: str) -> tuple[RoundTask | None, Check]:
    """The pinned task, installed here with the same source; else None and why not."""
    pinned = cfg.task
    name = DEFAULT_TASK if pinned is None else str(pinned["name"])
    try:
        task = client_task(name, pinned, cfg.model)
        uses_fisher = strategy_uses_fisher(strategy)
    except (FedchainError, ModelsError) as exc:
        return None, unchecked("task", f"cannot replay with task {name!r}: {_why(exc)}")
    schema = FederationSchema(zeros_template(task), cfg.training.penalty, strategy, uses_fisher)
    if pinned is None:
        return RoundTask(task, schema), unchecked(
            "task", f"the round config pins no task (older org): {name} with {cfg.model} assumed"
        )
    digest = str(pinned["digest"])[:16]
    return RoundTask(task, schema), ok("task", f"{name} ({cfg.model}), source sha256 {digest}…")


def _why(exc: Any) -> str:
    return str(getattr(exc, "detail", "") or exc)


@dataclass(frozen=True)
class TaskSets:
    """The task's own forgetting-ledger sets as derived here, their digests, or why not."""

    sets: Mapping[str, Dataset]
    digests: Mapping[str, str]
    error: str = ""


_TASK_SETS: dict[int, tuple[Task, TaskSets]] = {}


def task_heldout(task: Task) -> TaskSets:
    """`Task.read_heldout()` with the digests, once per task object (every round reuses it)."""
    hit = _TASK_SETS.get(id(task))
    if hit is not None and hit[0] is task:
        return hit[1]
    try:
        sets = task.read_heldout()
        found = TaskSets(sets, {name: dataset_digest(d) for name, d in sets.items()})
    except (ModelsError, OSError, ValueError, KeyError) as exc:
        found = TaskSets({}, {}, f"task {task.name!r} cannot derive its held-out sets: {exc}")
    _TASK_SETS[id(task)] = (task, found)
    return found
