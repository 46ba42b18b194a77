"""The no-new-block warning (issue #10 §4) as a pure decision, from a table."""

from __future__ import annotations

from dataclasses import replace

import pytest

from contracts.state import RoundStatus
from daemons.org.decide import Action, Decision, RoundView
from daemons.org.noblock import NoBlockWatch, stall_warning

# deadline 1000; the latest block is at 990 and was first seen (wall clock) at 990
BASE = {"deadline": 1000, "block_s": 990, "wall_s": 1050.0, "block_seen_wall_s": 990.0}


@pytest.mark.parametrize(
    ("changes", "warns"),
    [
        ({}, True),  # 50 s past the deadline, no block for 60 s
        ({"wall_s": 1000.0}, False),  # not past the deadline by the wall clock
        ({"block_s": 1001}, False),  # block time is past it: decide() acts, no stall
        ({"block_seen_wall_s": 1030.0}, False),  # a block 20 s ago (< 30 s)
        ({"after_s": 0.0}, False),  # the warning is off
        ({"after_s": 61.0}, False),
    ],
)
def test_stall_warning(changes: dict[str, float], warns: bool) -> None:
    args = {**BASE, "after_s": 30.0, **changes}
    message = stall_warning(**args)  # type: ignore[arg-type]
    assert (message is not None) is warns
    if message:
        assert "no new block for 60 s" in message and "--block-time" in message


VIEW = RoundView(
    round_id=1,
    status=RoundStatus.OPEN,
    deadline=1000,
    min_updates=1,
    max_updates=3,
    num_updates=0,
    now_s=990,
    recorded=0,
    pending=0,
    rounds=3,
)
WAIT = Decision(Action.WAIT, "before deadline")


def test_watch_tracks_block_time_and_rate_limits() -> None:
    now = [990.0]
    watch = NoBlockWatch(after_s=30.0, clock=lambda: now[0])
    assert watch.observe(VIEW, WAIT) is None  # first sight of block 990
    now[0] = 1025.0
    assert watch.observe(VIEW, WAIT) is not None  # past the deadline, 35 s without a block
    now[0] = 1040.0
    assert watch.observe(VIEW, WAIT) is None  # said 15 s ago
    now[0] = 1056.0
    assert watch.observe(VIEW, WAIT) is not None  # again after 30 s
    now[0] = 1100.0
    assert watch.observe(replace(VIEW, now_s=1099), WAIT) is None  # a new block: quiet again
    assert watch.observe(replace(VIEW, status=RoundStatus.CLOSED), WAIT) is None
