"""Generated configs parse as TOML and carry the schema of docs/INTERFACES.md."""

import tomllib
from pathlib import Path

import pytest

from daemons.errors import ConfigError
from daemons.testnet.configgen import Endpoints, client_config, org_config, toml_value
from daemons.testnet.spec import NetSpec, validate

EP = Endpoints("http://127.0.0.1:1234", "ws://127.0.0.1:1234", "0x" + "ab" * 20)
CLIENTS = ["0x" + f"{i:040x}" for i in range(1, 4)]


def test_org_config_round_trips_and_closes_at_all_clients(tmp_path: Path) -> None:
    spec = NetSpec(run_dir=tmp_path, clients=3, rounds=7, model="logreg", ewc_lambda=5.0)
    text = org_config(spec, EP, "http://127.0.0.1:5001", tmp_path / "s", CLIENTS, Path("t.npz"))
    cfg = tomllib.loads(text)
    assert set(cfg) == {"chain", "identity", "ipfs", "service", "federation", "training"}
    assert cfg["chain"]["contract"] == EP.contract
    assert cfg["federation"]["clients"] == CLIENTS
    assert cfg["federation"]["max_updates"] == 3
    assert cfg["federation"]["rounds"] == 7
    assert cfg["federation"]["strategy_options"] == {}
    assert cfg["training"]["penalty"] == "ewc"
    assert cfg["training"]["ewc_lambda"] == 5.0
    assert "private_key" not in text.replace("private_key_env", "")


def test_zero_lambda_turns_the_ewc_penalty_off(tmp_path: Path) -> None:
    spec = NetSpec(run_dir=tmp_path, clients=3, ewc_lambda=0.0)
    cfg = tomllib.loads(org_config(spec, EP, "http://x", tmp_path, CLIENTS, Path("t.npz")))
    assert cfg["training"]["penalty"] == "none"


def test_client_config_has_data_and_no_org_tables(tmp_path: Path) -> None:
    text = client_config(EP, "http://127.0.0.1:5002", tmp_path / "c0", Path("d/c0.npz"))
    cfg = tomllib.loads(text)
    assert set(cfg) == {"chain", "identity", "ipfs", "service", "data"}
    assert cfg["data"]["path"] == "d/c0.npz"
    assert cfg["ipfs"]["api_url"] == "http://127.0.0.1:5002"


@pytest.mark.parametrize(
    "value", ['quote " and \\ back', "tab\tand\nnewline", "ünïcode", 3, 0.1, True, ["a", "b"]]
)
def test_toml_values_round_trip(value: object) -> None:
    assert tomllib.loads(f"v = {toml_value(value)}")["v"] == value


def test_toml_refuses_nan() -> None:
    with pytest.raises(ValueError, match="nan"):
        toml_value(float("nan"))


@pytest.mark.parametrize("ewc_lambda", [0.0, 2.5])
def test_generated_configs_pass_the_daemon_config_loader(tmp_path: Path, ewc_lambda: float) -> None:
    from daemons.runtime.config import load_config

    spec = NetSpec(run_dir=tmp_path, clients=3, ewc_lambda=ewc_lambda)
    clients = ["0x70997970C51812dc3A010C7d01b50e0d17dc79C8"] * 3
    org = tmp_path / "org.toml"
    org.write_text(org_config(spec, EP, "http://127.0.0.1:5001", tmp_path, clients, tmp_path))
    cfg = load_config(org, "org")
    assert cfg.training is not None and cfg.federation is not None
    assert cfg.training.penalty == ("ewc" if ewc_lambda else "none")
    assert cfg.federation.max_updates == 3
    client = tmp_path / "client.toml"
    client.write_text(client_config(EP, "http://127.0.0.1:5002", tmp_path, tmp_path / "c.npz"))
    assert load_config(client, "client").data is not None


def test_encrypt_updates_configures_org_and_clients(tmp_path: Path) -> None:
    from daemons.runtime.config import load_config

    spec = NetSpec(run_dir=tmp_path, clients=3, encrypt_updates=True)
    clients = ["0x70997970C51812dc3A010C7d01b50e0d17dc79C8"] * 3
    org = tmp_path / "org.toml"
    org.write_text(org_config(spec, EP, "http://127.0.0.1:5001", tmp_path, clients, tmp_path))
    enc = load_config(org, "org").encryption
    assert enc.updates == "encrypted" and enc.key_env == "FEDCHAIN_ENCRYPTION_KEY"
    assert "key" not in tomllib.loads(org.read_text())["encryption"]  # no secret in a config
    client = tmp_path / "client.toml"
    client.write_text(client_config(EP, "http://x", tmp_path, tmp_path / "c.npz", encrypted=True))
    assert load_config(client, "client").encryption.updates == "encrypted"
    plain = NetSpec(run_dir=tmp_path, clients=3)
    assert "encryption" not in org_config(plain, EP, "http://x", tmp_path, clients, tmp_path)


def test_models_members_configures_cards_and_keys_from_env(tmp_path: Path) -> None:
    from daemons.runtime.config import load_config

    spec = NetSpec(run_dir=tmp_path, clients=3, models="members")
    clients = ["0x70997970C51812dc3A010C7d01b50e0d17dc79C8"] * 3
    org = tmp_path / "org.toml"
    cards = tmp_path / "cards"
    org.write_text(org_config(spec, EP, "http://x", tmp_path, clients, tmp_path, 0, cards))
    enc = load_config(org, "org").encryption
    assert (enc.models, enc.member_cards, enc.updates) == ("members", str(cards), "public")
    assert enc.key_env == "FEDCHAIN_ENCRYPTION_KEY"  # the org's key: env only, as for updates
    client = tmp_path / "client.toml"
    text = client_config(EP, "http://x", tmp_path, tmp_path / "c.npz", models="members")
    client.write_text(text)
    cenc = load_config(client, "client").encryption
    assert (cenc.models, cenc.key_env) == ("members", "FEDCHAIN_ENCRYPTION_KEY")
    assert "key" not in tomllib.loads(text)["encryption"]  # no secret in a config
    with pytest.raises(ConfigError, match="--models"):
        validate(NetSpec(run_dir=tmp_path, clients=3, models="secret"))


def test_clients_get_the_orgs_recipe_as_warmup_and_a_kept_compile_cache(tmp_path: Path) -> None:
    from daemons.runtime.config import load_config
    from daemons.testnet.configgen import warmup_table

    spec = NetSpec(run_dir=tmp_path, clients=2, model="2nn", ewc_lambda=5.0, batch_size=32)
    client = tmp_path / "client.toml"
    cache = tmp_path / "cache" / "compile" / "client-0"
    text = client_config(
        EP,
        "http://x:1",
        tmp_path,
        tmp_path / "c.npz",
        False,
        "fashion_mnist",
        0,
        compile_cache_dir=cache,
        warmup=warmup_table(spec),
    )
    client.write_text(text)
    cfg = load_config(client, "client")
    assert cfg.service.compile_cache_dir == str(cache)
    assert cfg.warmup is not None
    assert (cfg.warmup.model, cfg.warmup.batch_size, cfg.warmup.penalty) == ("2nn", 32, "ewc")
    assert cfg.warmup.fisher is True
    plain = NetSpec(run_dir=tmp_path, clients=2, model="logreg", ewc_lambda=0.0)
    table = warmup_table(plain)
    assert table is not None and table["fisher"] is False and table["penalty"] == "none"
