"""Krum and Multi-Krum (Blanchard et al. 2017): keep the updates closest to their neighbours.

score(i) = Σ of the squared distances from update i to its n − f − 2 nearest other updates;
Krum keeps the single best-scoring update, Multi-Krum averages the m best (uniformly, as in
the paper: a Byzantine client could claim any sample count). With n ≤ f + 2 the neighbour
count is clamped to at least one, which keeps the rule defined but voids its guarantee.
Ties go to the client that sorts first, so the choice is deterministic.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

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
    weighted_sum,
)


def pairwise_sq_distances(params: list[Flat]) -> np.ndarray:
    """n x n matrix of ||θ_i − θ_j||² over all leaves, in float64."""
    vectors = [np.concatenate([flat[name].ravel() for name in sorted(flat)]) for flat in params]
    n = len(vectors)
    dist = np.zeros((n, n))
    for i in range(n):
        for j in range(i + 1, n):
            diff = vectors[i] - vectors[j]
            dist[i, j] = dist[j, i] = float(np.dot(diff, diff))
    return dist


def krum_scores(dist: np.ndarray, f: int) -> np.ndarray:
    """Each update's sum of squared distances to its n − f − 2 nearest neighbours."""
    n = dist.shape[0]
    k = min(max(n - f - 2, 1), n - 1)
    scores = np.zeros(n)
    for i in range(n):
        others = np.sort(np.delete(dist[i], i))
        scores[i] = float(np.sum(others[:k]))
    return scores


@dataclass(frozen=True)
class MultiKrum(Stateless):
    """Multi-Krum with f assumed Byzantine clients, averaging the m best (m=None: n − f)."""

    f: int = 1
    m: int | None = None
    name: str = "multi_krum"

    def __post_init__(self) -> None:
        if self.f < 0 or (self.m is not None and self.m < 1):
            raise StrategyError(f"{self.name} needs f >= 0 and m >= 1, got f={self.f}, m={self.m}")

    def _combine(self, updates: list[ClientUpdate], params: list[Flat], base: Flat) -> Combined:
        n = len(updates)
        scores = krum_scores(pairwise_sq_distances(params), self.f)
        m = min(self.m if self.m is not None else max(n - self.f, 1), n)
        chosen = sorted(int(i) for i in np.argsort(scores, kind="stable")[:m])
        mean = weighted_sum([params[i] for i in chosen], [1.0] * m)
        cut = max(scores[i] for i in chosen)
        excluded = {
            u.client: f"{self.name}: score {scores[i]:.6g} not in the {m} lowest (<= {cut:.6g})"
            for i, u in enumerate(updates)
            if i not in chosen
        }
        return Combined(
            params={name: acc / m for name, acc in mean.items()},
            weights={updates[i].client: 1.0 / m for i in chosen},
            excluded=excluded,
        )

    def aggregate(
        self, base_params: Params, updates: Sequence[ClientUpdate], state: Params | None = None
    ) -> AggregateResult | None:
        """Average the m updates with the lowest Krum scores."""
        return aggregate_with(base_params, updates, self._combine)


def krum(f: int = 1) -> MultiKrum:
    """Krum: Multi-Krum with m = 1, i.e. the single most central update."""
    return MultiKrum(f=f, m=1, name="krum")
