"""Round facts beyond the manifest's: gas per round from receipts, the headline metric."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Any


@dataclass(frozen=True)
class Gas:
    """Gas one round's transactions used: the org's (open, close/fail), the clients' (submit)."""

    org: int = 0
    clients: int = 0
    fee_wei: int = 0

    @property
    def total(self) -> int:
        return self.org + self.clients


LOWER_IS_BETTER = ("loss", "rmse", "mse", "mae", "error")


def lower_is_better(metric: str) -> bool:
    """Whether a smaller value of `metric` is the better one (losses and errors)."""
    return any(word in metric.lower() for word in LOWER_IS_BETTER)


def headline_of(named: str, metrics: Mapping[str, float]) -> str:
    """The headline metric: as the manifest names it, else `accuracy`, else the first other.

    Older manifests name none; `loss` and `num_samples` are never the headline by default.
    """
    if named in metrics:
        return named
    if "accuracy" in metrics:
        return "accuracy"
    rest = [k for k in metrics if k not in ("loss", "num_samples")]
    return rest[0] if rest else ""


ROUND_TXS = {"RoundOpened": "org", "RoundClosed": "org", "RoundFailed": "org"}
ROUND_TXS |= {"UpdateSubmitted": "clients"}


def fold_gas(events: Iterable[Any], receipts: Mapping[str, tuple[int, int]]) -> dict[int, Gas]:
    """Gas per round from the receipts (tx hash -> gas used, effective gas price in wei).

    Each transaction is counted once, under the round of the event it emitted; a round whose
    receipts are not all known has no entry (shown as "n/a", never as a partial sum).
    """
    out: dict[int, Gas] = {}
    missing: set[int] = set()
    seen: set[str] = set()
    for ev in events:
        side = ROUND_TXS.get(type(ev).__name__)
        if side is None or ev.meta.tx_hash in seen:
            continue
        seen.add(ev.meta.tx_hash)
        if ev.meta.tx_hash not in receipts:
            missing.add(ev.round_id)
            continue
        used, price = receipts[ev.meta.tx_hash]
        g = out.get(ev.round_id, Gas())
        g = replace(g, **{side: getattr(g, side) + used}, fee_wei=g.fee_wei + used * price)
        out[ev.round_id] = g
    return {r: g for r, g in out.items() if r not in missing}
