"""One federated round as pure functions: the server's init and merge, the client's training.

fedjax's shape (`fedjax.algorithms.fed_avg`): `initial_sections` is the server's init,
`server_update` its merge of the clients' updates into the base, `client_update` the local
training from that base. No I/O: the daemons read and write blobs and the chain around
these, and `fedchain verify` replays the very same `server_update`, so the org and an
auditor cannot drift. FedAvg and friends (McMahan et al. 2017) come from
`models.strategies`; the federation's Fisher is kept online, `F_r = gamma F_{r-1} + F̄_r`
(online EWC, Schwarz et al. 2018 after Kirkpatrick et al. 2017); FedCurv (Shoham et al.
2019) gets the sums of the clients' u, v. Same inputs give bit-identical sections.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import jax
import numpy as np

from models.data import Dataset
from models.fisher import online_fisher
from models.influence import InfluenceBounds, screen
from models.penalties import fedcurv_others, make_penalty
from models.strategies import ClientUpdate, Strategy
from models.strategies.base import fisher_mean, flat64, to_tree
from models.strategies.curvature import curvature_sums
from models.task import Task
from models.tasks.fashion_mnist import get_model
from models.training import OptimizerRecipe, TrainMetrics, local_train, params_to_numpy

Sections = dict[str, dict[str, Any]]

# XLA's CPU backend compiles a seeded init (threefry for every tensor) in ~1.5 s at its
# default optimisation level and in ~0.6 s at level 1, with the same bits as the eager init
# for every built-in task and jax.nn's initializers (tests/models/test_initial_model.py);
# level 0 gives other floats, so it is not used.
_INIT_COMPILER_OPTIONS: dict[str, str | bool] = {"xla_backend_optimization_level": "1"}


def initial_sections(
    model_name: str, seed: int, with_fisher: bool = True, task: Task | None = None
) -> Sections:
    """Round-0 model from the seed (deterministic), with an all-zero federation Fisher.

    `task` None: Fashion-MNIST's network `model_name`.
    """
    init = task.init if task is not None else get_model(model_name).init
    params = params_to_numpy(seeded_init(init, seed))
    return {"params": params, "fisher": _zeros(params)} if with_fisher else {"params": params}


def seeded_init(init: Callable[[jax.Array], Any], seed: int) -> Any:
    """``init(PRNGKey(seed))``: on CPU as one program compiled at XLA's optimisation level 1
    (the round-0 model is on the org's and every verifier's critical path), elsewhere, or for
    an init that cannot be traced, eager."""
    key = jax.random.PRNGKey(seed)
    if jax.default_backend() != "cpu":
        return init(key)
    try:
        compiled = jax.jit(init).lower(key).compile(compiler_options=_INIT_COMPILER_OPTIONS)
    except (TypeError, jax.errors.JAXIndexError):  # jax's tracer errors are TypeErrors
        return init(key)  # an init that cannot be traced (reads the key in Python): eager
    return compiled(key)


@dataclass(frozen=True)
class ServerReport:
    """How a merge went: the strategy's weights and exclusions, the included sample count.

    `rejected`: updates the round-level influence bounds refused (reason, detail);
    `num_samples`: the included updates' claimed counts (the model's metadata); `note`: why
    the base was kept, if it was.
    """

    weights: dict[str, float]
    excluded: dict[str, str]
    num_samples: int
    note: str
    rejected: dict[str, tuple[str, str]] = field(default_factory=dict)


def server_update(
    base: Mapping[str, Any],
    updates: list[ClientUpdate],
    strategy: Strategy,
    fisher_gamma: float,
    with_fisher: bool = True,
    bounds: InfluenceBounds | None = None,
) -> tuple[Sections, ServerReport]:
    """Screen the accepted updates (`bounds`), merge them into the base's sections, update the
    Fisher; returns the new model's sections and the report.

    What the model blob's bytes depend on, and nothing else (no evaluation), so `fedchain
    verify` replays exactly this. Updates the round-level norm rule rejects are in the
    report's `rejected`; the others reach `strategy` with their sample counts capped
    (`models.influence`). Without `with_fisher` the new model has no Fisher section.
    """
    claimed = {u.client: u.num_samples for u in updates}
    rejected: dict[str, tuple[str, str]] = {}
    if bounds is not None:
        screened = screen(base["params"], updates, bounds)
        updates, rejected = screened.updates, screened.rejected
    ordered = sorted(updates, key=lambda u: u.client)
    sections, weights, excluded = _merge(base, ordered, strategy, fisher_gamma, with_fisher)
    note = "" if ordered else "no valid update: the base model is kept"
    num_samples = sum(n for client, n in claimed.items() if client in weights)
    return sections, ServerReport(weights, excluded, num_samples, note, rejected)


def client_update(
    model: Any, base: Mapping[str, Any], data: Dataset, recipe: OptimizerRecipe, penalty: Any
) -> tuple[Any, TrainMetrics]:
    """Train on `data` from the base's params under `penalty` (`local_penalty`): the client's
    twin of `server_update`; the trained params (computed, not just dispatched) and metrics."""
    trained, metrics = local_train(model, base["params"], data, recipe, penalty)
    return jax.block_until_ready(trained), metrics


@dataclass(frozen=True)
class PreviousUpdate:
    """This client's u_i, v_i from the round whose model is now the base (FedCurv only)."""

    u: Mapping[str, Any]
    v: Mapping[str, Any]


def local_penalty(
    base: Mapping[str, Any], kind: str, lam: float, mu: float, previous: PreviousUpdate | None
) -> Any:
    """The configured penalty anchored at the base's sections (None for "none").

    Local objective `CE + (λ/2) Σ F ⊙ (θ - θ_base)²` (EWC, Kirkpatrick et al. 2017) with the
    federation Fisher from the base; FedProx likewise; FedCurv (Shoham et al. 2019) from the
    base's sums less this client's `previous` (u_i, v_i) of the round the base settled.
    """
    params = base["params"]
    if kind != "fedcurv":
        fisher = base.get("fisher")
        if fisher is None and kind == "ewc":  # a base from rounds that used no Fisher: zero,
            fisher = jax.tree_util.tree_map(np.zeros_like, params)  # as in round 1
        return make_penalty(kind, anchor=params, fisher=fisher, lam=lam, mu=mu)
    zeros = jax.tree_util.tree_map(np.zeros_like, params)
    u_sum, v_sum = base.get("u", zeros), base.get("v", zeros)
    own_u = previous.u if previous else None
    own_v = previous.v if previous else None
    u_others, v_others = fedcurv_others(u_sum, v_sum, own_u, own_v)  # type: ignore[arg-type]
    return make_penalty(kind, u_others=u_others, v_others=v_others, lam=lam)


def _merge(
    base: Mapping[str, Any],
    ordered: list[ClientUpdate],
    strategy: Any,
    fisher_gamma: float,
    with_fisher: bool,
) -> tuple[Sections, dict[str, float], dict[str, str]]:
    """New sections (params, online Fisher, server state, FedCurv sums), weights, exclusions."""
    params = base["params"]
    state = base.get("server_state") or strategy.init(params)
    result = strategy.aggregate(params, ordered, state) if ordered else None
    sections: Sections = {"params": params}
    if with_fisher:  # a base from rounds that used no Fisher has none: zero, as round 0's
        sections["fisher"] = base.get("fisher") or _zeros(params)
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
