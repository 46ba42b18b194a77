"""The org's model work around the pure merge: the timed, evaluated step, limits, metadata.

The merge itself is `models.rounds.server_update` (which `fedchain verify` replays); this
module times it and evaluates the new model for the manifest.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from models.codec import BlobMetadata, DecodedBlob
from models.data import Dataset
from models.evaluate import evaluate
from models.influence import InfluenceBounds
from models.rounds import Sections, server_update
from models.schema import FederationSchema
from models.strategies import ClientUpdate, Strategy, get_strategy
from models.task import Task
from models.tasks.fashion_mnist import get_model
from models.validation import Limits


@dataclass(frozen=True)
class StepResult:
    """A new model's sections and what the manifest says about how it was made."""

    sections: Sections
    weights: dict[str, float]
    excluded: dict[str, str]
    metrics: dict[str, float]
    note: str
    aggregate_s: float
    evaluate_s: float
    rejected: dict[str, tuple[str, str]] = field(default_factory=dict)
    num_samples: int = 0
    heldout: dict[str, dict[str, float]] = field(default_factory=dict)


def update_template(params: Mapping[str, Any], penalty: str) -> Sections:
    """The sections, keys and shapes a client update must have (`FederationSchema`)."""
    return FederationSchema.of(params, penalty, "fedavg").update_template()


def update_limits(max_bytes: int, with_fisher: bool, max_update_norm: float) -> Limits:
    """Blob bounds for one update: size, optional Fisher, absolute cap on ||params - base||.

    `max_update_norm` 0 means no absolute cap (the round-level rule in `aggregate_step` stays).
    """
    optional = frozenset() if with_fisher else frozenset({"fisher"})
    max_norm = max_update_norm if max_update_norm > 0 else None
    return Limits(max_bytes=max_bytes, optional_sections=optional, max_norm=max_norm)


def model_metadata(round_id: int, org: str, base_cid: str, num_samples: int, model: str) -> Any:
    """Metadata of the model the org publishes when it settles `round_id`."""
    return BlobMetadata(
        kind="model",
        round_id=round_id,
        client=org,
        base_cid=base_cid,
        num_samples=num_samples,
        model_name=model,
    )


def eval_metrics(model: Any, params: Mapping[str, Any], data: Dataset) -> dict[str, float]:
    """The manifest's metrics of `params` on one held-out set (the task's, headline first)."""
    ev = evaluate(model, dict(params), data)
    return {**ev.metrics, "num_samples": float(ev.num_samples)}


def aggregate_step(
    base: DecodedBlob,
    updates: list[ClientUpdate],
    strategy_name: str,
    strategy_options: Mapping[str, Any],
    fisher_gamma: float,
    eval_data: Dataset,
    with_fisher: bool = True,
    bounds: InfluenceBounds | None = None,
    task: Task | None = None,
    strategy: Strategy | None = None,
    heldout: Mapping[str, Dataset] | None = None,
) -> StepResult:
    """Screen and merge the accepted updates (`server_update`), then evaluate the new model.

    Without `with_fisher` the new model has no Fisher section (nothing reads it). `metrics`
    holds the task's metrics, headline first (`task` None: Fashion-MNIST's network named in
    the base's metadata). `heldout`: the forgetting ledger's sets, each evaluated too. A
    given `strategy` (the round's central DP-FedAvg, `models.dp`) replaces the named one.
    """
    started = time.perf_counter()
    if strategy is None:
        strategy = get_strategy(strategy_name, **dict(strategy_options))
    merge = (strategy, fisher_gamma, with_fisher, bounds)
    sections, report = server_update(base.sections, updates, *merge)
    aggregate_s = time.perf_counter() - started
    started = time.perf_counter()
    model = task if task is not None else get_model(base.metadata.model_name)
    params = sections["params"]
    metrics = eval_metrics(model, params, eval_data)
    ledger = {k: eval_metrics(model, params, d) for k, d in sorted((heldout or {}).items())}
    evaluate_s = time.perf_counter() - started
    return StepResult(
        sections,
        report.weights,
        report.excluded,
        metrics,
        report.note,
        aggregate_s,
        evaluate_s,
        report.rejected,
        report.num_samples,
        ledger,
    )
