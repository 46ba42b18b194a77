"""A chain reset under running daemons (issue #10 §4): both exit 3 saying so, once.

Before, they exited 1 with "chain reorganised below every stored block ... raise [chain]
confirmations", advice that cannot help; only a restart said "chain was reset".
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.integration.harness import Federation, messages, restart_chain_fresh

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]


async def test_a_reset_under_running_daemons_exits_3(
    tmp_path: Path, fed_data: dict[str, Path]
) -> None:
    async with Federation(tmp_path, fed_data, num_clients=1, max_updates=1, rounds=50) as fed:
        fed.start_all()
        await fed.wait_settled(1, timeout_s=120)
        restart_chain_fresh(fed)  # the daemons keep running against the new, empty chain
        for daemon in fed.daemons():
            assert daemon.wait(90) == 3, f"{daemon.name} should exit 3 (chain reset)"
            stopped = [m for m in messages(daemon) if " stopped: " in m]
            assert stopped and stopped[-1].count("chain was reset") == 1, stopped
            assert not any("confirmations" in m for m in stopped), stopped
