"""Start the testnet's daemons from one pre-imported Python process (docs/testnet.md).

Every daemon imports JAX, web3 and the daemon code, 2-4 CPU-seconds each; on a 2-core
machine five of them at once were most of `testnet up`'s start-up. The supervisor instead
starts multiprocessing's forkserver as its first step: it imports all of that once, while
anvil, the IPFS nodes and the deployment run, and every daemon is then a fork of it. A
fork runs exactly what `fedchain <role> run --config FILE` runs, in its own session, with
its own environment and log file, and gets SIGTERM when the forkserver (which exits with
the supervisor) goes. JAX's runtime is never started in the forkserver (checked in the
child, which otherwise execs a fresh interpreter instead), so no XLA thread is forked.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import subprocess
import sys
import traceback
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from daemons.runtime.childproc import die_with_parent

PRELOAD = ("daemons.testnet.forkserver_signals", "daemons.testnet.preload")
DISABLE_ENV = "FEDCHAIN_TESTNET_NO_FORKSERVER"  # "1": plain subprocesses (for debugging)


def start_forkserver() -> Any | None:
    """Start the forkserver now (it imports in the background); None if unavailable."""
    if os.environ.get(DISABLE_ENV) == "1":
        return None
    if "forkserver" not in multiprocessing.get_all_start_methods():
        return None
    from multiprocessing import forkserver

    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload(list(PRELOAD))
    forkserver.ensure_running()
    return ctx


def stop_forkserver() -> None:
    """Stop the forkserver (it would also exit by itself once this process is gone)."""
    from multiprocessing import forkserver

    server: Any = forkserver._forkserver
    if server._forkserver_pid is not None:
        server._stop()


class ForkedProcess:
    """A forked daemon with the part of `subprocess.Popen` that `procs.Child` uses."""

    def __init__(self, process: Any) -> None:
        self._process = process

    @property
    def pid(self) -> int:
        return int(self._process.pid)

    def poll(self) -> int | None:
        code = self._process.exitcode
        return None if code is None else int(code)

    def wait(self, timeout: float | None = None) -> int:
        self._process.join(timeout)
        code = self.poll()
        if code is None:
            raise subprocess.TimeoutExpired(str(self._process.name), timeout or 0.0)
        return code


def fork_daemon(
    ctx: Any,
    name: str,
    argv: Sequence[str],
    env: Mapping[str, str],
    log_path: Path,
    cwd: Path | None,
    cpus: Sequence[int] | None = None,
) -> ForkedProcess:
    """Start `argv` (`python -m daemons.cli ...`) as a fork of the forkserver (on `cpus`)."""
    args = (list(argv), dict(env), str(log_path), str(cwd) if cwd else "", cpus)
    process = ctx.Process(target=run_forked, args=args, name=name, daemon=False)
    process.start()
    return ForkedProcess(process)


def run_forked(
    argv: list[str], env: dict[str, str], log_path: str, cwd: str, cpus: Sequence[int] | None
) -> None:
    """In the fork: become the daemon process `argv` describes, then exit with its code."""
    # the forkserver ignores and blocks it (forkserver_signals): a SIGTERM sent since the fork
    # is pending and ends this process here, before it becomes a daemon
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGTERM})
    os.setsid()  # its own session, as `Child.start` gives a subprocess
    if cpus is not None:  # before JAX's runtime starts: it sizes its thread pool from this
        os.sched_setaffinity(0, cpus)
    log_fd = os.open(log_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    os.dup2(log_fd, 1)
    os.dup2(log_fd, 2)
    os.close(log_fd)
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.close(null)
    die_with_parent(signal.SIGTERM)()
    if cwd:
        os.chdir(cwd)
    if _must_exec(env):
        os.execve(sys.executable, [sys.executable, *argv[1:]], env)
    os.environ.clear()
    os.environ.update(env)
    from daemons.cli.main import main

    assert argv[1:3] == ["-m", "daemons.cli"], argv
    sys.argv = ["fedchain", *argv[3:]]
    code = 1
    try:
        code = main(argv[3:])
    except SystemExit as exc:  # argparse's --help / --version, or a sys.exit in the daemon
        code = exc.code if isinstance(exc.code, int) else int(exc.code is not None)
    except BaseException:
        traceback.print_exc()
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


def _must_exec(env: Mapping[str, str]) -> bool:
    """A fork cannot become this daemon: JAX's runtime already started, or JAX settings differ."""
    from jax._src import xla_bridge

    if xla_bridge._backends:
        return True
    keys = {k for k in (*env, *os.environ) if k.startswith("JAX_")}
    return any(env.get(k) != os.environ.get(k) for k in keys)
