"""Fee re-pricing of a stuck transaction: how much higher, and when it is still worth it."""

from __future__ import annotations

import math
from typing import Any

FEE_BUMP = 1.125  # nodes accept a same-nonce replacement only if both fees rise >= 10%
# re-pricings on time alone (a tip too low to be picked) before the market must have moved:
# a stalled chain or node must not escalate fees 12.5% per `bump_after_s` without end
BLIND_BUMPS = 3


def raised_fees(fields: dict[str, Any], base_fee: int, cap: int) -> dict[str, int] | None:
    """Both fees up by FEE_BUMP, max fee at least 2 x base fee + tip; None if `cap` forbids."""
    tip = max(math.ceil(fields["maxPriorityFeePerGas"] * FEE_BUMP), 1)
    needed = math.ceil(fields["maxFeePerGas"] * FEE_BUMP)
    max_fee = max(needed, 2 * base_fee + tip)
    if cap:
        if cap < needed:
            return None
        max_fee = min(max_fee, cap)
        tip = min(tip, max_fee)
    return {"maxFeePerGas": max_fee, "maxPriorityFeePerGas": tip}


def worth_repricing(fields: dict[str, Any], base_fee: int, versions: int) -> bool:
    """A slow transaction is re-priced BLIND_BUMPS times, then only if the base fee rose
    past what its max fee covers (2 x base fee + tip, as it was signed)."""
    if versions <= BLIND_BUMPS:
        return True
    return int(fields["maxFeePerGas"]) < 2 * base_fee + int(fields["maxPriorityFeePerGas"])
