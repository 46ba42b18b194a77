"""What the org computes and compiles before it needs it (docs/daemons.md, "First round").

From its config the org knows the task, the seed and the evaluation sets, so at start a
worker thread builds the seeded round-0 model (the first round opens with it) and then
evaluates it once on every evaluation set, which compiles the jitted evaluation and
per-class passes the first close runs. The event loop stays free for the health endpoint
and the chain; the steps that need these results wait for them (bounded, logged).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping
from typing import Any

from daemons.org.evaluation import per_class
from daemons.org.model_step import eval_metrics
from daemons.runtime.compile_cache import in_background_thread
from daemons.runtime.service import log_event
from models.data import Dataset
from models.rounds import Sections, initial_sections
from models.task import Task

log = logging.getLogger("fedchain.org")
WAIT_LIMIT_S = 600.0


class OrgWarmup:
    """The round-0 model (built once, in a thread) and the evaluation compiled ahead."""

    def __init__(
        self,
        task: Task,
        seed: int,
        with_fisher: bool,
        eval_data: Dataset,
        heldout: Mapping[str, Dataset],
        with_per_class: bool,
    ) -> None:
        self.task, self.seed, self.with_fisher = task, seed, with_fisher
        self.eval_data, self.heldout = eval_data, dict(heldout)
        self.with_per_class = with_per_class
        self._initial: asyncio.Task[Sections] = asyncio.create_task(
            asyncio.to_thread(initial_sections, task.model, seed, with_fisher, task),
            name="org-warmup-initial",
        )
        self._evaluated = asyncio.create_task(self._evaluate(), name="org-warmup-evaluate")

    async def initial(self) -> Sections:
        """The round-0 sections: the same function, run once ahead of time (same bits)."""
        return await asyncio.wait_for(asyncio.shield(self._initial), WAIT_LIMIT_S)

    async def evaluated(self) -> None:
        """Return once the evaluation programs are compiled (or the warm-up gave up)."""
        if not self._evaluated.done():
            log_event(log, logging.INFO, "waiting for the evaluation warm-up to finish")
        try:
            await asyncio.wait_for(asyncio.shield(self._evaluated), WAIT_LIMIT_S)
        except TimeoutError:
            log_event(log, logging.WARNING, "evaluation warm-up still running; closing anyway")

    async def _evaluate(self) -> None:
        started = time.perf_counter()
        try:
            params = (await self._initial)["params"]
            await in_background_thread(self._run_evaluations, params)
        except Exception as exc:  # a warm-up must never stop the daemon
            log_event(log, logging.WARNING, "evaluation warm-up failed", error=str(exc))
            return
        seconds = round(time.perf_counter() - started, 3)
        log_event(log, logging.INFO, "warm-up compiled", what="evaluation", seconds=seconds)

    def _run_evaluations(self, params: Any) -> None:
        for data in [self.eval_data, *self.heldout.values()]:
            eval_metrics(self.task, params, data)
        if self.with_per_class:
            per_class(self.task, params, self.eval_data)
