"""Config loading: examples parse, errors name file/key/allowed values, paths resolve."""

from __future__ import annotations

from pathlib import Path

import pytest

from daemons.errors import ConfigError
from daemons.runtime.config import load_config
from daemons.runtime.keys import load_account

ROOT = Path(__file__).resolve().parents[2]
ADDR = "0x" + "11" * 20


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "d.toml"
    path.write_text(text)
    return path


ORG = f"""
[chain]
rpc_url = "http://127.0.0.1:9"
[federation]
clients = ["{ADDR}"]
rounds = 3
eval_data = "data/org.npz"
[training]
epochs = 2
learning_rate = 1
"""


def test_examples_load() -> None:
    org = load_config(ROOT / "config/org.example.toml", "org")
    client = load_config(ROOT / "config/client.example.toml", "client")
    assert org.federation is not None and org.training is not None
    assert org.federation.rounds > 0
    assert client.data is not None and client.federation is None


def test_org_values_types_and_paths(tmp_path: Path) -> None:
    cfg = load_config(write(tmp_path, ORG), "org")
    assert cfg.federation is not None and cfg.training is not None
    assert cfg.federation.clients == (ADDR,)
    assert cfg.training.learning_rate == 1.0 and isinstance(cfg.training.learning_rate, float)
    assert cfg.federation.eval_data == str(tmp_path / "data/org.npz")
    assert cfg.service.state_dir == str(tmp_path / "state")
    assert cfg.chain.confirmations == 0
    assert cfg.ipfs.chunk_bytes == 1048576  # one raw block for a blob of up to 1 MiB


@pytest.mark.parametrize(
    ("text", "needles"),
    [
        (ORG + "\n[service]\nlog_format = 'xml'\n", ["service.log_format", "human, json"]),
        (ORG.replace("rounds = 3", "roundz = 3"), ["federation.roundz", "allowed keys"]),
        (ORG.replace("rounds = 3", "rounds = 0"), ["federation.rounds", "> 0"]),
        (ORG.replace("rounds = 3", "rounds = 'x'"), ["federation.rounds", "int"]),
        (ORG.replace("rounds = 3", "min_updates = 0"), ["federation.min_updates", "> 0"]),
        (ORG.replace("rounds = 3", "strategy = 'fedcurv'"), ["training.penalty", "u, v"]),
        (ORG.replace("rounds = 3", "min_updates = 4"), ["federation.max_updates", ">="]),
        (ORG.replace("rounds = 3", "round_duration_s = 9999999"), ["round_duration_s", "30 days"]),
        (ORG + "\n[data]\npath='x'\n", ["[data]", "allowed sections"]),
        (ORG.replace("epochs = 2", "penalty = 'l2'"), ["training.penalty", "ewc"]),
        (ORG.replace(ADDR, "0x12"), ["federation.clients", "20-byte"]),
        (ORG + "\n[ipfs]\nchunk_bytes = 2097152\n", ["ipfs.chunk_bytes", "1 to 1048576"]),
        (ORG + "\n[ipfs]\nchunk_bytes = 0\n", ["ipfs.chunk_bytes", "> 0"]),
        ("[chain]\n", ["missing section [federation]"]),
        ("[chain\n", ["not valid TOML"]),
    ],
)
def test_errors_name_file_key_allowed(tmp_path: Path, text: str, needles: list[str]) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_config(path, "org")
    message = str(info.value)
    assert str(path) in message
    for needle in needles:
        assert needle in message


def test_client_needs_contract(tmp_path: Path) -> None:
    path = write(tmp_path, "[data]\npath = 'c.npz'\n")
    with pytest.raises(ConfigError, match=r"chain\.contract is required"):
        load_config(path, "client")
    path.write_text(f"[chain]\ncontract = '{ADDR}'\n[data]\npath = 'c.npz'\n")
    assert load_config(path, "client").chain.contract == ADDR


def test_missing_file_and_role(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "nope.toml", "org")
    with pytest.raises(ConfigError, match="allowed: org, client"):
        load_config(write(tmp_path, ORG), "auditor")


