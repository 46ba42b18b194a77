"""The RDP accountant against numbers derived independently of it."""

from __future__ import annotations

import math

import dp_accounting
import numpy as np
import pytest

from models.accountant import epsilon_spent, noise_for_epsilon, rounds_within

DELTA = 1e-5


def test_one_round_lies_between_the_exact_and_the_classic_bound() -> None:
    # One Gaussian round, z = 1, δ = 1e-5.
    # Exact (Balle & Wang 2018, dp_accounting's analytic calibration, no RDP): ε ≈ 4.3772.
    # Classic RDP→DP conversion (Mironov 2017): ε = min_α α/(2z²) + ln(1/δ)/(α − 1); the
    # optimum α* = 1 + √(2 z² ln(1/δ)) = 1 + √23.026 = 5.799 gives 2.900 + 11.513/4.799
    # = 2.900 + 2.399 = 5.298 (on the accountant's integer orders, α = 6: 3 + 2.303 = 5.303).
    eps = epsilon_spent([1.0], DELTA)
    exact = dp_accounting.get_epsilon_gaussian(1.0, DELTA)
    assert exact == pytest.approx(4.3772, abs=1e-3)
    classic = min(a / 2 + math.log(1 / DELTA) / (a - 1) for a in np.arange(1.5, 64, 0.5))
    assert classic == pytest.approx(5.298, abs=0.01)
    assert exact <= eps <= classic
    assert eps == pytest.approx(exact, rel=0.1)  # RDP is within 10 % of exact here


def test_rounds_compose_like_one_gaussian_of_z_over_root_t() -> None:
    # T Gaussian rounds of multiplier z are exactly one Gaussian of z/√T (RDP adds up:
    # T·α/(2z²) = α/(2(z/√T)²)); the exact ε of that single Gaussian is a lower bound.
    for z, rounds in [(1.0, 10), (4.0, 25), (10.0, 100)]:
        eps = epsilon_spent([z] * rounds, DELTA)
        assert eps == pytest.approx(epsilon_spent([z / math.sqrt(rounds)], DELTA), rel=1e-9)
        exact = dp_accounting.get_epsilon_gaussian(z / math.sqrt(rounds), DELTA)
        assert exact <= eps <= 1.15 * exact


def test_epsilon_grows_with_rounds_and_shrinks_with_noise() -> None:
    assert epsilon_spent([], DELTA) == 0.0
    assert epsilon_spent([2.0] * 3, DELTA) < epsilon_spent([2.0] * 4, DELTA)
    assert epsilon_spent([4.0] * 3, DELTA) < epsilon_spent([2.0] * 3, DELTA)
    mixed = epsilon_spent([2.0, 4.0, 2.0], DELTA)
    assert epsilon_spent([4.0] * 3, DELTA) < mixed < epsilon_spent([2.0] * 3, DELTA)


def test_a_round_without_noise_spends_everything() -> None:
    assert epsilon_spent([2.0, None], DELTA) == math.inf
    assert epsilon_spent([0.0], DELTA) == math.inf
    with pytest.raises(ValueError, match="delta"):
        epsilon_spent([1.0], 0.0)
    with pytest.raises(ValueError, match=">= 0"):
        epsilon_spent([-1.0], DELTA)


def test_rounds_within_and_noise_for_epsilon_invert_the_accountant() -> None:
    n = rounds_within(2.0, DELTA, 8.0, 1000)
    assert epsilon_spent([2.0] * n, DELTA) <= 8.0 < epsilon_spent([2.0] * (n + 1), DELTA)
    assert rounds_within(2.0, DELTA, 0.01, 1000) == 0
    z = noise_for_epsilon(4.0, 10, DELTA)
    assert epsilon_spent([z] * 10, DELTA) == pytest.approx(4.0, rel=1e-6)
    # cross-check with the exact Gaussian calibration of z/√10: RDP needs a little more noise
    exact_z = math.sqrt(10) * dp_accounting.get_sigma_gaussian(4.0, DELTA)
    assert exact_z <= z <= 1.15 * exact_z
