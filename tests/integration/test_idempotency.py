"""The same event delivered twice (or again after a restart) produces one transaction.

Real anvil and bundled IPFS node; the handlers run in-process with the real chain adapter
(`TxSender` outbox in SQLite), so the transaction count is read from the chain's nonces.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from contracts.events import LogMeta, RoundOpened, UpdateSubmitted
from daemons.chain.port import Web3Chain
from daemons.chain.sender import TxSender
from daemons.chain.store import StateStore
from daemons.client.rounds import ClientRounds
from daemons.ipfs.blobs import BlobCache
from daemons.ipfs.bundled import BundledIpfsNode
from daemons.ipfs.client import IpfsStorage
from daemons.org.ledger import Ledger
from daemons.org.parts import OrgParts
from daemons.org.rounds import OrgRounds
from daemons.org.service import _submission
from daemons.runtime.config import load_config
from daemons.runtime.metrics import Metrics
from models.data import load_dataset
from tests.fixtures.anvil import Deployed

pytestmark = pytest.mark.timeout(180)
META = LogMeta(1, "0x" + "00" * 32, "0x" + "11" * 32, 0)


def _write_configs(tmp: Path, deployed: Deployed, ipfs: BundledIpfsNode, data: dict) -> Path:
    common = f"""
[chain]
rpc_url = "{deployed.anvil.rpc_url}"
contract = "{deployed.contract.address}"
[ipfs]
api_url = "{ipfs.api_url}"
timeout_s = 20
[service]
state_dir = "{tmp}"
"""
    (tmp / "org.toml").write_text(
        common
        + f"""
[federation]
clients = ["{deployed.clients[0].address}"]
rounds = 1
max_updates = 1
model = "logreg"
eval_data = "{data["org"]}"
[training]
fisher_samples = 50
"""
    )
    (tmp / "client.toml").write_text(common + f'[data]\npath = "{data["client-0"]}"\n')
    return tmp


async def nonce(deployed: Deployed, address: str) -> int:
    return int(await deployed.w3.eth.get_transaction_count(address))


async def test_duplicate_events_one_transaction(
    tmp_path: Path, deployed: Deployed, ipfs_node: BundledIpfsNode, fed_data: dict
) -> None:
    _write_configs(tmp_path, deployed, ipfs_node, fed_data)
    org_cfg = load_config(tmp_path / "org.toml", "org")
    client_cfg = load_config(tmp_path / "client.toml", "client")
    org_acct, client_acct = deployed.org, deployed.clients[0]
    org_store, client_store = StateStore(tmp_path / "org.db"), StateStore(tmp_path / "c.db")
    binding = deployed.contract
    async with IpfsStorage(ipfs_node.api_url) as storage:
        org_chain = Web3Chain(binding, TxSender(binding, org_acct, org_store), org_acct.address)
        org = OrgRounds(
            OrgParts(
                org_cfg,
                org_chain,
                storage,
                Ledger(org_store),
                BlobCache(tmp_path / "ob"),
                load_dataset(fed_data["org"]),
                Metrics("org"),
            )
        )
        await org.run_until_idle()
        info = await binding.get_round(1)
        opened = RoundOpened(
            1, info.base_cid, info.base_digest, info.deadline, 1, 1, info.config_cid, META
        )

        def client() -> ClientRounds:  # a fresh handler each time, as after a restart
            sender = TxSender(binding, client_acct, client_store)
            chain = Web3Chain(binding, sender, client_acct.address)
            return ClientRounds(
                client_cfg,
                chain,
                storage,
                client_store,
                BlobCache(tmp_path / "cb"),
                load_dataset(fed_data["client-0"]),
                Metrics("client"),
            )

        before = await nonce(deployed, client_acct.address)
        await client().on_round_opened(opened)
        await client().on_round_opened(opened)
        assert await nonce(deployed, client_acct.address) == before + 1
        assert await binding.has_submitted(1, client_acct.address)

        logs = await deployed.w3.eth.get_logs({"address": binding.address, "fromBlock": 0})
        from contracts.events import decode_log

        submitted = [e for e in map(decode_log, logs) if isinstance(e, UpdateSubmitted)]
        assert len(submitted) == 1
        org_before = await nonce(deployed, org_acct.address)
        for _ in range(2):  # the UpdateSubmitted event handled twice
            org.record(1, _submission(submitted[0]))
            await org.run_until_idle()
        assert await nonce(deployed, org_acct.address) == org_before + 1  # one closeRound
        assert (await binding.get_round(1)).settled
    org_store.close()
    client_store.close()
