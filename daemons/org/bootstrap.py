"""First start of the org: deploy or attach to the contract, register the configured clients."""

from __future__ import annotations

import hashlib
import logging

from eth_account.signers.local import LocalAccount
from web3 import AsyncWeb3

from contracts.binding import FederatedRounds
from daemons.ports import Chain
from daemons.service import log_event
from daemons.wiring import Node

log = logging.getLogger("fedchain.org")


async def attach_or_deploy(node: Node, account: LocalAccount) -> str:
    """The contract address: from config, else remembered in state, else a fresh deployment."""
    configured = node.cfg.chain.contract
    if configured:
        address = AsyncWeb3.to_checksum_address(configured)
    else:
        remembered = node.store.contract()
        if remembered:
            return remembered
        binding = await FederatedRounds.deploy(node.w3, account)
        address = binding.address
        log_event(log, logging.INFO, "contract deployed", address=address)
    node.store.set_contract(address)
    return address


async def register_clients(chain: Chain, clients: tuple[str, ...]) -> None:
    """Add the configured clients that are not yet registered (a testnet may have done it)."""
    wanted = sorted({AsyncWeb3.to_checksum_address(c) for c in clients})
    missing = [c for c in wanted if not await chain.is_client(c)]
    if not missing:
        return
    tag = hashlib.sha256(",".join(missing).encode()).hexdigest()[:12]
    await chain.send(f"add_clients:{tag}", "addClients", missing)
    log_event(log, logging.INFO, "clients registered", count=len(missing))
