"""Aggregation strategies: hand-checked numbers and the properties every strategy must keep."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from models import pytree
from models.errors import StrategyError
from models.strategies import STRATEGY_NAMES, AggregateResult, ClientUpdate, get_strategy

BASE = {"layer": {"w": np.zeros((2, 2), np.float32), "b": np.zeros(2, np.float32)}}


def _tree(values: list[float]) -> dict:
    """A params tree whose 6 leaves' entries are `values` (w row-major, then b)."""
    v = np.asarray(values, np.float32)
    return {"layer": {"w": v[:4].reshape(2, 2), "b": v[4:6]}}


def _update(client: str, value: float, n: int = 10, fisher: float | None = 1.0) -> ClientUpdate:
    f = None if fisher is None else _tree([fisher] * 6)
    return ClientUpdate(client, _tree([value] * 6), n, fisher=f)


def _ok(result: AggregateResult | None) -> AggregateResult:
    assert result is not None
    return result


def _w(result: AggregateResult | None) -> np.ndarray:
    return np.asarray(_ok(result).params["layer"]["w"])


def test_fedavg_is_the_sample_weighted_mean() -> None:
    updates = [
        ClientUpdate("0xA", _tree([1, 2, 3, 4, 5, 6]), 1),
        ClientUpdate("0xB", _tree([5, 6, 7, 8, 9, 10]), 3),
    ]
    result = get_strategy("fedavg").aggregate(BASE, updates)
    assert result is not None
    np.testing.assert_array_equal(result.params["layer"]["b"], [8.0, 9.0])
    np.testing.assert_array_equal(_w(result), [[4.0, 5.0], [6.0, 7.0]])
    assert result.weights == {"0xA": 0.25, "0xB": 0.75}
    assert result.excluded == {} and result.state == {}
    assert _w(result).dtype == np.float32


def test_aggregated_fisher_is_the_sample_weighted_mean_of_the_clients() -> None:
    updates = [_update("0xA", 0.0, n=1, fisher=2.0), _update("0xB", 0.0, n=3, fisher=6.0)]
    result = get_strategy("median").aggregate(BASE, updates)
    assert result is not None and result.fisher is not None
    np.testing.assert_array_equal(result.fisher["layer"]["b"], [5.0, 5.0])


def test_fisher_is_none_when_no_client_sent_one() -> None:
    result = get_strategy("fedavg").aggregate(BASE, [_update("0xA", 1.0, fisher=None)])
    assert result is not None and result.fisher is None


def test_median_odd_and_even() -> None:
    odd = [_update("a", 1.0), _update("b", 5.0), _update("c", 2.0)]
    even = [*odd, _update("d", 20.0)]
    median = get_strategy("median")
    assert _w(median.aggregate(BASE, odd))[0, 0] == 2.0
    assert _w(median.aggregate(BASE, even))[0, 0] == 3.5
    assert _ok(median.aggregate(BASE, odd)).weights == pytest.approx(
        {"a": 1 / 3, "b": 1 / 3, "c": 1 / 3}
    )


def test_trimmed_mean_drops_the_extremes_per_coordinate() -> None:
    updates = [_update("a", 1.0), _update("b", 2.0), _update("c", 10.0), _update("d", 1000.0)]
    updates.append(ClientUpdate("e", _tree([-1000.0, 3, 3, 3, 3, 3]), 10))
    result = get_strategy("trimmed_mean", beta=0.2).aggregate(BASE, updates)
    assert result is not None
    assert _w(result)[0, 0] == pytest.approx((1 + 2 + 10) / 3)
    assert _w(result)[0, 1] == pytest.approx((2 + 3 + 10) / 3)
    untrimmed = get_strategy("trimmed_mean", beta=0.0).aggregate(BASE, updates)
    assert _w(untrimmed)[0, 0] == pytest.approx((1 + 2 + 10 + 1000 - 1000) / 5)


def test_trimmed_mean_never_trims_everything() -> None:
    result = get_strategy("trimmed_mean", beta=0.49).aggregate(
        BASE, [_update("a", 1.0), _update("b", 3.0)]
    )
    assert _w(result)[0, 0] == 2.0


def test_krum_picks_a_central_update_and_excludes_the_outlier() -> None:
    updates = [_update(f"h{i}", v) for i, v in enumerate([0.9, 1.0, 1.1, 1.05])]
    updates.append(_update("evil", 100.0))
    # With n - f - 2 = 2 neighbours, h3 = 1.05 has the smallest score: 6 * (0.05² + 0.05²).
    result = get_strategy("krum", f=1).aggregate(BASE, updates)
    assert result is not None
    assert list(result.weights) == ["h3"] and _w(result)[0, 0] == np.float32(1.05)
    assert set(result.excluded) == {"h0", "h1", "h2", "evil"}
    assert result.excluded["evil"].startswith("krum: score")


def test_multi_krum_averages_the_m_best() -> None:
    updates = [_update(f"h{i}", v) for i, v in enumerate([1.0, 2.0, 3.0])]
    updates += [_update("evil1", -50.0), _update("evil2", 80.0)]
    result = get_strategy("multi_krum", f=2).aggregate(BASE, updates)
    assert result is not None
    assert sorted(result.weights) == ["h0", "h1", "h2"]
    assert _w(result)[1, 1] == 2.0
    assert set(result.excluded) == {"evil1", "evil2"}
    two = get_strategy("multi_krum", f=2, m=2).aggregate(BASE, updates)
    assert len(_ok(two).weights) == 2


def test_krum_with_few_updates_stays_defined() -> None:
    one = get_strategy("krum", f=3).aggregate(BASE, [_update("a", 7.0)])
    assert _w(one)[0, 0] == 7.0
    two = get_strategy("krum", f=3).aggregate(BASE, [_update("b", 2.0), _update("a", 1.0)])
    assert list(_ok(two).weights) == ["a"]


