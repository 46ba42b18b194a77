"""The org's model work as pure functions: initial model, aggregation step, evaluation.

FedAvg and friends (McMahan et al. 2017) come from `models.strategies`; the federation's
Fisher is kept online, `F_r = gamma F_{r-1} + F̄_r` (online EWC, Schwarz et al. 2018 after
Kirkpatrick et al. 2017); FedCurv (Shoham et al. 2019) gets the sums of the clients' u, v.
Same inputs give bit-identical sections, so a restarted org publishes the same model CID.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import jax
import numpy as np

from models.codec import BlobMetadata, DecodedBlob
from models.data import Dataset
from models.evaluate import evaluate
from models.fisher import online_fisher
from models.influence import InfluenceBounds, screen
from models.schema import FederationSchema
from models.strategies import ClientUpdate, Strategy, get_strategy
from models.strategies.base import fisher_mean, flat64, to_tree
from models.strategies.curvature import curvature_sums
from models.task import Task
from models.tasks.fashion_mnist import get_model
from models.training import params_to_numpy
from models.validation import Limits

Sections = dict[str, dict[str, Any]]


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


def initial_sections(
    model_name: str, seed: int, with_fisher: bool = True, task: Task | None = None
) -> Sections:
    """Round-0 model from the seed (deterministic), with an all-zero federation Fisher.

    `task` None: Fashion-MNIST's network `model_name`.
    """
    init = task.init if task is not None else get_model(model_name).init
    params = params_to_numpy(init(jax.random.PRNGKey(seed)))
    return {"params": params, "fisher": _zeros(params)} if with_fisher else {"params": params}


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


@dataclass(frozen=True)
class Merged:
    """The new model's sections, the strategy's weights and exclusions, the sample count.

    `rejected`: updates the round-level influence bounds refused (reason, detail);
    `num_samples`: the included updates' claimed counts (the model's metadata).
    """

    sections: Sections
    weights: dict[str, float]
    excluded: dict[str, str]
    num_samples: int
    note: str
    rejected: dict[str, tuple[str, str]] = field(default_factory=dict)


def merge_step(
    base: DecodedBlob,
    updates: list[ClientUpdate],
    strategy_name: str,
    strategy_options: Mapping[str, Any],
    fisher_gamma: float,
    with_fisher: bool = True,
    bounds: InfluenceBounds | None = None,
    strategy: Strategy | None = None,
) -> Merged:
    """Screen the accepted updates (`bounds`), merge them into the base, update the Fisher.

    No evaluation: what the model blob's bytes depend on, and nothing else, so `fedchain
    verify` replays exactly this. Updates the round-level norm rule rejects are in
    `rejected`; the others reach the strategy with their sample counts capped
    (`models.influence`). A given `strategy` (the round's central DP-FedAvg, `models.dp`)
    replaces the named one.
    """
    if strategy is None:
        strategy = get_strategy(strategy_name, **dict(strategy_options))
    claimed = {u.client: u.num_samples for u in updates}
    rejected: dict[str, tuple[str, str]] = {}
    if bounds is not None:
        screened = screen(base.sections["params"], updates, bounds)
        updates, rejected = screened.updates, screened.rejected
    ordered = sorted(updates, key=lambda u: u.client)
    sections, weights, excluded = _merge(base, ordered, strategy, fisher_gamma, with_fisher)
    note = "" if ordered else "no valid update: the base model is kept"
    num_samples = sum(n for client, n in claimed.items() if client in weights)
    return Merged(sections, weights, excluded, num_samples, note, rejected)


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
    """Screen and merge the accepted updates (`merge_step`), then evaluate the new model.

    Without `with_fisher` the new model has no Fisher section (nothing reads it). `metrics`
    holds the task's metrics, headline first (`task` None: Fashion-MNIST's network named in
    the base's metadata). `heldout`: the forgetting ledger's sets, each evaluated too. A
    given `strategy` (the round's central DP-FedAvg, `models.dp`) replaces the named one.
    """
    started = time.perf_counter()
    args = (strategy_name, strategy_options, fisher_gamma, with_fisher, bounds, strategy)
    merged = merge_step(base, updates, *args)
    aggregate_s = time.perf_counter() - started
    started = time.perf_counter()
    model = task if task is not None else get_model(base.metadata.model_name)
    params = merged.sections["params"]
    metrics = eval_metrics(model, params, eval_data)
    ledger = {k: eval_metrics(model, params, d) for k, d in sorted((heldout or {}).items())}
    evaluate_s = time.perf_counter() - started
    return StepResult(
        merged.sections,
        merged.weights,
        merged.excluded,
        metrics,
        merged.note,
        aggregate_s,
        evaluate_s,
        merged.rejected,
        merged.num_samples,
        ledger,
    )


def _merge(
    base: DecodedBlob,
    ordered: list[ClientUpdate],
    strategy: Any,
    fisher_gamma: float,
    with_fisher: bool,
) -> tuple[Sections, dict[str, float], dict[str, str]]:
    """New sections (params, online Fisher, server state, FedCurv sums), weights, exclusions."""
    params = base.sections["params"]
    state = base.sections.get("server_state") or strategy.init(params)
    result = strategy.aggregate(params, ordered, state) if ordered else None
    sections: Sections = {"params": params}
    if with_fisher:  # a base from rounds that used no Fisher has none: zero, as round 0's
        sections["fisher"] = base.sections.get("fisher") or _zeros(params)
    if result is None:
        _add_state(sections, state)
        return sections, {}, {}
    sections["params"] = params_to_numpy(result.params)
    if with_fisher:
        mean_fisher = result.fisher if result.fisher is not None else _fisher_mean(ordered)
        sections["fisher"] = params_to_numpy(
            online_fisher(sections["fisher"], mean_fisher, fisher_gamma)
        )
    _add_state(sections, result.state)
    if result.u is not None and result.v is not None:
        sections["u"], sections["v"] = params_to_numpy(result.u), params_to_numpy(result.v)
    else:
        _add_curvature_sums(sections, [u for u in ordered if u.client in result.weights])
    return sections, dict(result.weights), dict(result.excluded)


def _zeros(params: Mapping[str, Any]) -> dict[str, Any]:
    return jax.tree_util.tree_map(lambda a: np.zeros(np.shape(a), np.float32), dict(params))


def _add_state(sections: Sections, state: Any) -> None:
    """Keep a strategy's server state (e.g. FedAdam moments) in the blob, if it has arrays."""
    if isinstance(state, Mapping) and jax.tree_util.tree_leaves(state):
        sections["server_state"] = params_to_numpy(dict(state))


def _fisher_mean(updates: list[ClientUpdate]) -> dict[str, Any]:
    """The clients' mean Fisher when the strategy gives none (a plug-in's, or DP-FedAvg's)."""
    mean = fisher_mean(updates, flat64(updates[0].params))
    # Updates from clients that sent none: the Fisher gains nothing.
    return _zeros(updates[0].params) if mean is None else mean


def _add_curvature_sums(sections: Sections, included: list[ClientUpdate]) -> None:
    """FedCurv: publish U = sum u_i and V = sum v_i of the included updates."""
    us = [flat64(u.u) for u in included if u.u is not None]
    vs = [flat64(u.v) for u in included if u.v is not None]
    if us and len(us) == len(vs) == len(included):
        u_sum, v_sum = curvature_sums(us, vs)
        sections["u"], sections["v"] = to_tree(u_sum), to_tree(v_sum)
