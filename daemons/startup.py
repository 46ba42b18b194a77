"""Start-up checks: what a daemon can find wrong before it touches the network (exit 2).

A bad model or strategy name, strategy options the strategy refuses, or a data file that is
missing or unreadable are configuration errors: found at start with the file and key named,
never at the first round close (where the org would crash-loop under systemd).
Model and strategy names go through the registries (`get_model`, `get_strategy`) here and
only here, so a new registry is re-pointed in one place.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from daemons.errors import ConfigError

_TOY = 8  # updates in the strategy dry run: enough for krum/trimmed_mean to do real work


def check_model(path: str, key: str, name: str) -> None:
    """The model `name` is registered (ConfigError naming `key` and the choices otherwise)."""
    from models.networks import get_model
    from models.types import ModelsError

    try:
        get_model(name)
    except ModelsError as exc:
        raise ConfigError(f"{path}: {key} = {name!r}: {exc}") from None


def check_strategy(path: str, name: str, options: dict[str, Any]) -> None:
    """Build the strategy and dry-run one aggregation on a toy round, so that options only
    an aggregation would trip over (a non-integer krum `f`, say) fail now, not at close."""
    from models.registry import is_plugin
    from models.strategies import STRATEGY_NAMES, ClientUpdate, get_strategy

    if not is_plugin(name) and name not in STRATEGY_NAMES:
        raise ConfigError(
            f"{path}: federation.strategy = {name!r}; allowed values: {', '.join(STRATEGY_NAMES)}"
            " or 'package.module:Class'"
        )
    try:
        strategy = get_strategy(name, **dict(options))
    except Exception as exc:  # StrategyError, or a bad value's TypeError/ValueError
        raise ConfigError(f"{path}: federation.strategy_options = {options!r}: {exc}") from None
    base = {"w": np.zeros(3, np.float32)}
    ones = {"w": np.ones(3, np.float32)}
    updates = [
        ClientUpdate(f"0x{i:040x}", {"w": np.full(3, i, np.float32)}, 10 + i, ones, ones, ones)
        for i in range(_TOY)
    ]
    try:
        strategy.aggregate(base, updates, strategy.init(base))
    except Exception as exc:
        raise ConfigError(
            f"{path}: federation.strategy_options = {options!r} for strategy {name!r} "
            f"fail on a test aggregation: {type(exc).__name__}: {exc}"
        ) from None


def load_data(path: str, key: str, data_path: str, task: Any = None, role: str = "client") -> Any:
    """The task's data at `data_path` (`Task.read`; None: Fashion-MNIST's loader), a missing,
    unreadable or wrongly shaped file as a ConfigError."""
    from models.data import load_dataset
    from models.types import ModelsError

    try:
        return load_dataset(data_path) if task is None else task.read(data_path, role)
    except (ModelsError, OSError, ValueError, KeyError) as exc:
        raise ConfigError(
            f"{path}: {key} = {data_path!r} cannot be loaded: {exc} "
            "(want an .npz with arrays x, y or a directory of IDX files)"
        ) from None
