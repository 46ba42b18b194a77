"""A WARNING while an awaited action runs longer than it should: no silent waits.

Every long wait in the daemons is bounded, but a bound can be minutes (a receipt timeout,
an IPFS timeout, retries with backoff). An operator watching the log must see that the
org is stuck on something, and on what, long before that: `overdue` logs the action,
its round and how long it has waited, every `after_s`, until it ends.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Any

from daemons.runtime.service import log_event

# the org's driver warns after this many poll intervals on one step (100 s at the
# default 0.5 s poll, 20 s at the testnet's 0.2 s)
OVERDUE_POLLS = 200


@contextlib.asynccontextmanager
async def overdue(
    logger: logging.Logger, what: str, after_s: float, **fields: Any
) -> AsyncIterator[None]:
    """Run the body; while it has not finished, log a WARNING every `after_s` seconds."""

    async def warn() -> None:
        waited = 0.0
        while True:
            await asyncio.sleep(after_s)
            waited += after_s
            log_event(
                logger,
                logging.WARNING,
                f"{what}: still not done after {waited:.0f} s",
                waited_s=round(waited, 1),
                **fields,
            )

    task = asyncio.create_task(warn(), name=f"overdue:{what}")
    try:
        yield
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
