"""Curvature-aware aggregation: FedCurv's sums (Shoham et al. 2019) and the Fisher-weighted merge.

Both need each client's Fisher diagonal; updates without one are excluded with
`missing_fisher`. FedCurv's v_i = u_i ⊙ θ_i is recomputed here from the client's u (or
Fisher) and params rather than taken from the blob: it is redundant, and trusting it would
let a client publish a v that does not match the params it was judged on.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from models.errors import StrategyError
from models.strategies.base import (
    AggregateResult,
    ClientUpdate,
    Combined,
    Flat,
    Params,
    Stateless,
    aggregate_with,
    check_same_names,
    flat64,
    sample_mean,
    sample_shares,
    weighted_sum,
)

_MISSING = "missing_fisher: the update carries no fisher (or u) section"


class _Curved(NamedTuple):
    """The updates that carry a Fisher (or u), with their params, curvatures and FedAvg mean."""

    kept: list[ClientUpdate]
    params: list[Flat]
    curv: list[Flat]
    mean: Flat
    excluded: dict[str, str]


def _curvatures(updates: list[ClientUpdate], params: list[Flat], base: Flat) -> _Curved | None:
    """Split off updates without a Fisher; None when no update has one."""
    kept, kept_params, curv, excluded = [], [], [], {}
    for update, flat in zip(updates, params, strict=True):
        source = update.u if update.u is not None else update.fisher
        if source is None:
            excluded[update.client] = _MISSING
            continue
        kept.append(update)
        kept_params.append(flat)
        curv.append(flat64(source))
    check_same_names(curv, "fisher", base)
    if not kept:
        return None
    mean = sample_mean(kept_params, [u.num_samples for u in kept])
    return _Curved(kept, kept_params, curv, mean, excluded)


def fisher_weighted(params: list[Flat], curv: list[Flat], fallback: Flat, eps: float) -> Flat:
    """Σ F_i θ_i / Σ F_i per coordinate, `fallback` where Σ F_i <= eps."""
    numer = _sum_products(params, curv)
    denom = weighted_sum(curv, [1.0] * len(curv))
    out: Flat = {}
    for name in numer:
        safe = denom[name] > eps
        ratio = numer[name] / np.where(safe, denom[name], 1.0)
        out[name] = np.where(safe, ratio, fallback[name])
    return out


def _products(params: list[Flat], curv: list[Flat]) -> list[Flat]:
    """Each client's F_i ⊙ θ_i (FedCurv's v_i), from its own params."""
    return [{n: c[n] * p[n] for n in p} for p, c in zip(params, curv, strict=True)]


def _sum_products(params: list[Flat], curv: list[Flat]) -> Flat:
    return weighted_sum(_products(params, curv), [1.0] * len(params))


def curvature_sums(us: Sequence[Flat], vs: Sequence[Flat]) -> tuple[Flat, Flat]:
    """FedCurv's published ``U = sum u_i`` and ``V = sum v_i``, in the given (client) order.

    The one place these sums are taken: the FedCurv strategy, and the org for a federation
    whose clients send u, v to another strategy (`models.rounds.server_update`).
    """
    return weighted_sum(us, [1.0] * len(us)), weighted_sum(vs, [1.0] * len(vs))


@dataclass(frozen=True)
class FedCurv(Stateless):
    """FedAvg params plus the published sums u = Σ F_i and v = Σ F_i ⊙ θ_i (Shoham et al. 2019)."""

    name: str = "fedcurv"

    def _combine(
        self, updates: list[ClientUpdate], params: list[Flat], base: Flat
    ) -> Combined | None:
        c = _curvatures(updates, params, base)
        if c is None:
            return None
        u_sum, v_sum = curvature_sums(c.curv, _products(c.params, c.curv))
        return Combined(c.mean, sample_shares(c.kept), c.excluded, u=u_sum, v=v_sum)

    def aggregate(
        self, base_params: Params, updates: Sequence[ClientUpdate], state: Params | None = None
    ) -> AggregateResult | None:
        """Sample-weighted mean + u/v sums; None when no update has a Fisher."""
        return aggregate_with(base_params, updates, self._combine)


@dataclass(frozen=True)
class FisherMerge(Stateless):
    """θ = Σ F_i θ_i / Σ F_i per coordinate, FedAvg where Σ F_i <= eps (Matena & Raffel 2022)."""

    eps: float = 1e-12
    name: str = "fisher_merge"

    def __post_init__(self) -> None:
        if not self.eps >= 0.0:
            raise StrategyError(f"fisher_merge eps must be >= 0, got {self.eps}")

    def _combine(
        self, updates: list[ClientUpdate], params: list[Flat], base: Flat
    ) -> Combined | None:
        c = _curvatures(updates, params, base)
        if c is None:
            return None
        merged = fisher_weighted(c.params, c.curv, c.mean, self.eps)
        mass = [float(sum(np.sum(a) for a in f.values())) for f in c.curv]
        total = sum(mass)
        weights = (
            {u.client: m / total for u, m in zip(c.kept, mass, strict=True)}
            if total > 0
            else sample_shares(c.kept)
        )
        return Combined(merged, weights, c.excluded)

    def aggregate(
        self, base_params: Params, updates: Sequence[ClientUpdate], state: Params | None = None
    ) -> AggregateResult | None:
        """Fisher-weighted merge; `weights` is each client's share of the total Fisher mass."""
        return aggregate_with(base_params, updates, self._combine)
