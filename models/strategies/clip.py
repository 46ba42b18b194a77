"""Norm clipping as a pre-filter: scale each update's change from the base to at most a bound.

Bounding ||θ_i − θ_base|| limits how far any one client (e.g. a scaling attacker) can pull
the aggregate, whatever strategy follows (as in DP-FedAvg, McMahan et al. 2018).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from models.errors import StrategyError
from models.strategies.base import (
    AggregateResult,
    ClientUpdate,
    Params,
    Strategy,
    check_same_names,
    flat64,
    to_tree,
)


def clip_update(base: dict[str, np.ndarray], update: ClientUpdate, bound: float) -> ClientUpdate:
    """The update with its params moved onto the ball of radius `bound` around the base."""
    params = flat64(update.params)
    check_same_names([params], "params", base)
    delta = {name: params[name] - base[name] for name in params}
    norm = float(np.sqrt(sum(float(np.dot(d.ravel(), d.ravel())) for d in delta.values())))
    if norm <= bound:
        return update
    scale = bound / norm
    clipped = {name: base[name] + scale * d for name, d in delta.items()}
    return dataclasses.replace(update, params=to_tree(clipped))


@dataclass(frozen=True)
class Clipped:
    """Any strategy behind a per-update L2 clip of the change from the base."""

    inner: Strategy
    bound: float

    def __post_init__(self) -> None:
        if not self.bound > 0:
            raise StrategyError(f"clip_norm must be > 0, got {self.bound}")

    @property
    def name(self) -> str:
        """The wrapped strategy's name."""
        return self.inner.name

    def init(self, base_params: Params) -> Params:
        """The wrapped strategy's state."""
        return self.inner.init(base_params)

    def aggregate(
        self, base_params: Params, updates: Sequence[ClientUpdate], state: Params | None = None
    ) -> AggregateResult | None:
        """Clip every update, then aggregate with the wrapped strategy."""
        base = flat64(base_params)
        return self.inner.aggregate(
            base_params, [clip_update(base, u, self.bound) for u in updates], state
        )
