"""Coordinate-wise robust statistics: median and trimmed mean (Yin et al. 2018).

Both ignore sample counts on purpose: a Byzantine client can claim any count, so weighting
by it would hand the attacker the aggregate. `weights` reports the nominal 1/n share.
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
    ranked,
)


def _equal_shares(updates: list[ClientUpdate]) -> dict[str, float]:
    return {u.client: 1.0 / len(updates) for u in updates}


def coordinate_median(params: list[Flat]) -> Flat:
    """The per-coordinate median over clients (mean of the two middle values for even n)."""
    return {name: np.median(stack, axis=0) for name, stack in ranked(params).items()}


def trimmed_mean(params: list[Flat], beta: float) -> Flat:
    """Drop the ⌊βn⌋ largest and smallest values per coordinate, average the rest."""
    n = len(params)
    k = min(int(np.floor(beta * n)), (n - 1) // 2)
    out: Flat = {}
    for name, stack in ranked(params).items():
        kept = np.sort(stack, axis=0)[k : n - k]
        acc = np.zeros_like(kept[0])
        for row in kept:
            acc += row
        out[name] = acc / kept.shape[0]
    return out


@dataclass(frozen=True)
class Median(Stateless):
    """Coordinate-wise median (Yin et al. 2018)."""

    name: str = "median"

    def aggregate(
        self, base_params: Params, updates: Sequence[ClientUpdate], state: Params | None = None
    ) -> AggregateResult | None:
        """Per-coordinate median of the params."""

        def combine(kept: list[ClientUpdate], params: list[Flat], base: Flat) -> Combined:
            return Combined(coordinate_median(params), _equal_shares(kept))

        return aggregate_with(base_params, updates, combine)


@dataclass(frozen=True)
class TrimmedMean(Stateless):
    """Coordinate-wise β-trimmed mean (Yin et al. 2018); β in [0, 0.5)."""

    beta: float = 0.1
    name: str = "trimmed_mean"

    def __post_init__(self) -> None:
        if not 0.0 <= self.beta < 0.5:
            raise StrategyError(f"trimmed_mean beta must be in [0, 0.5), got {self.beta}")

    def aggregate(
        self, base_params: Params, updates: Sequence[ClientUpdate], state: Params | None = None
    ) -> AggregateResult | None:
        """Per-coordinate trimmed mean (trimming at most (n-1)//2 from each side)."""

        def combine(kept: list[ClientUpdate], params: list[Flat], base: Flat) -> Combined:
            return Combined(trimmed_mean(params, self.beta), _equal_shares(kept))

        return aggregate_with(base_params, updates, combine)
