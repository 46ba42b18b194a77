"""Start-up checks: what a daemon can find wrong before it touches the network (exit 2).

A bad model or strategy name, strategy options the strategy refuses, or a data file that is
missing or unreadable are configuration errors: found at start with the file and key named,
never at the first round close (where the org would crash-loop under systemd).
Model and strategy names go through the registries (`get_model`, `get_strategy`) here and
only here, so a new registry is re-pointed in one place.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import numpy as np

from daemons.errors import ConfigError

_log = logging.getLogger("fedchain.client")
_TOY = 8  # updates in the strategy dry run: enough for krum/trimmed_mean to do real work


def check_config(cfg: Any) -> None:
    """The checks of a `DaemonConfig` that need the registries (run by `run_daemon` at start,
    not by `load_config`, so the chain CLI need not import JAX to read a config)."""
    fed = cfg.federation
    if fed is not None:
        check_task(cfg.path, fed.task, fed.model)
        check_strategy(cfg.path, fed.strategy, fed.strategy_options)


def check_task(path: str, task: str, model: str) -> None:
    """The task (built-in or a plug-in `module:attribute`) loads with `model` (ConfigError
    naming the keys otherwise): the task registry is the one that knows a task's models."""
    from models.tasks.loader import get_task

    try:
        get_task(task, model)
    except Exception as exc:  # TaskError, or whatever a user's plug-in module raises
        raise ConfigError(
            f"{path}: federation.task = {task!r}, federation.model = {model!r}: {exc}"
        ) from None


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


async def registered_clients(w3: Any, contract: str) -> set[str] | None:
    """The contract's registered clients, replayed from its ClientAdded/ClientRemoved logs.

    One `eth_getLogs` over the whole history; None when the node refuses that (a public
    node's range limit, say): the caller then cannot tell.
    """
    from contracts.events import ClientAdded, ClientRemoved, decode_logs

    try:
        raw = await w3.eth.get_logs({"address": contract, "fromBlock": 0, "toBlock": "latest"})
    except Exception:  # any refusal: this check is advisory
        return None
    clients: set[str] = set()
    for event in decode_logs(raw):
        if isinstance(event, ClientAdded):
            clients.add(event.client)
        elif isinstance(event, ClientRemoved):
            clients.discard(event.client)
    return clients


def no_clients_warning(configured: tuple[str, ...], registered: set[str] | None) -> str | None:
    """The start-up warning for an org nobody can submit to, or None."""
    if configured or registered:
        return None
    known = (
        "the contract has no registered client"
        if registered is not None
        else "the node would not list the contract's registrations"
    )
    return (
        f"no clients: [federation].clients is empty and {known}, so no round can receive "
        "an update; list the clients' addresses in [federation].clients (the org registers "
        "them at its next start)"
    )


class Registration:
    """Whether this client's account is registered; `wait()` blocks until it is."""

    def __init__(self, is_client: Callable[[str], Awaitable[bool]], address: str) -> None:
        self.is_client, self.address = is_client, address
        self.registered = False

    async def wait(self, contract: str, interval_s: float, remind_s: float = 60.0) -> None:
        """Return once registered; until then say so (and again every `remind_s`), clearly."""
        import time

        from daemons.runtime.service import log_event

        warned_at: float | None = None
        while not await self.is_client(self.address):
            now = time.monotonic()
            if warned_at is None or now - warned_at >= remind_s:
                log_event(
                    _log,
                    logging.WARNING,
                    "this account is not a registered client of the contract: it will not "
                    "train or submit until the org registers it (the org registers the "
                    "addresses in its [federation].clients at start)",
                    address=self.address,
                    contract=contract,
                )
                warned_at = now
            await asyncio.sleep(interval_s)
        self.registered = True
        if warned_at is not None:
            log_event(_log, logging.INFO, "registered as a client", address=self.address)
