"""A whole federation on the EVM nodes besides anvil (issue #10 §3): real daemons, real node.

Two clients, two rounds, the org exits 0 when done; every round closes with both updates.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from contracts.state import RoundStatus
from daemons.testnet.nodes.devchain import DevChain
from daemons.testnet.nodes.ganache import Ganache
from daemons.testnet.nodes.hardhat import Hardhat
from tests.integration.harness import Federation, messages

pytestmark = [pytest.mark.slow, pytest.mark.timeout(420)]
NODES: dict[str, type[DevChain]] = {"ganache": Ganache, "hardhat": Hardhat}


@pytest.mark.parametrize("kind", sorted(NODES))
async def test_a_federation_runs_on_another_node(
    kind: str, tmp_path: Path, fed_data: dict[str, Path]
) -> None:
    options = {"exit_when_done": True}
    async with Federation(
        tmp_path, fed_data, num_clients=2, rounds=2, max_updates=2, node_kind=NODES[kind],
        org_options=options,
    ) as fed:  # fmt: skip
        fed.start_all()
        infos = [await fed.wait_settled(r, timeout_s=180) for r in (1, 2)]
        assert fed.org is not None and fed.org.wait(60) == 0, "org exits 0 when done"
        for info in infos:
            assert info.status is RoundStatus.CLOSED and info.num_updates == 2
        assert infos[0].model_cid != infos[1].model_cid
        for client in fed.clients:
            assert messages(client).count("update submitted") == 2
        for daemon in fed.daemons():
            assert not any("can never be mined" in m for m in messages(daemon)), daemon.name
