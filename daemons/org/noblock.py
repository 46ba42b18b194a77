"""A round stuck past its deadline because the chain makes no blocks: say why, and the fix.

Deadlines are judged by block time, never the local clock (DESIGN.md). A chain that mines
only when a transaction arrives (plain `anvil`, Hardhat's automine) makes no block after the
last submission, so block time stops and a round whose clients are gone never reaches its
deadline: the org waits, correctly but silently. `stall_warning` is the decision, a pure
function of the round's deadline, the latest block's timestamp and two wall-clock readings;
`NoBlockWatch` feeds it and logs at most once per `after_s`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from contracts.state import RoundStatus
from daemons.org.decide import Action, Decision, RoundView
from daemons.runtime.service import log_event

log = logging.getLogger("fedchain.org")


def stall_warning(
    deadline: int, block_s: int, wall_s: float, block_seen_wall_s: float, after_s: float
) -> str | None:
    """The warning when the wall clock is past `deadline`, block time is not, and the latest
    block (timestamp `block_s`, first seen at `block_seen_wall_s`) is `after_s` old; else None."""
    if after_s <= 0 or wall_s <= deadline or block_s > deadline:
        return None
    quiet_s = wall_s - block_seen_wall_s
    if quiet_s < after_s:
        return None
    return (
        f"round is past its deadline by the wall clock ({wall_s - deadline:.0f} s) but no "
        f"new block for {quiet_s:.0f} s: deadlines are judged by block time, and this chain "
        "makes blocks only when a transaction arrives; run the node with a block interval "
        "(`anvil --block-time 1`; Hardhat: `interval` mining) or send any transaction"
    )


class NoBlockWatch:
    """Tracks when the latest block's timestamp last moved and warns about a stalled round."""

    def __init__(self, after_s: float, clock: Callable[[], float] = time.time) -> None:
        self.after_s, self.clock = after_s, clock
        self._block_s: int | None = None
        self._seen_wall_s = 0.0
        self._warned_wall_s: float | None = None

    def observe(self, view: RoundView, decision: Decision) -> str | None:
        """Look at one step's view; log (and return) the warning when it is due."""
        wall_s = self.clock()
        if view.now_s != self._block_s:
            self._block_s, self._seen_wall_s = view.now_s, wall_s
        if view.status is not RoundStatus.OPEN or decision.action is not Action.WAIT:
            return None
        message = stall_warning(view.deadline, view.now_s, wall_s, self._seen_wall_s, self.after_s)
        last = self._warned_wall_s
        if message is None or (last is not None and wall_s - last < self.after_s):
            return None
        self._warned_wall_s = wall_s
        log_event(log, logging.WARNING, message, round_id=view.round_id, deadline=view.deadline)
        return message
