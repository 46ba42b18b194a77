"""A closed round's model, fetched before the next round opens with it as its base.

The org closes round r (`RoundClosed` names the new model and its digest) and then opens round
r + 1 on that model; the `openRound` transaction and its event come ~0.06–0.09 s later in the
testnet. A client that starts fetching the model on `RoundClosed` has those to spare when the
`RoundOpened` arrives, and its round handler takes the prefetched bytes instead of fetching
them again (same digest check, same size cap, same cache). At most one prefetch runs: a newer
`RoundClosed` (a replay after a restart delivers them in chain order) cancels the older one,
so a client that catches up fetches only the last model. A failed prefetch is logged and
changes nothing: the round handler fetches the base itself, as without a prefetch.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from daemons.runtime.service import log_event

log = logging.getLogger("fedchain.client")


class BasePrefetch:
    """The model of the latest `RoundClosed` seen, being fetched (or fetched)."""

    def __init__(self) -> None:
        self._digest: bytes | None = None
        self._task: asyncio.Task[bytes] | None = None

    def start(self, round_id: int, digest: bytes, fetch: Callable[[], Awaitable[bytes]]) -> None:
        """Fetch round `round_id`'s model (`fetch` checks `digest`) in the background."""
        self.cancel()
        self._digest = digest
        self._task = asyncio.create_task(self._run(round_id, fetch), name="client-prefetch")

    async def take(self, digest: bytes) -> bytes | None:
        """The prefetched blob if the prefetch was of `digest` (waits for it), else None."""
        if self._task is None or self._digest != digest:
            return None
        task, self._task, self._digest = self._task, None, None
        try:
            return await task
        except Exception:  # logged by _run: the caller fetches it itself
            return None

    def cancel(self) -> None:
        if self._task is not None and not self._task.done():
            self._task.cancel()
        self._task, self._digest = None, None

    @staticmethod
    async def _run(round_id: int, fetch: Callable[[], Awaitable[bytes]]) -> bytes:
        try:
            return await fetch()
        except Exception as exc:  # a cancel (BaseException) passes through unlogged
            log_event(
                log,
                logging.INFO,
                "prefetch of a closed round's model failed; the next round fetches it itself",
                round_id=round_id,
                error=f"{type(exc).__name__}: {exc}",
            )
            raise
