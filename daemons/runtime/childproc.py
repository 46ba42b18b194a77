"""Helpers shared by every child process fedchain spawns (anvil, IPFS nodes, daemons)."""

from __future__ import annotations

import ctypes
import signal
import subprocess
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import IO, Any, Self, TypeVar

T = TypeVar("T")
_PR_SET_PDEATHSIG = 1
POLL_S = 0.05  # how often a starting child is probed


def die_with_parent(sig: int = signal.SIGKILL) -> Callable[[], None]:
    """A `preexec_fn` asking the kernel to send `sig` to the child when its parent dies.

    Crash-only supervision: a test runner or supervisor killed with -9 must not leave
    anvil, IPFS nodes or daemons behind.
    """

    def _preexec() -> None:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, sig)

    return _preexec


def terminate(proc: subprocess.Popen[bytes], timeout_s: float = 10.0) -> int:
    """SIGTERM `proc`, wait up to `timeout_s`, then SIGKILL; return its exit code."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            return proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            proc.kill()
    return proc.wait()


class ChildProcess:
    """A node run as a child process, its output appended to a log file; a context manager
    that starts on enter and always stops on exit.

    The one lifecycle of anvil-like dev chains and the bundled IPFS node: `spawn` it,
    `wait_until` it answers (bounded), `stop` it with SIGTERM then SIGKILL (bounded). A
    subclass says how to start (`start`) and what readiness is.
    """

    def __init__(self) -> None:
        self._proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None
        self._log_file: Path | None = None

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def start(self) -> Self:
        """Spawn the node and wait until it is ready (per node kind)."""
        raise NotImplementedError

    def spawn(self, command: Sequence[str], log_file: Path, **popen: Any) -> None:
        """Start `command` with stdout and stderr appended to `log_file`."""
        log_file.parent.mkdir(parents=True, exist_ok=True)
        self._log_file = log_file
        self._log = open(log_file, "ab")  # noqa: SIM115 - closed in stop()
        self._proc = subprocess.Popen(
            list(command), stdout=self._log, stderr=subprocess.STDOUT, **popen
        )

    def wait_until(self, probe: Callable[[], T | None], timeout_s: float) -> T | None:
        """The first non-None `probe()`, polled while the child runs; None once it has
        exited or `timeout_s` passed (`running` tells which)."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if not self.running:
                return None
            found = probe()
            if found is not None:
                return found
            time.sleep(POLL_S)
        return None

    def log_tail(self, lines: int = 20) -> str:
        """The last lines the node wrote (for error messages)."""
        if self._log_file is None:
            return "(no log)"
        try:
            return "\n".join(self._log_file.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def stop(self, timeout_s: float = 10.0) -> None:
        """SIGTERM (the node saves its state), SIGKILL if it lingers past `timeout_s`."""
        proc, self._proc = self._proc, None
        if proc is not None:
            terminate(proc, timeout_s)
            if proc.stdin is not None:
                proc.stdin.close()
        if self._log is not None:
            self._log.close()
            self._log = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
