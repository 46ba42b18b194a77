"""`fedchain testnet up --dp ...`: options checked up front, a [privacy] table the org accepts."""

import argparse
import tomllib
from pathlib import Path

import pytest

from daemons.errors import ConfigError
from daemons.runtime.config import parse_config
from daemons.testnet.cli import _add_up_options, spec_from_args
from daemons.testnet.configgen import Endpoints, org_config, render_toml
from daemons.testnet.spec import NetSpec, validate

EP = Endpoints("http://127.0.0.1:1234", "ws://127.0.0.1:1234", "0x" + "ab" * 20)
CLIENTS = ["0x" + f"{i:040x}" for i in range(1, 4)]


def test_dp_options_reach_the_org_config(tmp_path: Path) -> None:
    spec = validate(
        NetSpec(
            run_dir=tmp_path,
            clients=3,
            rounds=3,
            model="logreg",
            dp="central",
            dp_clip_norm=0.5,
            dp_noise_multiplier=2.0,
            dp_epsilon_budget=9.0,
        )
    )
    text = org_config(
        spec, EP, "http://127.0.0.1:5001", tmp_path / "s", CLIENTS, tmp_path / "t.npz"
    )
    cfg = parse_config(tomllib.loads(text), tmp_path / "org.toml", "org")
    assert cfg.privacy is not None and cfg.privacy.mode == "central"
    assert (cfg.privacy.clip_norm, cfg.privacy.noise_multiplier) == (0.5, 2.0)
    assert cfg.privacy.epsilon_budget == 9.0 and cfg.privacy.secret_env == "FEDCHAIN_DP_SECRET"
    assert cfg.training is not None and cfg.training.penalty == "none"  # ewc with lambda 0
    plain = org_config(NetSpec(run_dir=tmp_path), EP, "http://x", tmp_path, CLIENTS, tmp_path / "t")
    assert "[privacy]" not in plain


@pytest.mark.parametrize(
    ("changes", "needle"),
    [
        ({"dp": "secure"}, "--dp"),
        ({"dp": "local", "dp_noise_multiplier": 0.0}, "--dp-noise"),
        ({"dp": "local", "penalty": "ewc", "ewc_lambda": 1.0}, "--penalty"),
        ({"dp": "central", "strategy": "median"}, "--strategy"),
        # z = 1: one round spends ε = 4.73 at δ = 1e-5, so a budget of 8 covers 2 of 5
        ({"dp": "central", "rounds": 5, "dp_epsilon_budget": 8.0}, "allows 2 of 5"),
    ],
)
def test_bad_dp_options_are_refused_before_start(
    tmp_path: Path, changes: dict, needle: str
) -> None:
    with pytest.raises(ConfigError, match=needle):
        validate(NetSpec(run_dir=tmp_path, **changes))


def test_cli_flags() -> None:
    parser = argparse.ArgumentParser()
    _add_up_options(parser)
    args = parser.parse_args(["--dp", "local", "--dp-clip", "0.1", "--dp-noise", "3"])
    spec = spec_from_args(args)
    assert (spec.dp, spec.dp_clip_norm, spec.dp_noise_multiplier) == ("local", 0.1, 3.0)
    assert render_toml({"privacy": {"mode": spec.dp}}).strip() == '[privacy]\nmode = "local"'


def test_the_private_ipfs_network_is_on_unless_turned_off() -> None:
    parser = argparse.ArgumentParser()
    _add_up_options(parser)
    assert spec_from_args(parser.parse_args([])).swarm_key
    assert NetSpec(run_dir=Path("x")).swarm_key
    assert not spec_from_args(parser.parse_args(["--no-swarm-key"])).swarm_key
