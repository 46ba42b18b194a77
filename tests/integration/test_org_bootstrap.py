"""Org first start on real anvil: deploy once, even if killed before recording the address;
register only the configured clients that are missing."""

from __future__ import annotations

from pathlib import Path

import pytest
from eth_account import Account
from web3 import AsyncHTTPProvider, AsyncWeb3

from daemons.chain.port import Web3Chain
from daemons.chain.sender import TxSender
from daemons.chain.store import StateStore
from daemons.errors import ConfigError
from daemons.org.bootstrap import attach_or_deploy, create_address, register_clients
from daemons.runtime.config import load_config
from daemons.runtime.metrics import Metrics
from daemons.runtime.wiring import Node
from daemons.testnet.nodes.anvil import Anvil
from daemons.testnet.nodes.devchain import DevChain
from daemons.testnet.nodes.ganache import Ganache

pytestmark = pytest.mark.timeout(120)


def _node(tmp: Path, anvil: DevChain, w3: AsyncWeb3, store: StateStore) -> Node:
    path = tmp / "org.toml"
    path.write_text(f'[chain]\nrpc_url = "{anvil.rpc_url}"\n[federation]\neval_data = "x"\n')
    return Node(load_config(path, "org"), w3, store, Metrics("org"))


async def test_deploy_once_across_a_crash(tmp_path: Path, anvil: Anvil, w3: AsyncWeb3) -> None:
    org = Account.from_key(anvil.dev_private_keys[0])
    first = StateStore(tmp_path / "a.sqlite")
    address = await attach_or_deploy(_node(tmp_path, anvil, w3, first), org)
    assert address == create_address(org.address, 0)
    assert await w3.eth.get_code(address)
    # killed after deploying, before recording the address: only the nonce note survived
    second = StateStore(tmp_path / "b.sqlite")
    second.put("org:deploy_nonce", first.get("org:deploy_nonce") or "")
    before = await w3.eth.get_transaction_count(org.address)
    again = await attach_or_deploy(_node(tmp_path, anvil, w3, second), org)
    assert again == address and await w3.eth.get_transaction_count(org.address) == before
    assert second.contract() == address


async def test_register_only_missing_clients(tmp_path: Path, anvil: Anvil, w3: AsyncWeb3) -> None:
    from contracts.binding import FederatedRounds

    keys = anvil.dev_private_keys
    org, a, b = (Account.from_key(k) for k in keys[:3])
    contract = await FederatedRounds.deploy(w3, org)
    await contract.add_clients(org, [a.address])
    store = StateStore(tmp_path / "s.sqlite")
    chain = Web3Chain(contract, TxSender(contract, org, store), org.address)
    await register_clients(chain, (a.address.lower(), b.address))
    assert await contract.is_client(a.address) and await contract.is_client(b.address)
    nonce = await w3.eth.get_transaction_count(org.address)
    await register_clients(chain, (a.address, b.address))  # nothing missing: no transaction
    assert await w3.eth.get_transaction_count(org.address) == nonce


async def test_a_node_without_push0_is_a_config_error(tmp_path: Path) -> None:
    """A pre-Shanghai chain cannot run the shanghai-target contract: exit 2, say how to fix."""
    with Ganache(hardfork="london", log_path=tmp_path / "ganache.log") as node:
        w3 = AsyncWeb3(AsyncHTTPProvider(node.rpc_url))
        try:
            org = Account.from_key(node.dev_private_keys[0])
            with StateStore(tmp_path / "s.sqlite") as store, pytest.raises(ConfigError) as err:
                await attach_or_deploy(_node(tmp_path, node, w3, store), org)
        finally:
            await w3.provider.disconnect()
    message = str(err.value)
    for part in ("EVM target 'shanghai'", "PUSH0", "compile_contract.mjs --evm-version paris"):
        assert part in message