@pytest.mark.parametrize("name", STRATEGY_NAMES)
def test_aggregating_nothing_returns_none(name: str) -> None:
    strategy = get_strategy(name)
    assert strategy.aggregate(BASE, [], strategy.init(BASE)) is None


@pytest.mark.parametrize("name", STRATEGY_NAMES)
def test_zero_sample_updates_are_excluded_with_a_reason(name: str) -> None:
    strategy = get_strategy(name)
    result = strategy.aggregate(BASE, [_update("a", 1.0), _update("z", 9.0, n=0)])
    assert result is not None
    assert result.excluded["z"].startswith("zero_samples:")
    assert "z" not in result.weights
    assert strategy.aggregate(BASE, [_update("z", 9.0, n=0)]) is None


@pytest.mark.parametrize("name", STRATEGY_NAMES)
def test_duplicate_clients_are_refused(name: str) -> None:
    with pytest.raises(StrategyError, match="more than one update"):
        get_strategy(name).aggregate(BASE, [_update("a", 1.0), _update("a", 2.0)])


@pytest.mark.parametrize("name", STRATEGY_NAMES)
def test_updates_that_do_not_match_the_base_are_refused(name: str) -> None:
    bad = ClientUpdate("a", {"layer": {"w": np.zeros((2, 2), np.float32)}}, 5)
    with pytest.raises(StrategyError, match="differ from the base"):
        get_strategy(name).aggregate(BASE, [bad])
    wrong_shape = ClientUpdate("a", {"layer": {"w": np.zeros(4), "b": np.zeros(2)}}, 5)
    with pytest.raises(StrategyError, match="shape"):
        get_strategy(name).aggregate(BASE, [wrong_shape])


_STATIC = [n for n in STRATEGY_NAMES if n not in ("fedadam", "fedyogi")]


@pytest.mark.parametrize("name", _STATIC)
def test_identical_updates_aggregate_to_themselves(name: str) -> None:
    rng = np.random.default_rng(1)
    params = pytree.map_leaves(lambda a: rng.normal(size=a.shape).astype(np.float32), BASE)
    fisher = pytree.map_leaves(lambda a: rng.random(size=a.shape).astype(np.float32), BASE)
    updates = [ClientUpdate(f"c{i}", params, 7 + i, fisher=fisher) for i in range(7)]
    options = {"server_lr": 1.0, "momentum": 0.0} if name == "fedavgm" else {}
    result = get_strategy(name, **options).aggregate(BASE, updates)
    assert result is not None
    for got, want in zip(pytree.leaves(result.params), pytree.leaves(params), strict=True):
        np.testing.assert_array_equal(got, want)


_VALUES = st.lists(st.floats(-10, 10, allow_nan=False, width=32), min_size=6, max_size=6)
_CLIENT_SETS = st.lists(
    st.tuples(_VALUES, st.integers(1, 1000), st.floats(0, 5, width=32)),
    min_size=1,
    max_size=6,
)


@settings(max_examples=25, deadline=None)
@given(_CLIENT_SETS, st.randoms(use_true_random=False))
def test_order_never_matters_and_output_is_bit_identical(clients: list, rnd: object) -> None:
    updates = [
        ClientUpdate(f"0x{i:02d}", _tree(v), n, fisher=_tree([f] * 6))
        for i, (v, n, f) in enumerate(clients)
    ]
    shuffled = list(updates)
    rnd.shuffle(shuffled)  # type: ignore[attr-defined]
    for name in STRATEGY_NAMES:
        strategy = get_strategy(name)
        state = strategy.init(BASE)
        first = strategy.aggregate(BASE, updates, state)
        again = strategy.aggregate(BASE, shuffled, state)
        assert first is not None and again is not None
        for a, b in zip(pytree.leaves(first.params), pytree.leaves(again.params), strict=True):
            assert a.tobytes() == b.tobytes(), name
        assert first.weights == again.weights and first.excluded == again.excluded


def test_jax_array_inputs_give_the_same_result_as_numpy() -> None:
    updates = [_update("a", 1.0), _update("b", 4.0, n=30)]
    as_jax = [
        ClientUpdate(
            u.client,
            pytree.map_leaves(jnp.asarray, u.params),
            u.num_samples,
            fisher=pytree.map_leaves(jnp.asarray, u.fisher or {}),
        )
        for u in updates
    ]
    for name in STRATEGY_NAMES:
        strategy = get_strategy(name)
        ours = strategy.aggregate(pytree.map_leaves(jnp.asarray, BASE), as_jax)
        ref = strategy.aggregate(BASE, updates)
        np.testing.assert_array_equal(_w(ours), _w(ref))


def test_get_strategy_rejects_unknown_names_and_options() -> None:
    with pytest.raises(StrategyError, match="fedavg, fedcurv"):
        get_strategy("fedsgd")
    with pytest.raises(StrategyError, match=r"no option\(s\) \['beta'\]"):
        get_strategy("median", beta=0.1)
    with pytest.raises(StrategyError, match="beta"):
        get_strategy("trimmed_mean", beta=0.5)
    with pytest.raises(StrategyError, match="f >= 0"):
        get_strategy("krum", f=-1)
    with pytest.raises(StrategyError, match="clip_norm"):
        get_strategy("fedavg", clip_norm=0.0)


def test_strategy_names_are_reported() -> None:
    assert {get_strategy(n).name for n in STRATEGY_NAMES} == set(STRATEGY_NAMES)
    assert get_strategy("krum", clip_norm=1.0).name == "krum"
