"""Daemons forked from the testnet's pre-imported forkserver: own session, log, env, exit code."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from daemons.testnet.forkserver import start_forkserver, stop_forkserver
from daemons.testnet.procs import Child
from daemons.testnet.supervisor import daemon_argv


@pytest.fixture(scope="module")
def forks():  # type: ignore[no-untyped-def]
    ctx = start_forkserver()
    assert ctx is not None
    yield ctx
    stop_forkserver()


def _child(tmp_path: Path, forks: object, argv: list[str], env: dict[str, str]) -> Child:
    from daemons.testnet.forkserver import fork_daemon

    def launch(c: Child):  # type: ignore[no-untyped-def]
        return fork_daemon(forks, c.name, c.argv, c.env, c.log_path, c.cwd)

    return Child("t", argv, env, tmp_path / "t.log", tmp_path, launcher=launch)


def test_a_forked_command_logs_and_exits_with_its_code(tmp_path: Path, forks: object) -> None:
    child = _child(tmp_path, forks, [sys.executable, "-m", "daemons.cli", "--version"], {})
    child.start()
    assert child.proc is not None
    assert child.proc.wait(timeout=120) == 0
    text = child.log_path.read_text()
    assert "starting t" in text and "fedchain " in text  # the header, then argparse's output


def _bad_config_client(tmp_path: Path, forks: object) -> Child:
    """A forked client daemon, started, whose config has an unknown section (exit 2)."""
    cfg = tmp_path / "client.toml"
    cfg.write_text("[data]\npath = 'nowhere.npz'\n[bogus]\n")
    child = _child(tmp_path, forks, daemon_argv("client", cfg), dict(os.environ))
    child.start()
    assert child.proc is not None
    return child


def test_a_forked_daemon_with_a_bad_config_exits_2(tmp_path: Path, forks: object) -> None:
    child = _bad_config_client(tmp_path, forks)
    assert child.proc is not None
    assert child.proc.wait(timeout=120) == 2
    assert "unknown section [bogus]" in child.log_path.read_text()


def test_sigterm_to_the_forkservers_group_leaves_it_serving(tmp_path: Path, forks: object) -> None:
    # `testnet up` stops the supervisor by SIGTERM to its process group, the forkserver's too:
    # the forkserver ignores it, so it is still there to report its forks' exit codes
    import signal
    from multiprocessing import forkserver

    server_pid = forkserver._forkserver._forkserver_pid  # type: ignore[attr-defined]
    assert server_pid is not None
    os.kill(server_pid, signal.SIGTERM)
    child = _child(tmp_path, forks, [sys.executable, "-m", "daemons.cli", "--version"], {})
    child.start()
    assert child.proc is not None
    assert child.proc.wait(timeout=120) == 0  # 255 if the forkserver had died


def test_a_sigterm_sent_while_the_fork_starts_is_not_lost(tmp_path: Path, forks: object) -> None:
    # the supervisor may stop the net while it is still forking a client; the fork inherits the
    # forkserver's ignored SIGTERM, and before `setsid` it leads no group: the signal must still
    # end it (-15), not leave it running on as a daemon (here: exit 2 on its bad config)
    import signal

    from daemons.testnet.procs import signal_group

    child = _bad_config_client(tmp_path, forks)
    assert child.proc is not None
    signal_group(child.proc, signal.SIGTERM)
    assert child.proc.wait(timeout=120) == -signal.SIGTERM
    assert "unknown section" not in child.log_path.read_text()


def test_the_preload_runs_without_collections_and_freezes_what_it_imported() -> None:
    # Python's recipe for a parent that forks without exec (gc.freeze): no fork's collection
    # walks the preloaded objects; and the import skips ~500 collections (~0.25 CPU-s)
    code = (
        "import gc; import daemons.testnet.preload; "
        "print(gc.isenabled(), gc.get_freeze_count(), [s['collections'] for s in gc.get_stats()])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    enabled, frozen, collections = out.stdout.split(" ", 2)
    assert enabled == "True"
    assert int(frozen) > 100_000
    gen0, _gen1, gen2 = (int(n) for n in collections.strip(" []\n").split(","))
    assert gen2 == 0 and gen0 < 50, collections
