"""Supervised children: logs, exit codes, clean stop, SIGKILL for the stubborn, no leftovers."""

import os
import sys
import time
from pathlib import Path

from daemons.testnet.procs import Child, daemon_cpus, pid_alive, stop_children

PY = sys.executable


def child(tmp_path: Path, name: str, code: str) -> Child:
    return Child(name, [PY, "-c", code], dict(os.environ), tmp_path / f"{name}.log")


def wait_exit(c: Child, timeout_s: float = 10.0) -> int:
    deadline = time.monotonic() + timeout_s
    while (code := c.poll()) is None:
        assert time.monotonic() < deadline, "child did not exit"
        time.sleep(0.02)
    return code


def test_output_goes_to_the_log_and_exit_code_is_recorded(tmp_path: Path) -> None:
    c = child(tmp_path, "hello", "import sys; print('hi there'); sys.exit(3)")
    c.start()
    assert wait_exit(c) == 3
    assert c.exit_codes == [3]
    assert "hi there" in c.log_path.read_text()
    assert "starting hello" in c.log_path.read_text()


def test_stop_terminates_politely_then_kills(tmp_path: Path) -> None:
    polite = child(tmp_path, "polite", "import time; time.sleep(60)")
    stubborn = child(
        tmp_path,
        "stubborn",
        "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
        "print('ready', flush=True); time.sleep(60)",
    )
    polite.start()
    stubborn.start()
    deadline = time.monotonic() + 10
    while "ready" not in stubborn.log_path.read_text():
        assert time.monotonic() < deadline
        time.sleep(0.02)
    t0 = time.monotonic()
    codes = stop_children([polite, stubborn], timeout_s=1.0)
    assert codes == {"polite": -15, "stubborn": -9}
    assert time.monotonic() - t0 < 5
    assert polite.pid is not None and stubborn.pid is not None
    assert not pid_alive(polite.pid) and not pid_alive(stubborn.pid)


def test_grandchildren_are_stopped_with_their_parent(tmp_path: Path) -> None:
    code = (
        "import subprocess, sys, time; "
        "p = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)']); "
        "print(p.pid, flush=True); time.sleep(60)"
    )
    c = child(tmp_path, "parent", code)
    c.start()
    deadline = time.monotonic() + 10
    while not (lines := c.log_path.read_text().splitlines()[1:]):
        assert time.monotonic() < deadline
        time.sleep(0.02)
    grandchild = int(lines[0])
    assert pid_alive(grandchild)
    stop_children([c], timeout_s=2.0)
    deadline = time.monotonic() + 5
    while pid_alive(grandchild):
        assert time.monotonic() < deadline, "grandchild survived"
        time.sleep(0.02)


def test_daemon_cpus_are_dealt_round_robin() -> None:
    assert [daemon_cpus(i, 1, [0, 1]) for i in range(5)] == [(0,), (1,), (0,), (1,), (0,)]
    assert [daemon_cpus(i, 2, [0, 1, 2, 3, 4, 5]) for i in range(4)] == [
        (0, 1), (2, 3), (4, 5), (0, 1)
    ]  # fmt: skip
    assert daemon_cpus(3, 1, [4, 9]) == (9,)  # the CPUs this process may use, in order
    assert daemon_cpus(0, 2, [0, 1]) is None  # as many threads as CPUs: leave it on all
    assert daemon_cpus(0, 1, [0]) is None


def test_a_child_runs_on_its_cpus(tmp_path: Path) -> None:
    first = min(os.sched_getaffinity(0))
    c = Child("pinned", [PY, "-c", "import os; print(sorted(os.sched_getaffinity(0)))"],
              dict(os.environ), tmp_path / "pinned.log", cpus=(first,))  # fmt: skip
    c.start()
    assert wait_exit(c) == 0
    assert f"[{first}]" in c.log_path.read_text()
