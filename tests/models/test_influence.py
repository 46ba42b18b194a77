"""Round-level influence bounds as pure functions, from tables with hand-derived numbers."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest

from models.influence import (
    InfluenceBounds,
    capped_counts,
    delta_norm,
    norm_outliers,
    reference_norm,
    screen,
)
from models.strategies import ClientUpdate


@pytest.mark.parametrize(
    ("norms", "ref"),
    [
        ({}, None),
        ({"a": 5.0}, None),  # one update cannot be judged against itself
        ({"a": 0.0, "b": 5.0}, None),  # a no-op update does not set the scale
        ({"a": 1.0, "b": 9000.0}, 1.0),  # lower median: the outlier cannot set its own bar
        ({"a": 1.0, "b": 2.0, "c": 9000.0}, 2.0),
        ({"a": 1.0, "b": 2.0, "c": 3.0, "d": 9000.0}, 2.0),
        ({"a": 0.0, "b": 0.0, "c": 3.0, "d": 4.0}, 3.0),
    ],
)
def test_reference_norm(norms: dict[str, float], ref: float | None) -> None:
    assert reference_norm(norms) == ref


@pytest.mark.parametrize(
    ("norms", "ratio", "rejected"),
    [
        ({"a": 1.0, "b": 9000.0}, 10.0, ["b"]),
        ({"a": 1.0, "b": 10.0}, 10.0, []),  # exactly at the bar: kept
        ({"a": 1.0, "b": 10.000001}, 10.0, ["b"]),
        ({"a": 6.0, "b": 8.7, "c": 8.5, "d": 7.0}, 10.0, []),  # honest non-iid spread (1.2x)
        ({"a": 1.0, "b": 2.0, "c": 25.0, "d": 9000.0}, 10.0, ["c", "d"]),
        ({"a": 9000.0}, 10.0, []),  # alone: for the absolute cap to judge
        ({"a": 1.0, "b": float("nan"), "c": 2.0}, 10.0, ["b"]),  # NaN never passes
    ],
)
def test_norm_outliers(norms: dict[str, float], ratio: float, rejected: list[str]) -> None:
    got = norm_outliers(norms, ratio)
    assert sorted(got) == rejected
    assert all("round median" in d for d in got.values())


@pytest.mark.parametrize(
    ("counts", "share", "want"),
    [
        ({"a": 100, "b": 100, "c": 100}, 0.5, {"a": 100, "b": 100, "c": 100}),
        # 10^15 vs 100 + 100: t = 0.5 x 200 / (1 - 0.5) = 200 -> shares 1/4, 1/4, 1/2
        ({"a": 100, "b": 100, "c": 10**15}, 0.5, {"a": 100, "b": 100, "c": 200}),
        # two capped: t = 0.3 x 30 / (1 - 0.6) = 22.5, rounded down -> 22, 22, 10, 20
        # (shares 22/74 = 0.297 <= 0.3)
        ({"a": 10**6, "b": 10**5, "c": 10, "d": 20}, 0.3, {"a": 22, "b": 22, "c": 10, "d": 20}),
        # infeasible (2 x 0.4 < 1): equal weights, every count the smallest
        ({"a": 7, "b": 1000}, 0.4, {"a": 7, "b": 7}),
        # exactly feasible (2 x 0.5 = 1): the larger capped at the smaller
        ({"a": 7, "b": 1000}, 0.5, {"a": 7, "b": 7}),
        ({"a": 300, "b": 100}, 0.75, {"a": 300, "b": 100}),  # 0.75 share: not above the cap
        ({"a": 0, "b": 100, "c": 10**9}, 0.5, {"a": 0, "b": 100, "c": 100}),  # zeros stay
        ({"a": 5}, 0.5, {"a": 5}),  # alone: infeasible, its own count
        ({}, 0.5, {}),
    ],
)
def test_capped_counts(counts: dict[str, int], share: float, want: dict[str, int]) -> None:
    assert capped_counts(counts, share) == want


def test_capped_shares_never_exceed_the_cap_and_keep_the_uncapped_counts() -> None:
    rng = np.random.default_rng(0)
    for _ in range(300):
        n = int(rng.integers(1, 12))
        counts = {f"c{i}": int(x) for i, x in enumerate(rng.integers(1, 10**6, n) ** 2)}
        share = float(rng.choice([0.1, 0.2, 0.25, 0.3, 0.5, 0.9]))
        out = capped_counts(counts, share)
        total = sum(out.values())
        if n * Fraction(share) < 1:
            assert len(set(out.values())) == 1  # infeasible: equal weights
            continue
        assert all(Fraction(v, total) <= Fraction(share) for v in out.values())
        assert all(out[c] in (counts[c], max(out.values())) for c in counts)
        assert all(out[c] <= counts[c] for c in counts)


def test_delta_norm_is_float64_and_order_free() -> None:
    base = {"w": np.zeros((2, 2), np.float32), "b": np.zeros(3, np.float32)}
    params = {"w": np.full((2, 2), 1.0, np.float32), "b": np.array([0, 3, 4], np.float32)}
    assert delta_norm(params, base) == pytest.approx(np.sqrt(4 + 9 + 16))  # sqrt(29)
    assert delta_norm(dict(reversed(params.items())), base) == delta_norm(params, base)


def test_screen_rejects_then_caps_the_rest() -> None:
    base = {"w": np.zeros(4, np.float32)}

    def update(client: str, shift: float, n: int) -> ClientUpdate:
        return ClientUpdate(client, {"w": np.full(4, shift, np.float32)}, n)

    # norms 2, 4, 2000 -> lower median 4 (non-zero: 2, 4, 2000), bar 40: c rejected;
    # counts 100 and 10^9 at share 0.5: b capped to 100
    updates = [update("c", 1000.0, 5), update("b", 2.0, 10**9), update("a", 1.0, 100)]
    out = screen(base, updates, InfluenceBounds(max_norm_ratio=10.0, max_share=0.5))
    assert [u.client for u in out.updates] == ["a", "b"]
    assert [u.num_samples for u in out.updates] == [100, 100]
    assert set(out.rejected) == {"c"} and out.rejected["c"][0] == "norm"
    assert out.norms == {"a": 2.0, "b": 4.0, "c": 2000.0}
    off = screen(base, updates, InfluenceBounds(max_norm_ratio=None, max_share=None))
    assert [u.num_samples for u in off.updates] == [100, 10**9, 5] and not off.rejected


@pytest.mark.parametrize("bad", [{"max_norm_ratio": 0.0}, {"max_share": 0.0}, {"max_share": 1.5}])
def test_bounds_refuse_nonsense(bad: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        InfluenceBounds(**bad)  # type: ignore[arg-type]
