"""`fedchain init` writes a federation folder the daemons accept as it is: keys in encrypted
keystores, configs that pass start-up validation, the predicted contract address, a Kubo
swarm key, each client's data share; `fedchain init --client` one partner's folder."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import numpy as np
import pytest
from eth_account import Account
from web3 import AsyncHTTPProvider, AsyncWeb3

from contracts.binding import FederatedRounds
from daemons.cli.main import main
from daemons.privacy.swarm_key import read_swarm_key
from daemons.runtime.config import load_config
from daemons.testnet.nodes.anvil import Anvil
from models.data import load_dataset

pytestmark = pytest.mark.timeout(180)
PASSWORD = "correct horse battery staple"
FASHION = Path("/usr/share/datasets/fashion-mnist")


@pytest.fixture
def password(monkeypatch) -> str:
    monkeypatch.setenv("FEDCHAIN_KEYSTORE_PASSWORD", PASSWORD)
    return PASSWORD


def keystore_address(path: Path, password: str) -> str:
    return Account.from_key(Account.decrypt(json.loads(path.read_text()), password)).address


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture(scope="module")
def federation(tmp_path_factory) -> Path:
    """One initialised federation (2 clients, private, data split) shared by the checks."""
    root = tmp_path_factory.mktemp("fed") / "fed"
    mp = pytest.MonkeyPatch()
    mp.setenv("FEDCHAIN_KEYSTORE_PASSWORD", PASSWORD)
    try:
        argv = ["init", str(root), "--clients", "2", "--private", "--rounds", "3"]
        argv += ["--data", str(FASHION), "--samples-per-client", "300", "--test-samples", "200"]
        assert main(argv) == 0
    finally:
        mp.undo()
    return root


def test_configs_pass_the_daemons_validation(federation: Path) -> None:
    org = load_config(federation / "org" / "org.toml", "org")
    clients = [load_config(federation / f"client-{i}" / "client.toml", "client") for i in (0, 1)]
    assert org.chain.contract == ""  # the org deploys on first start
    assert org.federation is not None and org.federation.rounds == 3
    assert org.federation.max_updates == 2
    assert org.identity.keystore == str(federation / "org" / "keystore.json")
    assert {c.chain.contract for c in clients} != {""}
    assert clients[0].data is not None
    assert clients[0].data.path == str(federation / "client-0" / "data" / "train.npz")
    assert clients[0].service.state_dir == str(federation / "client-0" / "state")


def test_keystores_hold_the_listed_addresses_encrypted(federation: Path) -> None:
    listed = dict(line.split() for line in (federation / "addresses.txt").read_text().splitlines())
    assert set(listed) == {"org", "client-0", "client-1"}
    for name, address in listed.items():
        path = federation / name / "keystore.json"
        assert mode(path) == 0o600
        assert address.encode() not in path.read_bytes().lower()  # only the crypto part
        assert keystore_address(path, PASSWORD) == address  # checksummed (EIP-55)
        with pytest.raises(ValueError):
            Account.decrypt(json.loads(path.read_text()), "wrong")
    org = load_config(federation / "org" / "org.toml", "org")
    assert org.federation is not None
    assert list(org.federation.clients) == [listed["client-0"], listed["client-1"]]


def test_one_swarm_key_in_kubo_format_for_everyone(federation: Path) -> None:
    keys = [(federation / n / "ipfs" / "swarm.key") for n in ("org", "client-0", "client-1")]
    texts = {k.read_text() for k in keys}
    assert len(texts) == 1 and all(mode(k) == 0o600 for k in keys)
    text = texts.pop()
    assert read_swarm_key(keys[0]) == text  # what `fedchain ipfs` will accept
    lines = text.splitlines()
    assert lines[:2] == ["/key/swarm/psk/1.0.0/", "/base16/"]
    assert len(bytes.fromhex(lines[2])) == 32


def test_each_client_gets_its_share_and_the_org_a_test_set(federation: Path) -> None:
    shares = [load_dataset(federation / f"client-{i}" / "data" / "train.npz") for i in (0, 1)]
    test = load_dataset(federation / "org" / "data" / "test.npz")
    assert [len(s.y) for s in shares] == [300, 300] and len(test.y) == 200
    assert shares[0].x.shape[1:] == (28, 28, 1)
    assert not np.array_equal(shares[0].x, shares[1].x)


async def test_the_predicted_contract_is_where_the_org_deploys(federation: Path) -> None:
    """The clients' configs name the contract before it exists: the org's nonce-0 CREATE."""
    org_key = Account.decrypt(
        json.loads((federation / "org" / "keystore.json").read_text()), PASSWORD
    )
    org = Account.from_key(org_key)
    predicted = load_config(federation / "client-0" / "client.toml", "client").chain.contract
    with Anvil() as anvil:
        w3 = AsyncWeb3(AsyncHTTPProvider(anvil.rpc_url))
        try:
            await w3.provider.make_request("anvil_setBalance", [org.address, hex(10**20)])  # type: ignore[arg-type]
            deployed = await FederatedRounds.deploy(w3, org)
        finally:
            await w3.provider.disconnect()
    assert deployed.address == predicted


def test_a_partner_folder_refuses_a_file_that_is_not_a_swarm_key(
    tmp_path, password, capsys
) -> None:
    bad = tmp_path / "swarm.key"
    bad.write_text("not a key\n")
    argv = ["init", str(tmp_path / "p"), "--client", "bob", "--swarm-key", str(bad)]
    assert main([*argv, "--contract", "0x" + "00" * 20]) == 2
    assert "is not a swarm key" in capsys.readouterr().err


def test_one_client_folder_for_a_partner(tmp_path, password, federation: Path, capsys) -> None:
    contract = load_config(federation / "client-0" / "client.toml", "client").chain.contract
    swarm_key = federation / "org" / "ipfs" / "swarm.key"
    argv = ["init", str(tmp_path / "p"), "--client", "alice", "--contract", contract.lower()]
    argv += ["--rpc-url", "http://198.18.0.1:8545", "--swarm-key", str(swarm_key)]
    assert main(argv) == 0
    cfg = load_config(tmp_path / "p" / "alice" / "client.toml", "client")
    assert cfg.chain.contract == contract and cfg.chain.rpc_url == "http://198.18.0.1:8545"
    assert (tmp_path / "p" / "alice" / "ipfs" / "swarm.key").read_text() == swarm_key.read_text()
    address = keystore_address(tmp_path / "p" / "alice" / "keystore.json", password)
    assert f"send {address} to the org" in capsys.readouterr().out


def test_any_task_splits_its_own_data_set(tmp_path, password) -> None:
    """A built-in tabular task (scikit-learn ships its data): no --data needed."""
    argv = ["init", str(tmp_path / "f"), "--clients", "2", "--task", "breast_cancer"]
    assert main(argv) == 0
    org = load_config(tmp_path / "f" / "org" / "org.toml", "org")
    assert org.federation is not None and org.federation.task == "breast_cancer"
    sizes = [
        len(np.load(tmp_path / "f" / f"client-{i}" / "data" / "train.npz")["y"]) for i in (0, 1)
    ]
    assert min(sizes) > 0
    assert (tmp_path / "f" / "org" / "data" / "test.npz").exists()


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--client", "bob"], "--client needs --contract"),
        (["--clients", "0"], "--clients must be >= 1"),
        (["--clients", "2", "--min-updates", "3"], "--min-updates 3 > --clients 2"),
        (["--contract", "0x1234"], "--contract '0x1234' is not"),
        (["--data", "/nonexistent"], "--data /nonexistent: no such file"),
        (["--task", "nope"], "init --task nope:"),
        (["--client", "x", "--contract", "0x" + "11" * 20, "--swarm-key", "/no.key"], "not found"),
    ],
)
def test_bad_arguments_are_config_errors(tmp_path, password, capsys, argv, message) -> None:
    assert main(["init", str(tmp_path / "f"), *argv]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "f").exists()


def test_never_writes_into_a_folder_in_use(tmp_path, password, capsys) -> None:
    (tmp_path / "f").mkdir()
    (tmp_path / "f" / "org").mkdir()
    assert main(["init", str(tmp_path / "f")]) == 2
    assert "exists and is not an empty folder" in capsys.readouterr().err


def test_no_password_and_no_terminal_is_a_config_error(tmp_path, monkeypatch, capsys) -> None:
    monkeypatch.delenv("FEDCHAIN_KEYSTORE_PASSWORD", raising=False)
    monkeypatch.setattr("sys.stdin.isatty", lambda: False)
    assert main(["init", str(tmp_path / "f")]) == 2
    assert "no keystore password: set FEDCHAIN_KEYSTORE_PASSWORD" in capsys.readouterr().err
    monkeypatch.setenv("FEDCHAIN_KEYSTORE_PASSWORD", "")
    assert main(["init", str(tmp_path / "f")]) == 2
    assert "empty keystore password" in capsys.readouterr().err
