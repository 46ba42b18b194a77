"""Which recipe a client compiles ahead of round 1: its last round's, else [warmup], else none."""

from pathlib import Path

from daemons.client.warmup import LAST_CONFIG_KEY, guess_recipe
from daemons.runtime.config import TrainingConfig, parse_config
from daemons.wire.round_config import RoundConfig, encode_round_config


class KV(dict):  # the StateStore's get/put
    def put(self, key: str, value: str) -> None:
        self[key] = value


def _client(extra: str = "") -> object:
    import tomllib

    head = "[chain]\ncontract = '0x" + "1" * 40 + "'\n[data]\npath = 'd.npz'\n"
    raw = tomllib.loads(head + extra)
    return parse_config(raw, Path("/tmp/client.toml"), "client")


def test_no_warmup_table_and_no_earlier_round_means_no_guess() -> None:
    assert guess_recipe(_client(), KV()) is None


def test_the_warmup_table_is_the_guess() -> None:
    cfg = _client(
        "[warmup]\nmodel = '2nn'\nbatch_size = 32\nlearning_rate = 0.1\npenalty = 'ewc'\n"
    )
    got = guess_recipe(cfg, KV())
    assert got is not None
    config, source = got
    assert source == "[warmup]" and config.model == "2nn" and config.fisher
    assert (config.training.batch_size, config.training.learning_rate) == (32, 0.1)


def test_the_last_round_config_wins_over_the_table() -> None:
    last = RoundConfig(7, "logreg", 3, TrainingConfig(batch_size=16, penalty="none"), fisher=False)
    kv = KV({LAST_CONFIG_KEY: encode_round_config(last).decode()})
    got = guess_recipe(_client("[warmup]\nmodel = '2nn'\n"), kv)
    assert got is not None
    config, source = got
    assert source == "last round config"
    assert (config.model, config.training.batch_size, config.fisher) == ("logreg", 16, False)


def test_an_unreadable_stored_config_falls_back_to_the_table() -> None:
    got = guess_recipe(_client("[warmup]\nmodel = 'cnn'\n"), KV({LAST_CONFIG_KEY: "{not json"}))
    assert got is not None and got[0].model == "cnn"
