"""Aggregation strategies, pure: `get_strategy(name, **options)` -> init / aggregate.

Every strategy sorts updates by client, sums in float64 in that order (same inputs give
bit-identical output, whatever the arrival order), returns None when there is nothing to
aggregate, and reports excluded updates with a `"<code>: <detail>"` reason. Any strategy
takes `clip_norm=<float>` to clip each update's change from the base first.

A user's strategy is named `"package.module:Class"` (Flower's `module:attribute` style): the
class (or factory) is called with the `[federation] strategy_options` and must satisfy the
`Strategy` protocol (`name`, `init(base_params)`, `aggregate(base_params, updates, state)`);
a class attribute `uses_fisher = True` makes clients send their Fisher diagonal.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

from models import registry
from models.errors import StrategyError
from models.strategies.base import AggregateResult, ClientUpdate, Strategy
from models.strategies.clip import Clipped
from models.strategies.curvature import FedCurv, FisherMerge
from models.strategies.fedavg import FedAvg
from models.strategies.krum import MultiKrum, krum
from models.strategies.robust import Median, TrimmedMean
from models.strategies.server_opt import ServerOptimizer

__all__ = [
    "STRATEGY_NAMES",
    "AggregateResult",
    "ClientUpdate",
    "Strategy",
    "get_strategy",
    "load_strategy_factory",
    "strategy_uses_fisher",
]

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
STRATEGY_NAMES: tuple[str, ...] = registry.STRATEGIES
assert tuple(_FACTORIES) == STRATEGY_NAMES, "models.registry.STRATEGIES is out of step"


def load_strategy_factory(ref: str) -> Callable[..., Strategy]:
    """Import the class or factory named by ``package.module:Class``."""
    problem = registry.check_plugin_ref(ref)
    if problem:
        raise StrategyError(f"strategy {problem}")
    module_name, _, attr = ref.partition(":")
    try:
        obj: Any = importlib.import_module(module_name)
    except ImportError as exc:
        raise StrategyError(
            f"strategy {ref!r}: cannot import {module_name!r} ({exc}); install it or put its "
            "directory on PYTHONPATH"
        ) from None
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise StrategyError(f"strategy {ref!r}: {module_name!r} has no attribute {attr!r}")
        obj = getattr(obj, part)
    if not callable(obj):
        raise StrategyError(f"strategy {ref!r} is not a class or factory")
    return obj


def _plugin(ref: str, options: dict[str, Any]) -> Strategy:
    factory = load_strategy_factory(ref)
    try:
        strategy = factory(**options)
    except TypeError as exc:
        raise StrategyError(f"strategy {ref!r}: bad options {options}: {exc}") from None
    missing = [m for m in ("name", "init", "aggregate") if not hasattr(strategy, m)]
    if missing:
        raise StrategyError(
            f"strategy {ref!r} lacks {missing}: it must satisfy models.strategies.Strategy"
        )
    return strategy


def strategy_uses_fisher(name: str) -> bool:
    """Whether strategy ``name`` reads the clients' Fisher (built-in list, or `uses_fisher`)."""
    if registry.is_plugin(name):
        return bool(getattr(load_strategy_factory(name), "uses_fisher", False))
    return name in registry.FISHER_STRATEGIES


def get_strategy(name: str, **options: Any) -> Strategy:
    """Build a strategy by name; a bad name or option raises StrategyError naming the valid ones."""
    clip_norm = options.pop("clip_norm", None)
    if registry.is_plugin(name):
        strategy = _plugin(name, options)
        return strategy if clip_norm is None else Clipped(strategy, float(clip_norm))
    if name not in _FACTORIES:
        raise StrategyError(f"unknown strategy {name!r}; choose one of {', '.join(STRATEGY_NAMES)}")
    factory, allowed = _FACTORIES[name]
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
