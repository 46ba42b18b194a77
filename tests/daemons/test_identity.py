"""Chain identity: recorded on first start, a reset chain or foreign contract stops the daemon."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from eth_account import Account
from web3 import AsyncHTTPProvider, AsyncWeb3

from contracts.binding import FederatedRounds
from daemons.chain.identity import check_identity, compare_identity, fetch_identity
from daemons.chain.store import ChainIdentity, StateStore
from daemons.errors import ChainResetError, ConfigError
from daemons.testnet.nodes.anvil import Anvil
from tests.fixtures.anvil import Deployed

pytestmark = pytest.mark.timeout(90)


async def _identity_of(anvil: Anvil, store: StateStore, deploy: bool = False) -> ChainIdentity:
    """Check identity against `anvil`; with `deploy`, first deploy a contract and bind to it."""
    w3 = AsyncWeb3(AsyncHTTPProvider(anvil.rpc_url))
    try:
        contract = store.contract()
        if deploy:
            org = Account.from_key(anvil.dev_private_keys[0])
            contract = (await FederatedRounds.deploy(w3, org)).address
        return await asyncio.wait_for(check_identity(w3, store, contract), 30)
    finally:
        await w3.provider.disconnect()


def test_compare_identity_message_names_everything() -> None:
    recorded, found = ChainIdentity(31337, "0xab"), ChainIdentity(31337, "0xcd")
    compare_identity(recorded, recorded, "/var/lib/org", "http://node:8545")
    with pytest.raises(ChainResetError) as err:
        compare_identity(recorded, found, "/var/lib/org", "http://node:8545")
    message = str(err.value)
    assert message.startswith("chain was reset: state dir /var/lib/org recorded chain 31337")
    for part in ("genesis 0xab", "http://node:8545", "genesis 0xcd", "remove /var/lib/org"):
        assert part in message


async def test_first_start_records_and_same_chain_passes(
    deployed: Deployed, tmp_path: Path
) -> None:
    with StateStore(tmp_path / "state" / "s.db") as store:
        found = await asyncio.wait_for(check_identity(deployed.w3, store), 30)
        assert store.identity() == found == await fetch_identity(deployed.w3)
        assert found.chain_id == 31337 and len(found.genesis_hash) == 66
        address = deployed.contract.address
        await asyncio.wait_for(check_identity(deployed.w3, store, address), 30)
        assert store.contract() == address
        assert await asyncio.wait_for(check_identity(deployed.w3, store, address), 30) == found


async def test_chain_restarted_without_state_is_refused(tmp_path: Path) -> None:
    state_dir = tmp_path / "org-state"
    with StateStore(state_dir / "s.db") as store:
        with Anvil(log_path=tmp_path / "a1.log") as first:
            port = first.port
            await _identity_of(first, store, deploy=True)
        # genesis differs unless both started in the same second; the contract is gone anyway
        with Anvil(port=port, log_path=tmp_path / "a2.log") as second:
            with pytest.raises(ChainResetError, match=r"^chain was reset") as err:
                await _identity_of(second, store)
            assert store.identity() is not None
    message = str(err.value)
    assert str(state_dir) in message and second.rpc_url in message and "remove" in message


async def test_chain_restarted_with_its_state_passes(tmp_path: Path) -> None:
    dump = tmp_path / "anvil-state.json"
    with StateStore(tmp_path / "s.db") as store:
        with Anvil(state_path=dump, log_path=tmp_path / "a1.log") as first:
            recorded = await _identity_of(first, store, deploy=True)
        assert dump.exists()
        with Anvil(state_path=dump, log_path=tmp_path / "a2.log") as second:
            assert await _identity_of(second, store) == recorded


async def test_foreign_or_missing_contract_is_a_config_error(
    deployed: Deployed, tmp_path: Path
) -> None:
    """Another contract than recorded, or an address without code never recorded: exit 2."""
    with StateStore(tmp_path / "s.db") as store:
        await check_identity(deployed.w3, store, deployed.contract.address)
        with pytest.raises(ConfigError, match="belongs to contract"):
            await check_identity(deployed.w3, store, deployed.outsider.address)
    with StateStore(tmp_path / "other.db") as store:
        with pytest.raises(ConfigError, match=r"\[chain\] contract .* has no code") as err:
            await check_identity(deployed.w3, store, deployed.outsider.address)
        assert not isinstance(err.value, ChainResetError)
        assert store.contract() is None


async def test_recorded_contract_without_code_is_a_reset(tmp_path: Path) -> None:
    """anvil restarted within the same second keeps its genesis: the code tells the reset."""
    with StateStore(tmp_path / "s.db") as store:
        with Anvil(log_path=tmp_path / "a1.log") as first:
            port = first.port
            await _identity_of(first, store, deploy=True)
        with Anvil(port=port, log_path=tmp_path / "a2.log") as second:
            store.set_identity(await fetch_identity_of(second))  # as if the same genesis
            with pytest.raises(ChainResetError, match=r"^chain was reset: contract .* no code"):
                await _identity_of(second, store)


async def fetch_identity_of(node: Anvil) -> ChainIdentity:
    w3 = AsyncWeb3(AsyncHTTPProvider(node.rpc_url))
    try:
        return await fetch_identity(w3)
    finally:
        await w3.provider.disconnect()
