"""Bounded client influence: a round's update-norm screen and a cap on any one client's weight.

One client must not capture the model, neither by a huge update (params + 100·N(0,1)) nor by
claiming a huge `num_samples` (FedAvg weights by the claim, McMahan et al. 2017). Both rules
are decisions over ALL of a round's accepted updates, so they run when the round closes, as
pure functions of (client -> number) tables: sorted, float64 or exact integers, so the same
inputs always give the same verdicts and a replay reproduces them.

- Norm: an update whose change from the base has L2 norm > `max_norm_ratio` × the round's
  reference norm is rejected (reason `norm`). The reference is the LOWER median of the
  non-zero delta norms (for an even count the smaller middle value), so with two updates an
  outlier cannot set its own bar; updates that change nothing do not set the scale. With one
  non-zero update the rule cannot judge it (the org's absolute `max_update_norm` still does).
- Weight: sample counts are capped so that no client's share n_i / Σ n exceeds `max_share`
  (water-filling: the capped clients get equal counts, the others keep theirs). Where the
  share is infeasible (fewer than 1 / `max_share` clients with samples) every client gets
  the same count: equal weights, the most even split there is.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

import numpy as np

from models import pytree
from models.strategies.base import ClientUpdate

NORM = "norm"


@dataclass(frozen=True)
class InfluenceBounds:
    """Round-level bounds; None turns a rule off."""

    max_norm_ratio: float | None = 10.0
    max_share: float | None = 0.5

    def __post_init__(self) -> None:
        if self.max_norm_ratio is not None and not self.max_norm_ratio > 0:
            raise ValueError(f"max_norm_ratio must be > 0 or None, got {self.max_norm_ratio}")
        if self.max_share is not None and not 0 < self.max_share <= 1:
            raise ValueError(f"max_share must be in (0, 1] or None, got {self.max_share}")


@dataclass(frozen=True)
class Screened:
    """The updates that go on to the strategy (counts capped) and those rejected, with why."""

    updates: list[ClientUpdate]
    rejected: dict[str, tuple[str, str]] = field(default_factory=dict)
    norms: dict[str, float] = field(default_factory=dict)


def delta_norm(params: Mapping[str, Any], base: Mapping[str, Any]) -> float:
    """||params - base||_2 in float64, summed leaf by leaf in sorted-name order."""
    flat, flat_base = pytree.flatten(params), pytree.flatten(base)
    total = 0.0
    for name in sorted(flat):
        diff = np.asarray(flat[name], np.float64)
        if name in flat_base:
            diff = diff - np.asarray(flat_base[name], np.float64)
        total += float(np.dot(diff.ravel(), diff.ravel()))
    return math.sqrt(total)


def reference_norm(norms: Mapping[str, float]) -> float | None:
    """Lower median of the non-zero norms; None when fewer than two are non-zero."""
    values = sorted(v for v in norms.values() if v > 0)
    if len(values) < 2:
        return None
    return values[(len(values) - 1) // 2]


def norm_outliers(norms: Mapping[str, float], ratio: float) -> dict[str, str]:
    """Clients whose delta norm exceeds `ratio` × the reference norm, with a detail each."""
    ref = reference_norm(norms)
    if ref is None:
        return {}
    bar = ratio * ref
    return {
        client: f"delta L2 norm {norm:.6g} > {ratio:g} x round median {ref:.6g}"
        for client, norm in sorted(norms.items())
        if not norm <= bar
    }


def capped_counts(counts: Mapping[str, int], max_share: float) -> dict[str, int]:
    """Sample counts with no client's share above `max_share` (see the module docstring).

    Exact: the cap t for k capped clients solves t / (k t + U) = s with U the uncapped sum, in
    fractions, and is rounded down, so a capped share is at most s. Zero counts stay zero.
    """
    share = Fraction(max_share)
    positive = sorted(((n, c) for c, n in counts.items() if n > 0), reverse=True)
    out = {c: n for c, n in counts.items() if n <= 0}
    for k in range(len(positive)):
        if k * share >= 1:
            break
        rest = sum(n for n, _ in positive[k:])
        cap = share * rest / (1 - k * share)
        if positive[k][0] <= cap:
            top = math.floor(cap)
            out |= {c: (top if i < k else n) for i, (n, c) in enumerate(positive)}
            return out
    floor = min((n for n, _ in positive), default=0)
    return out | {c: floor for _, c in positive}


def screen(
    base_params: Mapping[str, Any], updates: Sequence[ClientUpdate], bounds: InfluenceBounds
) -> Screened:
    """Apply the round's norm rule, then cap the survivors' counts (sorted by client)."""
    ordered = sorted(updates, key=lambda u: u.client)
    norms = {u.client: delta_norm(u.params, base_params) for u in ordered}
    rejected: dict[str, tuple[str, str]] = {}
    if bounds.max_norm_ratio is not None:
        outliers = norm_outliers(norms, bounds.max_norm_ratio)
        rejected = {c: (NORM, d) for c, d in outliers.items()}
    kept = [u for u in ordered if u.client not in rejected]
    if bounds.max_share is not None and kept:
        counts = capped_counts({u.client: u.num_samples for u in kept}, bounds.max_share)
        kept = [dataclasses.replace(u, num_samples=counts[u.client]) for u in kept]
    return Screened(kept, rejected, norms)
