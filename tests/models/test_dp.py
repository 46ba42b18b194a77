"""DP-FedAvg's pure steps: clipping, fixed weights, the secret noise key, the noisy mean."""

from __future__ import annotations

import numpy as np
import pytest

from models.dp import (
    DpFedAvg,
    clip_delta,
    fixed_weights,
    fresh_key,
    gaussian_noise,
    global_norm,
    noise_key,
    privatize_update,
)
from models.errors import StrategyError
from models.strategies import ClientUpdate

SECRET = bytes(range(32))
ORG = "0x00000000000000000000000000000000000000aA"
BASE = {"w": np.zeros((2, 2), np.float32), "b": np.zeros(2, np.float32)}


def _params(w: float, b: float) -> dict[str, np.ndarray]:
    return {"w": np.full((2, 2), w, np.float32), "b": np.full(2, b, np.float32)}


def _flat(tree: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    return {k: np.asarray(v, np.float64) for k, v in tree.items()}


def test_clip_delta_scales_onto_the_ball() -> None:
    # Δ = (3,3,3,3 | 4,4): ||Δ||² = 4·9 + 2·16 = 68, so C = 1 scales every entry by 1/√68
    clipped, norm = clip_delta(_flat(BASE), _flat(_params(3, 4)), 1.0)
    assert norm == pytest.approx(np.sqrt(68))
    assert clipped["w"][0, 0] == pytest.approx(3 / np.sqrt(68))
    assert global_norm(clipped) == pytest.approx(1.0)
    inside, small = clip_delta(_flat(BASE), _flat(_params(0.1, 0)), 1.0)
    assert small == pytest.approx(0.2) and inside["w"][0, 0] == pytest.approx(0.1)  # untouched


def test_fixed_weights_are_uniform_or_capped() -> None:
    assert fixed_weights([5, 500, 0]) == [1.0, 1.0, 1.0]
    assert fixed_weights([50, 100, 500], sample_cap=100) == [0.5, 1.0, 1.0]
    with pytest.raises(StrategyError):
        fixed_weights([1], sample_cap=-1)


def test_noise_key_is_secret_and_round_specific() -> None:
    import jax

    data = lambda k: tuple(np.asarray(jax.random.key_data(k)).tolist())  # noqa: E731
    assert data(noise_key(SECRET, ORG, 1)) == data(noise_key(SECRET, ORG.lower(), 1))
    keys = {
        data(noise_key(SECRET, ORG, 1)),
        data(noise_key(SECRET, ORG, 2)),
        data(noise_key(b"\x01" * 32, ORG, 1)),
        data(noise_key(SECRET, "0x" + "11" * 20, 1)),
    }
    assert len(keys) == 4
    with pytest.raises(ValueError, match="32 bytes"):
        noise_key(b"short", ORG, 1)


def test_gaussian_noise_has_the_asked_scale_and_is_reproducible() -> None:
    like = {"a": np.zeros(200_000), "b": np.zeros((10, 10))}
    noise = gaussian_noise(noise_key(SECRET, ORG, 1), like, 0.5)
    assert noise["a"].std() == pytest.approx(0.5, rel=0.01)  # 200k draws: std err ~0.16 %
    assert abs(noise["a"].mean()) < 0.005
    again = gaussian_noise(noise_key(SECRET, ORG, 1), like, 0.5)
    assert all(np.array_equal(noise[k], again[k]) for k in like)
    other = gaussian_noise(noise_key(SECRET, ORG, 2), like, 0.5)
    assert not np.array_equal(noise["b"], other["b"])


def _updates() -> list[ClientUpdate]:
    # client A's change has norm √68 (clipped to C = 1), B's (0.1,…|0,0) norm 0.2 (kept)
    return [
        ClientUpdate("0xB", _params(0.1, 0), num_samples=5),
        ClientUpdate("0xA", _params(3, 4), num_samples=500),
    ]


def test_dp_fedavg_without_noise_is_the_clipped_fixed_weight_mean() -> None:
    # z = 0, W = 3 (three on-chain submissions, one rejected): w = 1 each, so
    # θ_w = (3/√68 + 0.1) / 3 and θ_b = (4/√68 + 0) / 3, whatever num_samples claim
    dp = DpFedAvg(clip_norm=1.0, noise_multiplier=0.0, denominator=3.0, key=fresh_key())
    result = dp.aggregate(BASE, _updates())
    assert result is not None and result.fisher is None
    assert result.params["w"][0, 0] == pytest.approx((3 / np.sqrt(68) + 0.1) / 3, rel=1e-6)
    assert result.params["b"][0] == pytest.approx(4 / np.sqrt(68) / 3, rel=1e-6)
    assert result.weights == {"0xA": pytest.approx(1 / 3), "0xB": pytest.approx(1 / 3)}


def test_dp_fedavg_noise_std_is_z_c_over_w() -> None:
    # N identical updates at the base: θ − base is the noise alone, std z·C/W = 2·0.5/4 = 0.25
    big = {"w": np.zeros(100_000, np.float32)}
    ups = [ClientUpdate(f"0x{i}", big, 1) for i in range(4)]
    dp = DpFedAvg(
        clip_norm=0.5, noise_multiplier=2.0, denominator=4.0, key=noise_key(SECRET, ORG, 3)
    )
    result = dp.aggregate(big, ups)
    assert result is not None
    assert np.std(result.params["w"]) == pytest.approx(0.25, rel=0.01)


def test_dp_fedavg_is_deterministic_given_the_key_and_order_free() -> None:
    make = lambda r: DpFedAvg(1.0, 1.0, 2.0, noise_key(SECRET, ORG, r))  # noqa: E731
    first = make(1).aggregate(BASE, _updates())
    again = make(1).aggregate(BASE, list(reversed(_updates())))
    other = make(2).aggregate(BASE, _updates())
    assert first is not None and again is not None and other is not None
    assert all(np.array_equal(first.params[k], again.params[k]) for k in BASE)
    assert not np.array_equal(first.params["w"], other.params["w"])


def test_dp_fedavg_refuses_a_denominator_below_the_weights() -> None:
    with pytest.raises(StrategyError, match="denominator"):
        DpFedAvg(1.0, 1.0, 1.0, fresh_key()).aggregate(BASE, _updates())
    with pytest.raises(StrategyError):
        DpFedAvg(0.0, 1.0, 1.0, fresh_key())
    assert DpFedAvg(1.0, 1.0, 1.0, fresh_key()).aggregate(BASE, []) is None


def test_privatize_update_clips_then_adds_noise() -> None:
    # z = 0: just the clip (same numbers as above); z > 0: std z·C around the clipped change
    out, norm = privatize_update(BASE, _params(3, 4), 1.0, 0.0, fresh_key())
    assert norm == pytest.approx(np.sqrt(68), rel=1e-6)
    assert out["w"][0, 0] == pytest.approx(3 / np.sqrt(68), rel=1e-6)
    base = {"w": np.zeros(100_000, np.float32)}
    trained = {"w": np.full(100_000, 1e-3, np.float32)}  # ||Δ|| = 0.316 < C: kept
    noisy, _ = privatize_update(base, trained, 2.0, 1.5, fresh_key())
    assert np.mean(noisy["w"]) == pytest.approx(1e-3, abs=0.03)
    assert np.std(noisy["w"]) == pytest.approx(3.0, rel=0.01)
    first, _ = privatize_update(base, trained, 2.0, 1.5, noise_key(SECRET, ORG, 1))
    second, _ = privatize_update(base, trained, 2.0, 1.5, noise_key(SECRET, ORG, 1))
    assert np.array_equal(first["w"], second["w"]) and first["w"].dtype == np.float32
