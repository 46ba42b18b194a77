"""No silent waits: a step of the org that takes too long logs a WARNING naming it."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from daemons.runtime.config import ChainConfig
from daemons.runtime.overdue import OVERDUE_POLLS, overdue
from tests.daemons.test_org_rounds import make_org

pytestmark = pytest.mark.timeout(60)


async def test_overdue_warns_while_the_body_runs_and_stops_after(
    caplog: pytest.LogCaptureFixture,
) -> None:
    log = logging.getLogger("fedchain.test")
    with caplog.at_level(logging.WARNING, logger="fedchain.test"):
        async with overdue(log, "close of round 7", 0.05, round_id=7):
            await asyncio.sleep(0.3)
        warned = [r for r in caplog.records if "close of round 7: still not done" in r.message]
        await asyncio.sleep(0.2)  # the body ended: no more warnings
        assert len(warned) >= 2 and all(r.levelno == logging.WARNING for r in warned)
        assert len([r for r in caplog.records if "still not done" in r.message]) == len(warned)
        async with overdue(log, "quick", 0.05):
            pass
    assert not any("quick" in r.message for r in caplog.records)


async def test_an_org_step_stuck_on_its_transaction_is_logged(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """openRound never returns (a node that never answers): the driver says so."""
    org, chain, _ = make_org(tmp_path)
    org.parts.cfg = replace(org.parts.cfg, chain=ChainConfig(poll_interval_s=0.25 / OVERDUE_POLLS))
    stuck = asyncio.Event()

    async def never(key: str, fn_name: str, *args: Any) -> Any:
        stuck.set()
        await asyncio.Event().wait()

    chain.send = never  # type: ignore[method-assign]
    with caplog.at_level(logging.WARNING, logger="fedchain.org"):
        step = asyncio.create_task(org.step())
        await asyncio.wait_for(stuck.wait(), 30)
        await asyncio.sleep(0.6)
        step.cancel()
        await asyncio.gather(step, return_exceptions=True)
    warned = [r.message for r in caplog.records if r.levelno == logging.WARNING]
    assert any(m.startswith("open of round 0: still not done after") for m in warned), warned
