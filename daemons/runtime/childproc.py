"""Helpers shared by every child process fedchain spawns (anvil, IPFS nodes, daemons)."""

from __future__ import annotations

import ctypes
import signal
import subprocess
from collections.abc import Callable

_PR_SET_PDEATHSIG = 1


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