def test_keys_from_env_and_keystore(tmp_path: Path) -> None:
    from eth_account import Account

    cfg = load_config(write(tmp_path, ORG), "org")
    key = "0x" + "ab" * 32
    acct = load_account(cfg.identity, {"FEDCHAIN_PRIVATE_KEY": key})
    assert acct.address == Account.from_key(key).address
    with pytest.raises(ConfigError, match="FEDCHAIN_PRIVATE_KEY"):
        load_account(cfg.identity, {})
    with pytest.raises(ConfigError, match="not a valid hex"):
        load_account(cfg.identity, {"FEDCHAIN_PRIVATE_KEY": "zz"})
    keystore = tmp_path / "key.json"
    keystore.write_text(__import__("json").dumps(Account.encrypt(key, "pw", iterations=2)))
    path = write(tmp_path, ORG + f"\n[identity]\nkeystore = '{keystore.name}'\n")
    cfg = load_config(path, "org")
    env = {"FEDCHAIN_KEYSTORE_PASSWORD": "pw"}
    assert load_account(cfg.identity, env).address == acct.address
    with pytest.raises(ConfigError, match="cannot decrypt"):
        load_account(cfg.identity, {"FEDCHAIN_KEYSTORE_PASSWORD": "bad"})
    with pytest.raises(ConfigError, match="FEDCHAIN_KEYSTORE_PASSWORD"):
        load_account(cfg.identity, {})


BAD_CHECKSUM = "0x70997970C51812dc3A010C7d01b50e20d4dc79C8"  # was in org.example.toml


@pytest.mark.parametrize("key", ["clients", "contract"])
def test_a_mixed_case_address_with_a_bad_checksum_is_refused(tmp_path: Path, key: str) -> None:
    text = ORG.replace(ADDR, BAD_CHECKSUM) if key == "clients" else ORG
    if key == "contract":
        text = text.replace("[chain]\n", f'[chain]\ncontract = "{BAD_CHECKSUM}"\n')
    with pytest.raises(ConfigError, match="EIP-55") as info:
        load_config(write(tmp_path, text), "org")
    assert BAD_CHECKSUM in str(info.value)
    for good in (BAD_CHECKSUM.lower(), "0x" + BAD_CHECKSUM[2:].upper()):  # no checksum: fine
        load_config(write(tmp_path, ORG.replace(ADDR, good)), "org")


def test_example_clients_are_the_anvil_accounts_they_mean() -> None:
    from eth_account import Account

    Account.enable_unaudited_hdwallet_features()
    mnemonic = "test test test test test test test test test test test junk"
    anvil = [
        Account.from_mnemonic(mnemonic, account_path=f"m/44'/60'/0'/0/{i}").address
        for i in (1, 2, 3)
    ]
    org = load_config(ROOT / "config/org.example.toml", "org")
    assert org.federation is not None and list(org.federation.clients) == anvil


@pytest.mark.parametrize(
    ("line", "needle"),
    [
        ("max_client_share = 1.5", "federation.max_client_share"),
        ("max_client_share = 0", "federation.max_client_share"),
        ("max_update_norm = -1", "federation.max_update_norm"),
        ("max_samples_per_client = -5", "federation.max_samples_per_client"),
    ],
)
def test_influence_bounds_are_checked(tmp_path: Path, line: str, needle: str) -> None:
    with pytest.raises(ConfigError, match=needle):
        load_config(write(tmp_path, ORG.replace("rounds = 3", line)), "org")


def test_task_and_model_names(tmp_path: Path) -> None:
    fed = load_config(write(tmp_path, ORG), "org").federation
    assert fed is not None and (fed.task, fed.model) == ("fashion_mnist", "2nn")  # today's default
    text = ORG.replace("rounds = 3", 'rounds = 3\ntask = "breast_cancer"')
    fed = load_config(write(tmp_path, text), "org").federation
    assert fed is not None and fed.model == "logreg"
    strategy = "tests.models.plugin_pkg.toy:MeanStrategy"  # imported and dry-run at load
    plugin = ORG.replace(
        "rounds = 3", f'rounds = 3\ntask = "my_pkg.task:task"\nstrategy = "{strategy}"'
    )
    fed = load_config(write(tmp_path, plugin), "org").federation
    assert fed is not None and (fed.task, fed.model, fed.strategy) == (
        "my_pkg.task:task",
        "",
        strategy,
    )


