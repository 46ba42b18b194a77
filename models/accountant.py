"""(ε, δ) of a federation's DP rounds, composed with Google's `dp-accounting` RDP accountant.

Each round is one Gaussian mechanism with noise multiplier z (noise std / sensitivity, see
`models.dp`); rounds compose over Rényi DP (Mironov 2017) and convert to (ε, δ) with the
library's conversion. Every client may take part in every round and who took part is public
on chain, so no amplification by subsampling is claimed: the sampling rate is 1. A round with
no DP (z absent) makes ε infinite. RDP is a slight over-estimate of the exact ε (a few per
cent for the Gaussian mechanism), never an under-estimate.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence

# dp_accounting (and the scipy.signal it imports, ~1 CPU-s) only when ε is computed: every
# org imports this module, few federations use DP

SAMPLING_RATE = 1.0
ACCOUNTANT = "rdp"


def _check(noise_multipliers: Sequence[float | None], delta: float) -> None:
    if not 0 < delta < 1:
        raise ValueError(f"delta must be in (0, 1), got {delta}")
    bad = [z for z in noise_multipliers if z is not None and not z >= 0]
    if bad:
        raise ValueError(f"noise multipliers must be >= 0, got {bad}")


def epsilon_spent(noise_multipliers: Sequence[float | None], delta: float) -> float:
    """ε after composing one Gaussian round per entry (None or 0: a non-private round → ∞)."""
    _check(noise_multipliers, delta)
    if not noise_multipliers:
        return 0.0
    if any(z is None or z == 0 for z in noise_multipliers):
        return math.inf
    import dp_accounting
    from dp_accounting.rdp import rdp_privacy_accountant

    accountant = rdp_privacy_accountant.RdpAccountant()
    for z, count in sorted(Counter(noise_multipliers).items()):
        accountant.compose(dp_accounting.GaussianDpEvent(z), count)
    return float(accountant.get_epsilon(delta))


def rounds_within(noise_multiplier: float, delta: float, budget: float, limit: int) -> int:
    """The most rounds (≤ limit) at this noise whose composed ε stays within `budget`."""
    lo, hi = 0, limit
    while lo < hi:  # ε grows with the round count: bisect
        mid = (lo + hi + 1) // 2
        if epsilon_spent([noise_multiplier] * mid, delta) <= budget:
            lo = mid
        else:
            hi = mid - 1
    return lo


def noise_for_epsilon(epsilon: float, rounds: int, delta: float) -> float:
    """The smallest noise multiplier whose `rounds` rounds compose to at most `epsilon`."""
    if not epsilon > 0 or rounds < 1:
        raise ValueError(f"need epsilon > 0 and rounds >= 1, got {epsilon}, {rounds}")
    lo, hi = 1e-3, 1.0
    while epsilon_spent([hi] * rounds, delta) > epsilon:
        lo, hi = hi, hi * 2
    for _ in range(60):  # bisection to ~1e-12 relative
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if epsilon_spent([mid] * rounds, delta) > epsilon else (lo, mid)
    return hi
