"""testnet up's plot workers (plot_pool.py): real worker processes, the same PNGs as in-process."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from daemons.testnet.plot_pool import PlotWorkerError, balanced_shares, start_plot_workers
from daemons.testnet.plots import plot_jobs, write_plots
from daemons.testnet.plots_ops import plot_bytes
from tests.testnet.test_report import A, B, rounds


def _pngs(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.glob("*.png"))}


def test_workers_draw_the_same_pngs_in_the_same_order(tmp_path: Path) -> None:
    workers = start_plot_workers(tmp_path)
    assert workers is not None
    try:
        drawn = write_plots(rounds(), [A, B], tmp_path / "pool", workers=workers)
    finally:
        workers.close()
    here = write_plots(rounds(), [A, B], tmp_path / "here")
    assert [p.name for p in drawn] == [p.name for p in here]
    assert all(p.parent == tmp_path / "pool" for p in drawn)
    assert _pngs(tmp_path / "pool") == _pngs(tmp_path / "here")
    assert all(w.returncode == 0 for w in workers.procs)


def test_the_costliest_plots_are_spread_over_the_workers(tmp_path: Path) -> None:
    jobs = plot_jobs(rounds(), [A, B], tmp_path, {})
    shares = balanced_shares(jobs, 2)
    assert sorted(id(j) for s in shares for j in s) == sorted(id(j) for j in jobs)
    assert all(shares) and abs(len(shares[0]) - len(shares[1])) <= 2
    assert balanced_shares(jobs[:1], 2)[1] == []  # one plot: the other worker gets nothing


def test_a_killed_worker_raises_and_leaves_no_process(tmp_path: Path) -> None:
    workers = start_plot_workers(tmp_path)
    assert workers is not None
    try:
        workers.procs[1].send_signal(signal.SIGKILL)
        workers.procs[1].wait()
        jobs = plot_jobs(rounds(), [A, B], tmp_path / "out", {})
        (tmp_path / "out").mkdir()
        with pytest.raises(PlotWorkerError, match="plot worker"):
            workers.draw(jobs)
        # the live worker is gone too: it must not write a PNG the caller now draws itself
        assert all(w.poll() is not None for w in workers.procs)
    finally:
        workers.close()


def test_a_plot_that_fails_in_a_worker_is_named_in_its_log(tmp_path: Path) -> None:
    workers = start_plot_workers(tmp_path)
    assert workers is not None
    missing = tmp_path / "no" / "such" / "dir" / "bytes.png"
    try:
        with pytest.raises(PlotWorkerError, match="exited with 1"):
            workers.draw([(plot_bytes, (rounds(), missing, "t"))], timeout_s=60)
    finally:
        workers.close()
    logs = "".join(p.read_text() for p in tmp_path.glob("plot-worker-*.log"))
    assert "FileNotFoundError" in logs


def test_workers_warm_up_below_the_net_and_die_with_their_parent(tmp_path: Path) -> None:
    """Each worker loads matplotlib in a thread under SCHED_IDLE (its main thread keeps the
    parent's priority, to draw); a parent killed with -9 takes the workers along."""
    code = (
        "import sys, time; from pathlib import Path\n"
        "from daemons.testnet.plot_pool import start_plot_workers\n"
        "w = start_plot_workers(Path(sys.argv[1]))\n"
        "print(' '.join(str(p.pid) for p in w.procs), flush=True); time.sleep(60)\n"
    )
    parent = subprocess.Popen(
        [sys.executable, "-c", code, str(tmp_path)], stdout=subprocess.PIPE, text=True
    )
    assert parent.stdout is not None
    pids = [int(p) for p in parent.stdout.readline().split()]
    try:
        assert len(pids) == 2
        for pid in pids:
            assert os.sched_getscheduler(pid) == os.SCHED_OTHER  # the main thread draws
        deadline = time.monotonic() + 30
        while not all(os.SCHED_IDLE in _thread_policies(pid).values() for pid in pids):
            assert time.monotonic() < deadline, "no worker thread under SCHED_IDLE"
            time.sleep(0.005)
    finally:
        parent.kill()
        parent.wait()
    for pid in pids:
        _wait_gone(pid)


def _thread_policies(pid: int) -> dict[int, int]:
    """Each live thread of `pid`: its scheduling policy."""
    policies = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            policies[int(task.name)] = os.sched_getscheduler(int(task.name))
        except ProcessLookupError:
            continue
    return policies


def _wait_gone(pid: int, timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            stat = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except FileNotFoundError:
            return
        if stat[0] == "Z":  # exited, not yet reaped
            return
        time.sleep(0.05)
    raise AssertionError(f"plot worker {pid} still runs after its parent was killed")
