"""Server optimizers (FedAdam, FedYogi, FedAvgM) with stored state, and norm clipping."""

from __future__ import annotations

import numpy as np
import pytest

from models import pytree
from models.codec import BlobMetadata, decode_blob, encode_blob
from models.errors import StrategyError
from models.strategies import AggregateResult, ClientUpdate, get_strategy

BASE = {"w": np.zeros(2, np.float32)}


def _u(client: str, w: list[float], n: int = 10) -> ClientUpdate:
    return ClientUpdate(client, {"w": np.asarray(w, np.float32)}, n)


def _ok(result: AggregateResult | None) -> AggregateResult:
    assert result is not None
    return result


def test_fedavgm_momentum_carries_over_rounds() -> None:
    strategy = get_strategy("fedavgm", server_lr=1.0, momentum=0.9)
    first = _ok(strategy.aggregate(BASE, [_u("a", [1, 2])], strategy.init(BASE)))
    np.testing.assert_allclose(first.params["w"], [1, 2])
    # Round 2: the clients return the base unchanged (Δ = 0); momentum adds 0.9 of Δ_1.
    second = _ok(strategy.aggregate(first.params, [_u("a", [1, 2])], first.state))
    np.testing.assert_allclose(second.params["w"], [1.9, 3.8], rtol=1e-6)


def test_fedadam_first_step_is_lr_times_the_normalised_direction() -> None:
    strategy = get_strategy("fedadam", server_lr=0.1, tau=1e-3)
    result = _ok(strategy.aggregate(BASE, [_u("a", [1.0, -4.0])]))
    # Bias-corrected Adam at step 1: update = lr * g / (|g| + τ), toward the average.
    np.testing.assert_allclose(result.params["w"], [0.1 / 1.001, -0.1 * 4 / 4.001], rtol=1e-6)
    assert int(result.state["0"]["count"]) == 1


@pytest.mark.parametrize("name", ["fedadam", "fedyogi", "fedavgm"])
def test_state_survives_a_trip_through_the_blob_codec(name: str) -> None:
    strategy = get_strategy(name)
    base = {"layer": {"w": np.ones((2, 2), np.float32), "b": np.zeros(2, np.float32)}}
    shifts = ([0.5, 1.5], [-1.0, 0.25], [2.0, 2.0])
    rounds = [
        [
            ClientUpdate(c, pytree.map_leaves(lambda a, s=s: a + s, base), 5)
            for c, s in zip("ab", k, strict=True)
        ]
        for k in shifts
    ]
    live, state, params = None, strategy.init(base), base
    stored_state = state
    for updates in rounds:
        live = _ok(strategy.aggregate(params, updates, state))
        meta = BlobMetadata("model", 1, "org", "", 10, "tiny")
        blob = encode_blob({"params": live.params, "server_state": live.state}, meta)
        decoded = decode_blob(blob)
        restored = _ok(strategy.aggregate(params, updates, stored_state))
        for a, b in zip(pytree.leaves(live.params), pytree.leaves(restored.params), strict=True):
            assert a.tobytes() == b.tobytes()
        params, state = live.params, live.state
        stored_state = decoded.sections["server_state"]
    assert not np.allclose(params["layer"]["w"], base["layer"]["w"])


def test_server_optimizers_stay_put_when_the_clients_return_the_base() -> None:
    for name in ("fedadam", "fedyogi", "fedavgm"):
        result = _ok(get_strategy(name).aggregate(BASE, [_u("a", [0, 0]), _u("b", [0, 0])]))
        np.testing.assert_array_equal(result.params["w"], [0, 0])


def test_mismatched_server_state_is_refused() -> None:
    strategy = get_strategy("fedadam")
    other = strategy.init({"w": np.zeros(3, np.float32)})
    with pytest.raises(StrategyError, match="server state"):
        strategy.aggregate(BASE, [_u("a", [1, 1])], other)


def test_server_optimizer_rejects_bad_learning_rates() -> None:
    with pytest.raises(StrategyError, match="server_lr"):
        get_strategy("fedyogi", server_lr=0.0)


def test_clip_norm_scales_only_the_updates_beyond_the_bound() -> None:
    base = {"w": np.array([1.0, 1.0], np.float32)}
    updates = [_u("far", [4.0, 5.0]), _u("near", [1.3, 1.4])]  # deltas (3,4) -> 5 and (.3,.4)
    result = _ok(get_strategy("fedavg", clip_norm=1.0).aggregate(base, updates))
    np.testing.assert_allclose(result.params["w"], [(1.6 + 1.3) / 2, (1.8 + 1.4) / 2], rtol=1e-6)
    plain = _ok(get_strategy("fedavg").aggregate(base, updates))
    np.testing.assert_allclose(plain.params["w"], [2.65, 3.2], rtol=1e-6)


def test_clip_norm_wraps_stateful_strategies_too() -> None:
    strategy = get_strategy("fedavgm", clip_norm=0.5, server_lr=1.0, momentum=0.0)
    result = _ok(strategy.aggregate(BASE, [_u("a", [3, 4])], strategy.init(BASE)))
    np.testing.assert_allclose(result.params["w"], [0.3, 0.4], rtol=1e-6)
