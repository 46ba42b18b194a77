"""Federated Averaging: the sample-weighted mean of the clients' params (McMahan et al. 2017)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from models.strategies.base import (
    AggregateResult,
    ClientUpdate,
    Combined,
    Flat,
    Params,
    Stateless,
    aggregate_with,
    sample_mean,
    sample_shares,
)


def combine_fedavg(updates: list[ClientUpdate], params: list[Flat], base: Flat) -> Combined:
    """θ = Σ n_i θ_i / Σ n_i."""
    del base
    mean = sample_mean(params, [u.num_samples for u in updates])
    return Combined(params=mean, weights=sample_shares(updates))


@dataclass(frozen=True)
class FedAvg(Stateless):
    """FedAvg weighted by num_samples (McMahan et al. 2017)."""

    name: str = "fedavg"

    def aggregate(
        self, base_params: Params, updates: Sequence[ClientUpdate], state: Params | None = None
    ) -> AggregateResult | None:
        """The sample-weighted mean; None for no usable updates."""
        return aggregate_with(base_params, updates, combine_fedavg)
