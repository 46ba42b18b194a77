"""First start of the org: deploy or attach to the contract, register the configured clients."""

from __future__ import annotations

import logging

import rlp
from eth_account.signers.local import LocalAccount
from eth_typing import ChecksumAddress
from eth_utils import keccak, to_bytes, to_checksum_address
from web3 import AsyncWeb3

from contracts.binding import EvmTargetMismatch, FederatedRounds
from daemons.chain.port import Chain
from daemons.errors import ConfigError
from daemons.runtime.service import log_event
from daemons.runtime.wiring import Node

log = logging.getLogger("fedchain.org")


async def attach_or_deploy(node: Node, account: LocalAccount) -> str:
    """The contract address: from config, else remembered in state, else a fresh deployment."""
    configured = node.cfg.chain.contract
    if configured:
        address: str = AsyncWeb3.to_checksum_address(configured)
    else:
        remembered = node.store.contract()
        if remembered:
            return remembered
        address = await _earlier_deployment(node, account) or await _deploy(node, account)
    node.store.set_contract(address)
    return address


async def _deploy(node: Node, account: LocalAccount) -> str:
    """Deploy, after noting the nonce so a restart can find a deployment it did not record."""
    nonce = await node.w3.eth.get_transaction_count(account.address, "pending")
    node.store.put("org:deploy_nonce", str(nonce))
    try:
        binding = await FederatedRounds.deploy(node.w3, account)
    except EvmTargetMismatch as exc:  # restarting cannot help: exit 2, not a crash loop
        raise ConfigError(str(exc)) from exc
    log_event(log, logging.INFO, "contract deployed", address=binding.address)
    return binding.address


async def _earlier_deployment(node: Node, account: LocalAccount) -> str | None:
    """The contract a killed earlier start deployed (at its CREATE address), if it has code."""
    nonce = node.store.get("org:deploy_nonce")
    if nonce is None:
        return None
    address = create_address(account.address, int(nonce))
    if not await node.w3.eth.get_code(address):
        return None
    log_event(
        log, logging.INFO, "attaching to the contract deployed before a restart", address=address
    )
    return address


def create_address(sender: str, nonce: int) -> ChecksumAddress:
    """The address CREATE gives a contract deployed by `sender` with `nonce` (yellow paper)."""
    return to_checksum_address(keccak(rlp.encode([to_bytes(hexstr=sender), nonce]))[12:])


async def register_clients(chain: Chain, clients: tuple[str, ...]) -> None:
    """Add the configured clients that are not yet registered (a testnet may have done it)."""
    wanted = sorted({AsyncWeb3.to_checksum_address(c) for c in clients})
    missing = [c for c in wanted if not await chain.is_client(c)]
    if not missing:
        return
    await chain.add_clients(missing)
    log_event(log, logging.INFO, "clients registered", count=len(missing))
