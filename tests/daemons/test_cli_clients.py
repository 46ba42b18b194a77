"""`fedchain clients add|remove|ls` changes the allowlist on a real chain AND in the org's
config (keeping its comments), is idempotent, and refuses a key that is not the org's."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from eth_account import Account
from eth_utils import to_checksum_address
from web3 import AsyncHTTPProvider, AsyncWeb3

from contracts.binding import FederatedRounds
from daemons.chain.store import StateStore
from daemons.cli.main import main
from daemons.runtime.config import load_config
from daemons.testnet.nodes.anvil import Anvil

pytestmark = pytest.mark.timeout(240)
PASSWORD = "pw-for-tests"
NEWCOMER = to_checksum_address("0x90f79bf6eb2c4f872eb8400df8d9e7dfb7b2b0e5")


@dataclass(frozen=True)
class Org:
    anvil: Anvil
    config: Path
    contract: str
    client: str  # the client `fedchain init` made


def on_chain(anvil: Anvil, contract: str, client: str) -> bool:
    async def ask() -> bool:
        w3 = AsyncWeb3(AsyncHTTPProvider(anvil.rpc_url))
        try:
            return await FederatedRounds(w3, contract).is_client(client)
        finally:
            await w3.provider.disconnect()

    return asyncio.run(ask())


def in_config(config: Path) -> list[str]:
    org = load_config(config, "org")
    assert org.federation is not None
    return list(org.federation.clients)


def add_on_chain_only(org: Org, client: str) -> None:
    """addClient behind the config's back (e.g. from another tool)."""
    folder = org.config.parent
    key = Account.decrypt(json.loads((folder / "keystore.json").read_text()), PASSWORD)

    async def go() -> None:
        w3 = AsyncWeb3(AsyncHTTPProvider(org.anvil.rpc_url))
        try:
            await FederatedRounds(w3, org.contract).add_client(Account.from_key(key), client)
        finally:
            await w3.provider.disconnect()

    asyncio.run(go())


def deploy_as_the_org(anvil: Anvil, folder: Path) -> str:
    """What the org daemon does on first start: deploy, register, record the address."""
    key = Account.decrypt(json.loads((folder / "org" / "keystore.json").read_text()), PASSWORD)
    org = Account.from_key(key)

    async def go() -> str:
        w3 = AsyncWeb3(AsyncHTTPProvider(anvil.rpc_url))
        try:
            await w3.provider.make_request("anvil_setBalance", [org.address, hex(10**20)])  # type: ignore[arg-type]
            return (await FederatedRounds.deploy(w3, org)).address
        finally:
            await w3.provider.disconnect()

    address = asyncio.run(go())
    (folder / "org" / "state").mkdir()
    with StateStore(folder / "org" / "state" / "org.sqlite") as store:
        store.set_contract(address)
    return address


@pytest.fixture(scope="module")
def org(tmp_path_factory) -> Iterator[Org]:
    folder = tmp_path_factory.mktemp("clients") / "fed"
    mp = pytest.MonkeyPatch()
    mp.setenv("FEDCHAIN_KEYSTORE_PASSWORD", PASSWORD)
    try:
        with Anvil(log_path=folder.parent / "anvil.log") as anvil:
            argv = ["init", str(folder), "--clients", "1", "--rpc-url", anvil.rpc_url]
            assert main(argv) == 0
            contract = deploy_as_the_org(anvil, folder)
            config = folder / "org" / "org.toml"
            yield Org(anvil, config, contract, in_config(config)[0])
    finally:
        mp.undo()


def test_add_then_remove_changes_chain_and_config(org: Org, capsys) -> None:
    assert main(["clients", "add", NEWCOMER.lower(), "--config", str(org.config)]) == 0
    assert on_chain(org.anvil, org.contract, NEWCOMER)
    assert in_config(org.config) == [org.client, NEWCOMER]  # checksummed
    assert "# changed by `fedchain clients add/remove`" in org.config.read_text()
    assert main(["clients", "add", NEWCOMER, "--config", str(org.config)]) == 0
    assert capsys.readouterr().out.count("already so") == 2
    assert main(["clients", "ls", "--config", str(org.config)]) == 0
    listing = capsys.readouterr().out
    assert f"{NEWCOMER}  allowed" in listing
    assert f"{org.client}  NOT on chain" in listing  # the org daemon registers it at start
    outsider_only_on_chain = to_checksum_address("0x" + "ab" * 20)
    add_on_chain_only(org, outsider_only_on_chain)
    assert main(["clients", "ls", "--config", str(org.config)]) == 0
    assert f"{outsider_only_on_chain}  allowed on chain, NOT in" in capsys.readouterr().out
    assert main(["clients", "remove", outsider_only_on_chain, "--config", str(org.config)]) == 0
    assert not on_chain(org.anvil, org.contract, outsider_only_on_chain)
    capsys.readouterr()

    assert main(["clients", "remove", NEWCOMER, "--config", str(org.config)]) == 0
    assert not on_chain(org.anvil, org.contract, NEWCOMER)
    assert in_config(org.config) == [org.client]
    assert "no longer allows" in capsys.readouterr().out


def test_a_key_that_is_not_the_org_changes_nothing(org: Org, tmp_path, capsys) -> None:
    other = tmp_path / "other.toml"
    text = org.config.read_text().replace('keystore = "keystore.json"', 'keystore = ""')
    text = text.replace('contract = ""', f'contract = "{org.contract}"')
    other.write_text(text.replace('data/test.npz"', f'{org.config.parent}/data/test.npz"'))
    before = other.read_text()
    outsider = to_checksum_address("0x8626f6940e2eb28930efb4cef49b2d1f2c9c1199")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("FEDCHAIN_PRIVATE_KEY", "0x" + "11" * 32)
        assert main(["clients", "add", outsider, "--config", str(other)]) == 2
    assert "is not the contract's org" in capsys.readouterr().err
    assert other.read_text() == before
    assert not on_chain(org.anvil, org.contract, outsider)


def test_a_bad_address_or_a_client_config_is_a_config_error(org: Org, capsys) -> None:
    assert main(["clients", "add", "0x123", "--config", str(org.config)]) == 2
    assert "'0x123' is not a 0x-prefixed 20-byte address" in capsys.readouterr().err
    client_config = org.config.parent.parent / "client-0" / "client.toml"
    assert main(["clients", "add", NEWCOMER, "--config", str(client_config)]) == 2
    assert "unknown section [data] for a org config" in capsys.readouterr().err


def test_no_contract_yet_says_how_to_get_one(tmp_path, capsys) -> None:
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("FEDCHAIN_KEYSTORE_PASSWORD", PASSWORD)
        assert main(["init", str(tmp_path / "f"), "--clients", "1"]) == 0
        config = tmp_path / "f" / "org" / "org.toml"
        assert main(["clients", "add", NEWCOMER, "--config", str(config)]) == 2
    assert "no contract yet" in capsys.readouterr().err
