"""What a client compiles while it waits for its first round (docs/daemons.md, "First round").

A process's first training compiles the jitted epoch and Fisher pass for the round's recipe
and the data's shapes. The client knows its data at start; the recipe it takes from the
round config it last trained on (kept in its state, so a restarted client has it) or else
from `[warmup]` in its config (the testnet writes the org's recipe there). The compilation
runs in a worker thread while the daemon attaches to the chain and waits for `RoundOpened`;
the first training waits for it to end rather than compile the same programs twice. A wrong
guess costs only the time it took: the round config decides what is trained.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from typing import Any

import jax
import numpy as np

from daemons.client.job import train_config, train_seed
from daemons.runtime.compile_cache import active_cache_dir, in_background_thread
from daemons.runtime.compile_lock import compile_turn, recipe_key
from daemons.runtime.config import DaemonConfig, TrainingConfig
from daemons.runtime.service import log_event
from daemons.runtime.task_setup import client_task
from daemons.wire.round_config import RoundConfig, decode_round_config
from models.data import Dataset
from models.fisher import precompile_fisher_diagonal
from models.rounds import local_penalty
from models.tasks.loader import zeros_template
from models.training import precompile_local_train

log = logging.getLogger("fedchain.client")
LAST_CONFIG_KEY = "client:last_round_config"
WAIT_LIMIT_S = 600.0  # a first round waits at most this long for the warm-up, then trains


def guess_recipe(cfg: DaemonConfig, kv: Any) -> tuple[RoundConfig, str] | None:
    """The recipe to compile for and where it came from: the last round's, `[warmup]`, none."""
    last = kv.get(LAST_CONFIG_KEY)
    if last:
        try:
            return decode_round_config(last.encode()), "last round config"
        except Exception as exc:  # an unreadable old entry: fall back, never fail start-up
            why = str(exc)
            log_event(log, logging.WARNING, "warm-up: stored round config unreadable", error=why)
    w = cfg.warmup
    if w is None or not w.model:
        return None
    fields = {f: getattr(w, f) for f in TrainingConfig.__dataclass_fields__}
    return RoundConfig(0, w.model, 0, TrainingConfig(**fields), w.fisher), "[warmup]"


def precompile_round(task_ref: str, config: RoundConfig, data: Dataset, client: str) -> None:
    """Compile what `train_update` would run for `config` on `data`, without training.

    Processes sharing a compile cache take turns per recipe (daemons/runtime/compile_lock.py):
    the first compiles, the others load its programs from the cache.
    """
    key = recipe_key(
        task_ref,
        config.task,
        config.model,
        config.training,
        config.fisher,
        [(a.shape, a.dtype.str) for a in (data.x, data.y)],
        jax.__version__,
        os.environ.get("XLA_FLAGS", ""),
    )
    with compile_turn(active_cache_dir(), key):
        _compile_round(task_ref, config, data, client)


def _compile_round(task_ref: str, config: RoundConfig, data: Dataset, client: str) -> None:
    task = client_task(task_ref, config.task, config.model)
    params = zeros_template(task)
    t = config.training
    sections: dict[str, Any] = {"params": params}
    if config.fisher:
        sections["fisher"] = jax.tree_util.tree_map(np.zeros_like, params)
    penalty = local_penalty(sections, t.penalty, t.ewc_lambda, t.fedprox_mu, None)
    seed = train_seed(config.seed, max(config.round_id, 1), client)
    precompile_local_train(task, params, data, train_config(t, seed), penalty)
    if config.fisher:
        precompile_fisher_diagonal(task, params, data, max_samples=t.fisher_samples, seed=seed)


class Warmup:
    """The background compilation; `wait()` before the first training (bounded, logged)."""

    def __init__(self, task: asyncio.Task[bool] | None) -> None:
        self._task = task

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    async def wait(self) -> bool:
        """True if the warm-up compiled its recipe; waits at most `WAIT_LIMIT_S`."""
        if self._task is None:
            return False
        if not self._task.done():
            log_event(log, logging.INFO, "waiting for the warm-up compilation to finish")
        try:
            return await asyncio.wait_for(asyncio.shield(self._task), WAIT_LIMIT_S)
        except TimeoutError:
            log_event(log, logging.WARNING, "warm-up still compiling; training without it")
            return False


def start_warmup(cfg: DaemonConfig, kv: Any, data: Dataset, client: str) -> Warmup:
    """Start compiling for the guessed recipe in a worker thread (or nothing to guess)."""
    guess = guess_recipe(cfg, kv)
    if guess is None:
        log_event(log, logging.INFO, "no warm-up: no [warmup] recipe and no earlier round")
        return Warmup(None)
    config, source = guess
    task_ref = cfg.data.task if cfg.data is not None else ""

    async def run() -> bool:
        started = time.perf_counter()
        try:
            await in_background_thread(precompile_round, task_ref, config, data, client)
        except Exception as exc:  # a bad guess must never stop the daemon
            log_event(log, logging.WARNING, "warm-up failed; round 1 compiles", error=str(exc))
            return False
        seconds = round(time.perf_counter() - started, 3)
        log_event(log, logging.INFO, "warm-up compiled", source=source, seconds=seconds)
        return True

    return Warmup(asyncio.create_task(run(), name="client-warmup"))
