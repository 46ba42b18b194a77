"""Start-up validation (issue #10 §4): bad names, options or data files exit 2 at start,
naming the file and key, with no traceback."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from daemons.errors import ConfigError
from daemons.runtime.config import load_config
from daemons.runtime.startup import check_config

REPO = Path(__file__).resolve().parents[2]
ADDR = "0x" + "11" * 20
KEY = "0x" + "ab" * 32
pytestmark = pytest.mark.timeout(120)


def org_toml(tmp_path: Path, federation: str = "", eval_data: str = "org.npz") -> Path:
    path = tmp_path / "org.toml"
    path.write_text(
        f'[chain]\nrpc_url = "http://127.0.0.1:9"\n[service]\nstate_dir = "state"\n'
        f'[federation]\nclients = ["{ADDR}"]\neval_data = "{eval_data}"\n{federation}\n'
    )
    return path


@pytest.mark.parametrize(
    ("federation", "needles"),
    [
        ('model = "resnet"', ["federation.model", "'resnet'", "logreg"]),
        ('strategy = "fedsgd"', ["federation.strategy", "'fedsgd'", "fedavg"]),
        (
            'strategy = "trimmed_mean"\nstrategy_options = {beta = 0.7}',
            ["federation.strategy_options", "beta"],
        ),
        ("strategy_options = {foo = 1}", ["federation.strategy_options", "foo"]),
        ('strategy_options = {clip_norm = "a"}', ["federation.strategy_options", "clip_norm"]),
        # only an aggregation trips over a non-integer f: the dry run finds it at start
        ('strategy = "krum"\nstrategy_options = {f = 1.5}', ["federation.strategy_options", "f"]),
    ],
)
def test_bad_names_and_options_are_config_errors(
    tmp_path: Path, federation: str, needles: list[str]
) -> None:
    path = org_toml(tmp_path, federation)
    with pytest.raises(ConfigError) as info:
        check_config(load_config(path, "org"))  # what `run_daemon` does first
    message = str(info.value)
    assert str(path) in message
    for needle in needles:
        assert needle in message


def test_good_options_load(tmp_path: Path) -> None:
    path = org_toml(tmp_path, 'strategy = "krum"\nstrategy_options = {f = 2}')
    cfg = load_config(path, "org")
    check_config(cfg)
    assert cfg.federation.strategy_options == {"f": 2}  # type: ignore[union-attr]


@pytest.mark.parametrize(("task", "model"), [("breast_cancer", "mlp"), ("diabetes", "linear")])
def test_every_task_model_passes_the_start_check(tmp_path: Path, task: str, model: str) -> None:
    # the task registry knows a task's models; models.networks alone knows only Fashion-MNIST's
    cfg = load_config(org_toml(tmp_path, f'task = "{task}"\nmodel = "{model}"'), "org")
    check_config(cfg)


def test_an_unimportable_plugin_task_is_a_config_error(tmp_path: Path) -> None:
    cfg = load_config(org_toml(tmp_path, 'task = "nosuch.module:Task"'), "org")
    with pytest.raises(ConfigError, match=r"federation\.task"):
        check_config(cfg)


def run_daemon(role: str, config: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "FEDCHAIN_PRIVATE_KEY": KEY}
    return subprocess.run(
        [sys.executable, "-m", "daemons.cli", role, "run", "--config", str(config)],
        capture_output=True,
        text=True,
        cwd=REPO,
        env=env,
        timeout=100,
    )


def test_org_with_a_missing_eval_file_exits_2_naming_it(tmp_path: Path) -> None:
    proc = run_daemon("org", org_toml(tmp_path, eval_data="nowhere/org-test.npz"))
    assert proc.returncode == 2, proc.stderr
    assert "federation.eval_data" in proc.stderr and "nowhere/org-test.npz" in proc.stderr
    assert "does not exist" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_org_with_bad_strategy_options_exits_2_at_start(tmp_path: Path) -> None:
    # before: found at the first round close, then the org crash-looped under systemd
    np.savez(tmp_path / "org.npz", x=np.zeros((2, 28, 28, 1), np.float32), y=np.zeros(2, np.int32))
    proc = run_daemon("org", org_toml(tmp_path, 'strategy = "krum"\nstrategy_options = {f = 1.5}'))
    assert proc.returncode == 2, proc.stderr
    assert "federation.strategy_options" in proc.stderr and "Traceback" not in proc.stderr


@pytest.mark.parametrize("content", [b"not an npz at all", None])
def test_client_with_an_unreadable_data_file_exits_2(tmp_path: Path, content: bytes | None) -> None:
    data = tmp_path / "client.npz"
    if content is None:  # an .npz without the arrays it needs
        np.savez(data, a=np.zeros(3))
    else:
        data.write_bytes(content)
    config = tmp_path / "client.toml"
    config.write_text(
        f'[chain]\nrpc_url = "http://127.0.0.1:9"\ncontract = "{ADDR}"\n'
        f'[service]\nstate_dir = "state"\n[data]\npath = "client.npz"\n'
    )
    proc = run_daemon("client", config)
    assert proc.returncode == 2, proc.stderr
    assert "data.path" in proc.stderr and str(data) in proc.stderr
    assert "Traceback" not in proc.stderr


@pytest.mark.parametrize(
    ("configured", "registered", "warns"),
    [((), set(), True), ((), None, True), ((ADDR,), set(), False), ((), {ADDR}, False)],
)
def test_no_clients_warning(
    configured: tuple[str, ...], registered: set[str] | None, warns: bool
) -> None:
    from daemons.runtime.startup import no_clients_warning

    message = no_clients_warning(configured, registered)
    assert (message is not None) is warns
    if message:
        assert "[federation].clients" in message


async def test_registered_clients_replays_the_contract_logs(w3, anvil) -> None:  # type: ignore[no-untyped-def]
    from contracts.binding import FederatedRounds
    from daemons.runtime.startup import registered_clients
    from tests.fixtures.anvil import dev_accounts

    org, a, b = dev_accounts(anvil)[:3]
    contract = await FederatedRounds.deploy(w3, org)
    assert await registered_clients(w3, contract.address) == set()
    await contract.add_clients(org, [a.address, b.address])
    await contract.remove_client(org, a.address)
    assert await registered_clients(w3, contract.address) == {b.address}


async def test_registration_waits_and_says_so(caplog: pytest.LogCaptureFixture) -> None:
    import asyncio
    import logging

    from daemons.runtime.startup import Registration

    answers = iter([False, False, True])

    async def is_client(address: str) -> bool:
        return next(answers)

    gate = Registration(is_client, ADDR)
    with caplog.at_level(logging.INFO, logger="fedchain"):
        await asyncio.wait_for(gate.wait("0xC0", interval_s=0.01, remind_s=3600), 10)
    assert gate.registered
    said = [r.getMessage() for r in caplog.records]
    assert sum("not a registered client" in m for m in said) == 1  # once, not per poll
    assert said[-1] == "registered as a client"
