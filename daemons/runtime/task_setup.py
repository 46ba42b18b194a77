"""The daemons' side of a task: load it at start (config errors exit 2), pin and check it.

The org loads its `[federation] task` and publishes the task's identity in every round
config; a client loads its `[data] task`, reads its data with it, and before each round
compares its installed task with the pinned one (name, model, parameter template, sha256 of
the source module), refusing to train on a mismatch.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from daemons.errors import ConfigError, RejectedUpdate
from daemons.runtime.config import DaemonConfig
from models.errors import StrategyError
from models.schema import FederationSchema
from models.strategies import strategy_uses_fisher
from models.task import Task
from models.tasks import get_task, task_identity
from models.tasks.loader import zeros_template
from models.types import ModelsError


class TaskMismatch(RejectedUpdate):
    """The round's pinned task differs from the one this client has installed."""

    def __init__(self, detail: str) -> None:
        super().__init__("task_mismatch", detail)


@dataclass(frozen=True, eq=False)
class OrgTask:
    """The org's task, the federation's blob schema and the identity it pins per round."""

    task: Task
    schema: FederationSchema
    identity: Mapping[str, Any]


def load_task(ref: str, model: str = "", where: str = "task") -> Task:
    """The task named by `ref` (built-in or `module:attribute`); a ConfigError if it fails."""
    try:
        return get_task(ref, model)
    except ModelsError as exc:
        raise ConfigError(f"{where} = {ref!r}: {exc}") from None


def org_task(cfg: DaemonConfig) -> OrgTask:
    """Load `[federation] task`/`model`/`strategy` and build the schema (ConfigError on failure)."""
    assert cfg.federation is not None and cfg.training is not None
    fed = cfg.federation
    task = load_task(fed.task, fed.model, f"{cfg.path}: federation.task")
    try:
        uses_fisher = strategy_uses_fisher(fed.strategy)
    except StrategyError as exc:
        raise ConfigError(f"{cfg.path}: federation.strategy: {exc}") from None
    schema = FederationSchema(zeros_template(task), cfg.training.penalty, fed.strategy, uses_fisher)
    return OrgTask(task, schema, task_identity(task, fed.task))


def ledger_sets(task: Task, configured: Mapping[str, Any], where: str) -> dict[str, Any]:
    """The forgetting ledger's sets: the task's own (`Task.heldout_sets`), then the config's.

    `configured` are the sets of `[federation] heldout_data`, already loaded: an addition for
    data the task does not declare; a name the task already uses is a ConfigError, since
    the task's set is the one verify re-derives.
    """
    try:
        sets = task.read_heldout()
    except (ModelsError, OSError, ValueError, KeyError) as exc:
        raise ConfigError(f"{where}: task {task.name!r}: its held-out sets: {exc}") from None
    both = sorted(set(sets) & set(configured))
    if both:
        raise ConfigError(
            f"{where}: federation.heldout_data names {both}, which task {task.name!r} already "
            "declares (its own held-out sets are always evaluated): rename or drop them"
        )
    return {**sets, **configured}


def client_task(ref: str, pinned: Mapping[str, Any] | None, model: str) -> Task:
    """This client's task for a round, after checking it against the round's pinned identity.

    No pin (an older org): the client's task with the round's model, as before.
    """
    if pinned is None:
        return _task_for_round(ref, model)
    if pinned["name"] != ref:
        raise TaskMismatch(
            f"the round pins task {pinned['name']!r} but this client runs {ref!r}: set "
            f"[data] task = {pinned['name']!r} and give data for it"
        )
    task = _task_for_round(ref, str(pinned["model"]))
    mine = task_identity(task, ref)
    if mine["digest"] != pinned["digest"]:
        raise TaskMismatch(
            f"task {ref!r}: the round pins source sha256 {pinned['digest'] or '(none)'} but "
            f"this client has {mine['digest'] or '(none)'}: install the org's version of "
            "the task module (same file) and restart the client"
        )
    if mine["template"] != pinned["template"] or mine["model"] != pinned["model"]:
        raise TaskMismatch(
            f"task {ref!r}: the round's model {pinned['model']!r} has another parameter "
            f"template than this client's {mine['model']!r} (same source sha256 "
            f"{mine['digest']}): check the task's options and restart the client"
        )
    return task


def _task_for_round(ref: str, model: str) -> Task:
    try:
        return get_task(ref, model)
    except ModelsError as exc:
        raise TaskMismatch(f"task {ref!r} with model {model!r}: {exc}") from None
