"""The supervisor's restart policy: like systemd Restart=on-failure with a limit."""

import os
import sys
import time
from pathlib import Path

import pytest

from daemons.testnet.procs import Child, stop_children
from daemons.testnet.spec import NetSpec, RunDir, read_net_file
from daemons.testnet.supervisor import MAX_RESTARTS, Supervisor, daemon_env


def supervisor_with(tmp_path: Path, code: str) -> Supervisor:
    sup = Supervisor(NetSpec(run_dir=tmp_path, clients=1))
    sup.run.create()
    argv = [sys.executable, "-c", code]
    sup.children = [Child("client-0", argv, dict(os.environ), sup.run.logs / "client-0.log")]
    sup.children[0].start()
    return sup


def check_until_verdict(sup: Supervisor, timeout_s: float = 30.0) -> str | None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        verdict = sup.check()
        if verdict is not None:
            return verdict
        if all(c.poll() == 0 for c in sup.children):
            return None
        time.sleep(0.05)
    raise AssertionError("no verdict")


def test_a_crashing_daemon_is_restarted_then_given_up_on(tmp_path: Path) -> None:
    sup = supervisor_with(tmp_path, "import sys; print('boom'); sys.exit(1)")
    verdict = check_until_verdict(sup)
    assert verdict is not None and "client-0 exited with code 1" in verdict
    assert sup.children[0].restarts == MAX_RESTARTS
    assert sup.children[0].exit_codes == [1] * (MAX_RESTARTS + 1)
    assert "client-0.log" in verdict and "boom" in verdict
    assert read_net_file(RunDir(tmp_path))["restarts"] == {"client-0": MAX_RESTARTS}


def test_crashes_long_apart_are_forgiven(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # a long-running net: a daemon crashing now and then is restarted each time; only
    # MAX_RESTARTS crashes within RESTART_WINDOW_S stop the net (systemd's start limit)
    import daemons.testnet.supervisor as supervisor

    monkeypatch.setattr(supervisor, "RESTART_WINDOW_S", 0.5)
    sup = supervisor_with(tmp_path, "import sys, time; time.sleep(0.25); sys.exit(1)")
    deadline = time.monotonic() + 20
    while sup.children[0].restarts < MAX_RESTARTS + 3:  # more crashes than the budget
        assert sup.check() is None, "gave up on crashes spread over time"
        assert time.monotonic() < deadline
        time.sleep(0.05)
    stop_children(sup.children)


@pytest.mark.parametrize("code", [2, 3])
def test_config_error_and_chain_reset_are_not_restarted(tmp_path: Path, code: int) -> None:
    sup = supervisor_with(tmp_path, f"import sys; sys.exit({code})")
    verdict = check_until_verdict(sup)
    assert verdict is not None and f"code {code}" in verdict
    assert sup.children[0].restarts == 0


def test_a_clean_exit_is_left_alone(tmp_path: Path) -> None:
    sup = supervisor_with(tmp_path, "pass")
    assert check_until_verdict(sup) is None
    assert sup.children[0].restarts == 0
    stop_children(sup.children)


def test_daemon_env_carries_the_key_and_one_xla_thread() -> None:
    env = daemon_env("0xabc", xla_threads=1)
    assert env["FEDCHAIN_PRIVATE_KEY"] == "0xabc"
    assert "intra_op_parallelism_threads=1" in env["XLA_FLAGS"]
    assert "intra_op_parallelism_threads" not in daemon_env("0xabc", 2).get("XLA_FLAGS", "")


@pytest.mark.parametrize(
    ("spec", "cpus", "pinned"),
    [
        (NetSpec(run_dir=Path("r"), clients=4), 2, True),  # the demo on this machine
        (NetSpec(run_dir=Path("r"), clients=2), 2, True),  # one per CPU
        (NetSpec(run_dir=Path("r"), clients=1), 2, False),  # keeps both CPUs
        (NetSpec(run_dir=Path("r"), clients=4), 16, False),  # the pools do not fill 16 CPUs
        (NetSpec(run_dir=Path("r"), clients=4, xla_threads=2), 2, False),  # nothing to pin to
        (NetSpec(run_dir=Path("r"), clients=4, clients_per_host=4), 2, False),  # a host
        (NetSpec(run_dir=Path("r"), clients=16), 16, True),  # 16 daemons, the most without hosts
        (NetSpec(run_dir=Path("r"), clients=4, pin_cpus=False), 2, False),  # --no-pin-cpus
        (NetSpec(run_dir=Path("r"), clients=1, pin_cpus=True), 2, True),  # --pin-cpus
    ],
)
def test_auto_pins_client_daemons_when_their_threads_fill_the_cpus(
    spec: NetSpec, cpus: int, pinned: bool
) -> None:
    from daemons.testnet.spec import pins_clients

    assert pins_clients(spec, available=range(cpus)) is pinned


@pytest.mark.parametrize("pin", [False, True])
def test_clients_are_pinned_only_with_pin_cpus(tmp_path: Path, pin: bool) -> None:
    from daemons.testnet.configgen import Endpoints
    from daemons.testnet.procs import daemon_cpus

    sup = Supervisor(NetSpec(run_dir=tmp_path, clients=3, pin_cpus=pin))
    sup.run.create()
    ep = Endpoints("http://127.0.0.1:1", "ws://127.0.0.1:1", "0x" + "11" * 20)
    apis = [f"http://127.0.0.1:{5000 + i}" for i in range(4)]
    data = tuple(tmp_path / f"c{i}.npz" for i in range(3))
    ports = {f"client-{i}": 7000 + i for i in range(3)}
    children = sup._solo_clients(ep, apis, data, ports)  # built, not started
    want = [daemon_cpus(i, 1) for i in range(3)] if pin else [None] * 3
    assert [c.cpus for c in children] == want


@pytest.mark.parametrize(
    ("flags", "pin"), [([], None), (["--pin-cpus"], True), (["--no-pin-cpus"], False)]
)
def test_pin_cpus_is_auto_unless_a_flag_says_so(flags: list[str], pin: bool | None) -> None:
    import argparse

    from daemons.testnet.cli import _add_up_options, spec_from_args

    parser = argparse.ArgumentParser()
    _add_up_options(parser)
    assert spec_from_args(parser.parse_args(flags)).pin_cpus is pin
