"""FedCurv sums and the Fisher-weighted merge: hand-checked numbers and exclusions."""

from __future__ import annotations

import numpy as np
import pytest

from models.strategies import AggregateResult, ClientUpdate, get_strategy

BASE = {"w": np.zeros(3, np.float32)}


def _u(client: str, theta: list[float], fisher: list[float] | None, n: int = 10) -> ClientUpdate:
    f = None if fisher is None else {"w": np.asarray(fisher, np.float32)}
    return ClientUpdate(client, {"w": np.asarray(theta, np.float32)}, n, fisher=f)


def _ok(result: AggregateResult | None) -> AggregateResult:
    assert result is not None
    return result


def test_fedcurv_publishes_u_and_v_sums_next_to_the_fedavg_params() -> None:
    updates = [_u("a", [1, 2, 3], [1, 0, 2], n=10), _u("b", [3, 4, 5], [3, 1, 0], n=30)]
    result = _ok(get_strategy("fedcurv").aggregate(BASE, updates))
    np.testing.assert_array_equal(result.params["w"], [2.5, 3.5, 4.5])
    assert result.u is not None and result.v is not None
    np.testing.assert_array_equal(result.u["w"], [4, 1, 2])
    np.testing.assert_array_equal(result.v["w"], [1 * 1 + 3 * 3, 0 * 2 + 1 * 4, 2 * 3 + 0 * 5])
    assert result.fisher is not None
    np.testing.assert_array_equal(result.fisher["w"], [2.5, 0.75, 0.5])


def test_fedcurv_prefers_u_over_fisher_and_recomputes_v_from_the_params() -> None:
    update = ClientUpdate(
        "a",
        {"w": np.array([2, 2, 2], np.float32)},
        5,
        fisher={"w": np.ones(3, np.float32)},
        u={"w": np.array([1, 2, 3], np.float32)},
        v={"w": np.array([1e6, 1e6, 1e6], np.float32)},
    )
    result = _ok(get_strategy("fedcurv").aggregate(BASE, [update]))
    np.testing.assert_array_equal(result.u["w"], [1, 2, 3])  # type: ignore[index]
    np.testing.assert_array_equal(result.v["w"], [2, 4, 6])  # type: ignore[index]


@pytest.mark.parametrize("name", ["fedcurv", "fisher_merge"])
def test_updates_without_a_fisher_are_excluded(name: str) -> None:
    updates = [_u("a", [1, 1, 1], [1, 1, 1]), _u("b", [9, 9, 9], None)]
    result = _ok(get_strategy(name).aggregate(BASE, updates))
    assert result.excluded["b"].startswith("missing_fisher:")
    np.testing.assert_array_equal(result.params["w"], [1, 1, 1])
    assert get_strategy(name).aggregate(BASE, [updates[1]]) is None


def test_fisher_merge_weights_each_coordinate_by_curvature() -> None:
    # Coordinate 0: (1*1 + 3*5) / 4 = 4; coordinate 1: Σ F = 0 -> FedAvg (1+3)/2 = 2;
    # coordinate 2: only b has curvature -> b's value 7.
    updates = [_u("a", [1, 1, 1], [1, 0, 0]), _u("b", [5, 3, 7], [3, 0, 2])]
    result = _ok(get_strategy("fisher_merge").aggregate(BASE, updates))
    np.testing.assert_array_equal(result.params["w"], [4, 2, 7])
    assert result.weights == {"a": pytest.approx(1 / 6), "b": pytest.approx(5 / 6)}


def test_fisher_merge_eps_falls_back_to_fedavg_for_tiny_curvature() -> None:
    updates = [_u("a", [0, 0, 0], [1e-9, 1e-9, 1e-9], n=1), _u("b", [4, 4, 4], [0, 0, 0], n=3)]
    tiny = _ok(get_strategy("fisher_merge", eps=1e-6).aggregate(BASE, updates))
    np.testing.assert_array_equal(tiny.params["w"], [3, 3, 3])
    exact = _ok(get_strategy("fisher_merge", eps=0.0).aggregate(BASE, updates))
    np.testing.assert_array_equal(exact.params["w"], [0, 0, 0])


def test_fisher_merge_all_zero_curvature_reports_sample_shares() -> None:
    updates = [_u("a", [0, 0, 0], [0, 0, 0], n=1), _u("b", [4, 4, 4], [0, 0, 0], n=3)]
    result = _ok(get_strategy("fisher_merge").aggregate(BASE, updates))
    np.testing.assert_array_equal(result.params["w"], [3, 3, 3])
    assert result.weights == {"a": 0.25, "b": 0.75}