@pytest.mark.parametrize(
    ("line", "needles"),
    [
        ('task = "mnist"', ["federation.task", "fashion_mnist, breast_cancer, diabetes"]),
        ('task = "diabetes"\nmodel = "cnn"', ["federation.model", "linear, mlp"]),
        ('task = "bad-pkg:task"', ["federation.task", "package.module:attribute"]),
        ('strategy = "fedsgd"', ["federation.strategy", "fedavg", "package.module:attribute"]),
    ],
)
def test_bad_task_model_strategy_names(tmp_path: Path, line: str, needles: list[str]) -> None:
    with pytest.raises(ConfigError) as err:
        load_config(write(tmp_path, ORG.replace("rounds = 3", f"rounds = 3\n{line}")), "org")
    assert all(n in str(err.value) for n in needles), str(err.value)


def test_momentum_is_a_training_field(tmp_path: Path) -> None:
    cfg = load_config(write(tmp_path, ORG + "momentum = 0.9\n"), "org")
    assert cfg.training is not None and cfg.training.momentum == 0.9
    with pytest.raises(ConfigError, match="0 <= momentum < 1"):
        load_config(write(tmp_path, ORG + "momentum = 1.0\n"), "org")


DP_ORG = ORG.replace("epochs = 2", 'epochs = 2\npenalty = "none"')


def test_privacy_defaults_off_and_parses(tmp_path: Path) -> None:
    cfg = load_config(write(tmp_path, ORG), "org")
    assert cfg.privacy is not None and cfg.privacy.mode == "off"
    text = DP_ORG + '\n[privacy]\nmode = "central"\nclip_norm = 2\nepsilon_budget = 8\n'
    text += 'secret_file = "dp.secret"\n'
    dp = load_config(write(tmp_path, text), "org").privacy
    assert dp is not None and dp.mode == "central" and dp.clip_norm == 2.0
    assert dp.epsilon_budget == 8.0 and dp.secret_file == str(tmp_path / "dp.secret")


@pytest.mark.parametrize(
    ("text", "needles"),
    [
        (DP_ORG + "[privacy]\nmode = 'secure'\n", ["privacy.mode", "off, central, local"]),
        (DP_ORG + "[privacy]\nnoise = 1.0\n", ["privacy.noise", "noise_multiplier"]),
        (DP_ORG + "[privacy]\nclip_norm = 0\n", ["privacy.clip_norm", "> 0"]),
        (DP_ORG + "[privacy]\ndelta = 1.5\n", ["privacy.delta", "0 < delta < 1"]),
        (DP_ORG + "[privacy]\nepsilon_budget = -1\n", ["privacy.epsilon_budget", ">= 0"]),
        (ORG + "[privacy]\nmode = 'local'\n", ["privacy.mode", "Fisher", "penalty 'ewc'"]),
        (
            DP_ORG.replace("rounds = 3", 'rounds = 3\nstrategy = "median"')
            + "[privacy]\nmode = 'central'\n",
            ["DP-FedAvg", "fedavg", "'median'"],
        ),
    ],
)
def test_privacy_errors_name_the_key(tmp_path: Path, text: str, needles: list[str]) -> None:
    with pytest.raises(ConfigError) as err:
        load_config(write(tmp_path, text), "org")
    for needle in needles:
        assert needle in str(err.value), str(err.value)


def test_privacy_is_an_org_section(tmp_path: Path) -> None:
    text = f'[chain]\ncontract = "{ADDR}"\n[data]\npath = "x.npz"\n[privacy]\nmode = "local"\n'
    with pytest.raises(ConfigError, match=r"unknown section \[privacy\]"):
        load_config(write(tmp_path, text), "client")
