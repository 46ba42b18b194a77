"""Child processes with one log file each: spawn, watch, restart on failure, stop cleanly."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from daemons.runtime.childproc import die_with_parent


class Proc(Protocol):
    """What `Child` needs of a running process: a `subprocess.Popen` or a forked daemon."""

    @property
    def pid(self) -> int: ...

    def poll(self) -> int | None: ...

    def wait(self, timeout: float | None = None) -> int: ...


# starts `child` some other way than Popen (testnet/forkserver.py); returns its process
Launcher = Callable[["Child"], Proc]


def daemon_cpus(
    slot: int, threads: int, available: Collection[int] | None = None
) -> tuple[int, ...] | None:
    """The CPUs daemon number `slot` runs on: `threads` of them, round-robin; None: all.

    jaxlib sizes a process's XLA CPU thread pool from its CPU affinity (XLA's thread flags do
    not bound it), so this is what gives a daemon `threads` XLA threads (docs/testnet.md).
    """
    cpus = sorted(os.sched_getaffinity(0) if available is None else available)
    if threads >= len(cpus):
        return None
    start = slot * threads
    return tuple(cpus[(start + k) % len(cpus)] for k in range(threads))


@dataclass
class Child:
    """One supervised daemon: how to start it, where it logs, and its current process."""

    name: str
    argv: Sequence[str]
    env: Mapping[str, str]
    log_path: Path
    cwd: Path | None = None
    die_with_parent: bool = True
    cpus: tuple[int, ...] | None = None  # the CPUs it may run on (sizes XLA's pool); None: all
    proc: Proc | None = None
    launcher: Launcher | None = None
    restarts: int = 0
    restart_times: list[float] = field(default_factory=list)  # time.monotonic() of each
    exit_codes: list[int] = field(default_factory=list)
    stop_sent: bool = False  # SIGTERM already sent: `stop_children` only waits for it

    @property
    def pid(self) -> int | None:
        return None if self.proc is None else self.proc.pid

    def start(self) -> None:
        """Spawn in its own session (a terminal Ctrl-C reaches only the supervisor)."""
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as log:
            stamp = time.strftime("%Y-%m-%d %H:%M:%S")
            log.write(f"--- {stamp} supervisor: starting {self.name} ---\n".encode())
            log.flush()
            if self.launcher is not None:
                self.proc = self.launcher(self)
                return
            self.proc = subprocess.Popen(
                list(self.argv),
                env=dict(self.env),
                cwd=self.cwd,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                # SIGTERM, not SIGKILL: an orphaned daemon still shuts down cleanly.
                preexec_fn=self._in_child,
            )

    def _in_child(self) -> None:
        """Run in the new process before exec: its CPUs, and SIGTERM when the parent dies."""
        if self.cpus is not None:
            os.sched_setaffinity(0, self.cpus)
        if self.die_with_parent:
            die_with_parent(signal.SIGTERM)()

    def poll(self) -> int | None:
        """The exit code once it has exited (recorded once), else None."""
        if self.proc is None:
            return None
        code = self.proc.poll()
        if code is not None and len(self.exit_codes) <= self.restarts:
            self.exit_codes.append(code)
        return code

    def log_tail(self, lines: int = 15) -> str:
        """The end of its log, for error messages."""
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])


def signal_group(proc: Proc, sig: int) -> None:
    """Send `sig` to the child's whole process group (it leads its own session).

    A fork of the forkserver leads its group only once it has called `setsid`; before that
    the signal goes to its pid alone (it stays pending there: forkserver_signals.py).
    """
    with contextlib.suppress(ProcessLookupError, PermissionError):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            if proc.poll() is None:
                os.kill(proc.pid, sig)


def stop_children(children: Iterable[Child], timeout_s: float = 10.0) -> dict[str, int]:
    """SIGTERM every running child (once: not one with `stop_sent`), wait up to `timeout_s`
    in all, SIGKILL the rest.

    Returns each child's final exit code (negative = killed by that signal).
    """
    running = [c for c in children if c.proc is not None and c.proc.poll() is None]
    for c in running:
        assert c.proc is not None
        if not c.stop_sent:  # a second SIGTERM could cut short the child's own clean-up
            signal_group(c.proc, signal.SIGTERM)
    deadline = time.monotonic() + timeout_s
    codes: dict[str, int] = {}
    for c in running:
        assert c.proc is not None
        try:
            codes[c.name] = c.proc.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            signal_group(c.proc, signal.SIGKILL)
            codes[c.name] = c.proc.wait()
        # Grandchildren left in the group get the same end as their parent.
        signal_group(c.proc, signal.SIGKILL)
    return codes


def pid_alive(pid: int) -> bool:
    """True if a process with this pid exists (and is not a zombie we could reap)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ")[-1][:1] != "Z"
    except OSError:
        return True
