"""A client host's training: its clients' `train_update` calls of one round, trained together.

The host hands a `RoundOpened` to all its clients at once (`BatchTrainer.begin`); each client
checks, fetches and then asks to train (`BatchTrainer.train`, in place of its worker thread).
When every client of the dispatch has either asked or finished without training, the batch
runs in one worker thread, in one of two ways (`[host] training`, "auto" by default):

- "loop" (auto on a CPU): one client after another, each trained by `local_train` exactly as
  a single client daemon trains it (the same compiled epoch, the same bits), and each update
  handed back as soon as it is encoded, so the first clients put and submit, and the org
  fetches, while the others still train;
- "vmap" (auto on an accelerator): `models.training_many.train_all` vmaps the clients whose
  shapes agree and trains the rest one by one. On XLA:CPU the batched matmuls made this
  1.2-1.8x slower than the loop (CNN; 2NN with 16 clients; `benchmarks/host_training.py`).

A client that has not asked `gather_s` after the first did is left to a later batch (logged),
so one slow fetch cannot hold the others back forever.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import jax

from daemons.client.host_config import TRAINING_MODES
from daemons.client.job import encode_update, prepare_training, privatized
from daemons.runtime.service import log_event
from models.training import TrainMetrics, local_train
from models.training_many import train_all

log = logging.getLogger("fedchain.client.host")
Call = tuple[Any, ...]  # `train_update`'s positional arguments
DEFAULT_GATHER_S = 60.0


def resolve_mode(mode: str) -> str:
    """ "loop" or "vmap" for a `[host] training` value ("auto": loop on a CPU)."""
    if mode == "auto":
        return "loop" if jax.default_backend() == "cpu" else "vmap"
    if mode not in TRAINING_MODES:
        raise ValueError(f"training mode must be auto, loop or vmap; got {mode!r}")
    return mode


def train_updates(
    calls: Sequence[Call],
    done: Callable[[int, bytes | BaseException], None] | None = None,
    mode: str = "auto",
) -> list[bytes | BaseException]:
    """The update blob of each call (`train_update`'s arguments), or the error it raised.

    `done(i, result)` is called as soon as call `i`'s result is known, so the first clients
    can put and submit while the others' updates are still being trained or encoded.

    Calls of one task (the same `Task` object: built-in tasks are cached) train together
    (`mode`, see the module docstring); each client's privatization, Fisher and encoding then
    run as `train_update` runs them. `train_s` in each blob is the host's training time of
    the batch up to that client's ("vmap": the whole call's, the same for every client;
    "loop": the sum of the clients trained so far), so the largest is the batch's.
    """
    out: list[bytes | BaseException] = [RuntimeError("not trained")] * len(calls)

    def settle(i: int, result: bytes | BaseException) -> None:
        out[i] = result
        if done is not None:
            done(i, result)

    def finish(i: int, trained: Any, metrics: TrainMetrics, train_s: float) -> None:
        try:
            blob = encode_update(
                preps[i], calls[i][1], privatized(preps[i], trained), metrics, train_s
            )
        except Exception as exc:
            settle(i, exc)
        else:
            settle(i, blob)

    def train_vmapped(members: list[int]) -> None:
        started = time.perf_counter()
        try:
            results = train_all(preps[members[0]].model, [preps[i].job for i in members])
            results = jax.block_until_ready(results)
        except Exception as exc:
            for i in members:
                settle(i, exc)
            return
        train_s = time.perf_counter() - started
        for i, (trained, metrics) in zip(members, results, strict=True):
            finish(i, trained, metrics, train_s)

    preps: dict[int, Any] = {}
    by_model: dict[int, list[int]] = {}
    for i, (base, _cid, config, data, client, previous, task) in enumerate(calls):
        try:
            preps[i] = prepare_training(base, config, data, client, previous, task)
        except Exception as exc:  # this client's bad input fails this client only
            settle(i, exc)
            continue
        by_model.setdefault(id(preps[i].model), []).append(i)
    vmapped = resolve_mode(mode) == "vmap"
    # "loop": client i's Fisher pass and encoding run in a second thread while client i+1
    # trains (they were ~40 % of a 16-client host's loop, done one after the other)
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="host-encode") as encoder:
        encoding: list[Future[None]] = []
        for members in by_model.values():
            if vmapped:
                train_vmapped(members)
                continue
            model, spent = preps[members[0]].model, 0.0
            for i in members:
                job, started = preps[i].job, time.perf_counter()
                try:
                    trained, metrics = local_train(
                        model, job.params, job.data, job.config, job.penalty
                    )
                    trained = jax.block_until_ready(trained)
                except Exception as exc:
                    settle(i, exc)
                    continue
                spent += time.perf_counter() - started
                encoding.append(encoder.submit(finish, i, trained, metrics, spent))
        for job_done in encoding:
            job_done.result()  # a failure outside any client's work (settle) is raised here
    return out


class BatchTrainer:
    """Gathers the `train` calls of one dispatch to `expected` clients; trains them at once."""

    def __init__(self, gather_s: float = DEFAULT_GATHER_S, mode: str = "auto") -> None:
        self.gather_s = gather_s
        self.mode = resolve_mode(mode)  # "loop" or "vmap"
        self.batches = 0  # how many batches ran (tests, metrics)
        self.last_batch_size = 0
        self._expected = 0
        self._finished = 0
        self._pending: list[tuple[Call, asyncio.Future[bytes]]] = []
        self._timer: asyncio.Task[None] | None = None
        self._running: set[asyncio.Task[None]] = set()

    def begin(self, expected: int) -> None:
        """A new dispatch: `expected` clients will each call `train` or `finished`."""
        self._expected, self._finished = expected, 0

    def finished(self) -> None:
        """A client of this dispatch is done (it trained, or had nothing to train)."""
        self._finished += 1
        self._maybe_flush()

    async def train(self, *call: Any) -> bytes:
        """`train_update(*call)`, trained in this dispatch's batch."""
        future: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
        self._pending.append((call, future))
        if self._timer is None:
            self._timer = asyncio.create_task(self._flush_later())
        self._maybe_flush()
        return await future

    def _maybe_flush(self) -> None:
        if self._pending and len(self._pending) + self._finished >= self._expected:
            self._flush()

    async def _flush_later(self) -> None:
        await asyncio.sleep(self.gather_s)
        self._timer = None
        if self._pending:
            log_event(
                log,
                logging.WARNING,
                f"training the {len(self._pending)} client(s) that are ready after waiting "
                f"{self.gather_s:g} s; the others train in a later batch",
                expected=self._expected,
                finished=self._finished,
            )
            self._flush()

    def _flush(self) -> None:
        batch, self._pending = self._pending, []  # their `finished` calls come after it
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        task = asyncio.create_task(self._run(batch))
        self._running.add(task)
        task.add_done_callback(self._running.discard)

    async def _run(self, batch: list[tuple[Call, asyncio.Future[bytes]]]) -> None:
        self.batches += 1
        self.last_batch_size = len(batch)
        log_event(
            log, logging.INFO, "training a batch of clients", clients=len(batch), mode=self.mode
        )
        loop = asyncio.get_running_loop()

        def done(i: int, result: bytes | BaseException) -> None:  # from the worker thread
            loop.call_soon_threadsafe(_settle, batch[i][1], result)

        try:
            await asyncio.to_thread(train_updates, [call for call, _ in batch], done, self.mode)
        except Exception as exc:  # a bug outside any one client's work: each of them fails
            for _, future in batch:
                _settle(future, exc)


def _settle(future: asyncio.Future[bytes], result: bytes | BaseException) -> None:
    if future.done():  # the client's handler was cancelled meanwhile
        return
    if isinstance(result, BaseException):
        future.set_exception(result)
    else:
        future.set_result(result)
