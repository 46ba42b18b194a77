"""Options are validated with messages naming the option; run dirs are reused only safely."""

import os
from pathlib import Path

import pytest

from daemons.errors import ConfigError
from daemons.testnet.run import prepare_run_dir
from daemons.testnet.spec import (
    NetSpec,
    RunDir,
    TestnetError,
    read_net_file,
    validate,
    write_net_file,
)


@pytest.mark.parametrize(
    ("change", "option"),
    [
        ({"clients": 0}, "--clients"),
        ({"model": "resnet"}, "--model"),
        ({"strategy": "fedsgd"}, "--strategy"),
        ({"partition": "zipf"}, "--partition"),
        ({"alpha": 0.0}, "--alpha"),
        ({"block_time_s": 0.0}, "--block-time"),
        ({"min_updates": 5}, "--min-updates"),
        ({"ipfs_api": "127.0.0.1:5001"}, "--ipfs-api"),
        ({"ewc_lambda": -1.0}, "--ewc-lambda"),
        ({"host_training": "batch"}, "--host-training"),
        ({"chain": "geth"}, "--chain"),
    ],
)
def test_bad_option_is_named_with_what_to_use(tmp_path: Path, change: dict, option: str) -> None:
    spec = NetSpec(run_dir=tmp_path, **{"clients": 4, **change})
    with pytest.raises(ConfigError, match=f"{option}=.*use "):
        validate(spec)


def test_spec_json_round_trip(tmp_path: Path) -> None:
    spec = NetSpec(run_dir=tmp_path / "r", clients=7, block_time_s=1.5, ipfs_api="http://x:1")
    assert NetSpec.from_json(spec.to_json()) == spec


def test_run_dir_of_a_previous_run_is_emptied(tmp_path: Path) -> None:
    run = RunDir(tmp_path)
    run.create()
    (tmp_path / "spec.json").write_text("{}")
    (run.logs / "org.log").write_text("old")
    write_net_file(run, {"supervisor_pid": 2**22 + 12345, "phase": "stopped"})
    prepare_run_dir(run)
    assert os.listdir(tmp_path) == []


def test_foreign_directory_is_refused(tmp_path: Path) -> None:
    (tmp_path / "thesis.tex").write_text("precious")
    with pytest.raises(TestnetError, match="not a testnet run dir"):
        prepare_run_dir(RunDir(tmp_path))
    assert (tmp_path / "thesis.tex").read_text() == "precious"


def test_missing_state_file_says_which_run_dir_to_pass(tmp_path: Path) -> None:
    with pytest.raises(TestnetError, match="--run-dir"):
        read_net_file(RunDir(tmp_path))


def test_cli_reports_a_missing_dataset_before_starting_anything(tmp_path: Path, capsys) -> None:
    from daemons.cli.main import main

    code = main(
        ["testnet", "up", "--data", str(tmp_path / "nope"), "--run-dir", str(tmp_path / "r")]
    )
    assert code == 2
    assert "--data=" in capsys.readouterr().err
    assert not (tmp_path / "r").exists()


def test_cli_down_without_a_net_says_so(tmp_path: Path, capsys) -> None:
    from daemons.cli.main import main

    assert main(["testnet", "down", "--run-dir", str(tmp_path)]) == 1
    assert "no testnet was started" in capsys.readouterr().out
