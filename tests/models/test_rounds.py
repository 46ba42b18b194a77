"""server_update's own sums: FedCurv's U, V for a non-FedCurv strategy; the Fisher mean fallback."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from models.rounds import server_update
from models.strategies import ClientUpdate, get_strategy
from models.strategies.base import AggregateResult, sample_shares

BASE = {"layer": {"w": np.zeros((2,), np.float32)}}


def _base(fisher: float) -> dict[str, Any]:
    return {"params": BASE, "fisher": {"layer": {"w": np.full((2,), fisher, np.float32)}}}


def _tree(*values: float) -> dict[str, Any]:
    return {"layer": {"w": np.array(values, np.float32)}}


def _update(client: str, n: int, fisher: float, theta: float) -> ClientUpdate:
    f = _tree(fisher, 2 * fisher)
    v = _tree(fisher * theta, 2 * fisher * theta)
    return ClientUpdate(client, _tree(theta, theta), n, fisher=f, u=f, v=v)


UPDATES = [_update("0xA", 1, 1.0, 1.0), _update("0xB", 3, 2.0, 3.0), _update("0xC", 4, 0.5, 2.0)]


def test_fedcurv_sums_are_published_for_any_strategy() -> None:
    sections, _ = server_update(_base(0.0), UPDATES, get_strategy("fedavg"), fisher_gamma=0.5)
    # U = 1 + 2 + 0.5, V = 1*1 + 2*3 + 0.5*2 (second coordinate: twice each)
    np.testing.assert_array_equal(sections["u"]["layer"]["w"], [3.5, 7.0])
    np.testing.assert_array_equal(sections["v"]["layer"]["w"], [8.0, 16.0])
    assert sections["u"]["layer"]["w"].dtype == np.float32


class _NoFisherMean:
    """A plug-in-style strategy that leaves the Fisher mean to the org."""

    name = "mean"

    def init(self, base_params: Any) -> dict[str, Any]:
        return {}

    def aggregate(
        self, base_params: Any, updates: Sequence[ClientUpdate], state: Any = None
    ) -> AggregateResult:
        return AggregateResult(base_params, None, sample_shares(updates))


def test_the_org_takes_the_fisher_mean_when_the_strategy_gives_none() -> None:
    sections, _ = server_update(_base(2.0), UPDATES, _NoFisherMean(), 0.5)  # type: ignore[arg-type]
    # gamma * 2 + (1*1 + 3*2 + 4*0.5) / 8 = 1 + 9/8; second coordinate 1 + 18/8
    np.testing.assert_array_equal(sections["fisher"]["layer"]["w"], [2.125, 3.25])
