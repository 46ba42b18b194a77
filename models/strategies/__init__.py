"""Aggregation strategies, pure: `get_strategy(name, **options)` -> init / aggregate.

Every strategy sorts updates by client, sums in float64 in that order (same inputs give
bit-identical output, whatever the arrival order), returns None when there is nothing to
aggregate, and reports excluded updates with a `"<code>: <detail>"` reason. Any strategy
takes `clip_norm=<float>` to clip each update's change from the base first.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from models.errors import StrategyError
from models.strategies.base import AggregateResult, ClientUpdate, Strategy
from models.strategies.clip import Clipped
from models.strategies.curvature import FedCurv, FisherMerge
from models.strategies.fedavg import FedAvg
from models.strategies.krum import MultiKrum, krum
from models.strategies.robust import Median, TrimmedMean
from models.strategies.server_opt import ServerOptimizer

__all__ = ["STRATEGY_NAMES", "AggregateResult", "ClientUpdate", "Strategy", "get_strategy"]

_ADAPTIVE = ("server_lr", "beta1", "beta2", "tau")
_FACTORIES: dict[str, tuple[Callable[..., Strategy], tuple[str, ...]]] = {
    "fedavg": (FedAvg, ()),
    "fedcurv": (FedCurv, ()),
    "fisher_merge": (FisherMerge, ("eps",)),
    "median": (Median, ()),
    "trimmed_mean": (TrimmedMean, ("beta",)),
    "krum": (krum, ("f",)),
    "multi_krum": (MultiKrum, ("f", "m")),
    "fedadam": (lambda **o: ServerOptimizer(name="fedadam", **o), _ADAPTIVE),
    "fedyogi": (lambda **o: ServerOptimizer(name="fedyogi", **o), _ADAPTIVE),
    "fedavgm": (lambda **o: ServerOptimizer(name="fedavgm", **o), ("server_lr", "momentum")),
}
STRATEGY_NAMES: tuple[str, ...] = tuple(_FACTORIES)


def get_strategy(name: str, **options: Any) -> Strategy:
    """Build a strategy by name; a bad name or option raises StrategyError naming the valid ones."""
    if name not in _FACTORIES:
        raise StrategyError(f"unknown strategy {name!r}; choose one of {', '.join(STRATEGY_NAMES)}")
    factory, allowed = _FACTORIES[name]
    clip_norm = options.pop("clip_norm", None)
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        raise StrategyError(
            f"strategy {name!r} has no option(s) {unknown}; it takes {[*allowed, 'clip_norm']}"
        )
    try:
        strategy = factory(**options)
    except TypeError as exc:
        raise StrategyError(f"strategy {name!r}: bad options {options}: {exc}") from None
    return strategy if clip_norm is None else Clipped(strategy, float(clip_norm))
