"""`testnet up`'s plot workers: matplotlib loaded while the net runs, the plots drawn two at a time.

At the end of a `make demo` run the report's eight PNGs took ~1.9 s of wall time in the
`testnet up` process on this 2-core machine, 0.55 s of it importing matplotlib (docs/testnet.md,
"Measured"). Two worker processes (`python -m daemons.testnet.plot_worker`) start next to the
supervisor. Each imports matplotlib and draws one throwaway figure (fonts, the Agg canvas, the
PNG writer) in a thread under SCHED_IDLE, so that this takes only CPU time the net leaves
idle, then draws its share of the plots (`balanced_shares`), sent on stdin, at normal
priority. A worker that fails or hangs makes `draw` raise
`PlotWorkerError`; the caller then draws in-process, as before. Each worker's stderr is a log
file of the run.
"""

from __future__ import annotations

import pickle
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from daemons.runtime.childproc import die_with_parent
from daemons.testnet.plot_names import PlotJob

WORKERS = 2
DRAW_TIMEOUT_S = 120.0  # all plots of a run; a worker still busy then is killed


class PlotWorkerError(Exception):
    """A plot worker could not draw its plots (died, hung, or answered garbage)."""


# seconds to draw, measured in a warm worker (2026-12-08): the heat maps and metric plots
# cost about twice a bar chart, which is what the rest cost
DRAW_COST = {"plot_per_class": 0.37, "plot_metric": 0.20, "plot_train_loss": 0.18}
OTHER_COST = 0.12


def balanced_shares(jobs: Sequence[PlotJob], workers: int) -> list[list[PlotJob]]:
    """Split `jobs` over `workers`: the costliest first, each to the least loaded worker."""
    shares: list[list[PlotJob]] = [[] for _ in range(workers)]
    load = [0.0] * workers
    for job in sorted(jobs, key=_cost, reverse=True):
        w = load.index(min(load))
        shares[w].append(job)
        load[w] += _cost(job)
    return shares


def _cost(job: PlotJob) -> float:
    return DRAW_COST.get(job[0].__name__, OTHER_COST)


def _spawn(log_path: Path) -> subprocess.Popen[bytes]:
    argv = [sys.executable, "-m", "daemons.testnet.plot_worker"]
    with open(log_path, "ab") as log:
        return subprocess.Popen(
            argv,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=log,
            # a `testnet up` killed with -9 leaves no worker behind
            preexec_fn=die_with_parent(),
        )


class PlotWorkers:
    """The started workers; `draw` once, then `close` (also after a failure)."""

    def __init__(self, logs: Path) -> None:
        self.procs: list[subprocess.Popen[bytes]] = []
        try:
            for i in range(WORKERS):
                self.procs.append(_spawn(logs / f"plot-worker-{i}.log"))
        except BaseException:
            self.close()
            raise

    def draw(self, jobs: Sequence[PlotJob], timeout_s: float = DRAW_TIMEOUT_S) -> list[Path]:
        """Draw `jobs` (shared out by cost, `balanced_shares`); their paths in job order."""
        shares = balanced_shares(jobs, len(self.procs))
        try:
            for proc, share in zip(self.procs, shares, strict=True):
                assert proc.stdin is not None
                proc.stdin.write(pickle.dumps(share))
                proc.stdin.close()
            deadline = time.monotonic() + timeout_s
            drawn = [self._result(p, deadline) for p in self.procs]
        except (OSError, subprocess.TimeoutExpired, pickle.UnpicklingError, EOFError) as e:
            self.close()  # none may still write a PNG that this process is about to draw
            raise PlotWorkerError(f"a plot worker failed: {type(e).__name__}: {e}") from e
        except PlotWorkerError:
            self.close()
            raise
        where = {id(job): (w, i) for w, share in enumerate(shares) for i, job in enumerate(share)}
        return [drawn[w][i] for w, i in (where[id(job)] for job in jobs)]

    @staticmethod
    def _result(proc: subprocess.Popen[bytes], deadline: float) -> list[Path]:
        code = proc.wait(timeout=max(deadline - time.monotonic(), 0.0))
        assert proc.stdout is not None
        out = proc.stdout.read()
        if code != 0:
            raise PlotWorkerError(f"a plot worker exited with {code} (see its log)")
        paths: list[Path] = pickle.loads(out)
        return paths

    def close(self) -> None:
        """Kill whatever is still running and reap every worker."""
        for proc in self.procs:
            if proc.poll() is None:
                proc.kill()
            proc.wait()
            for pipe in (proc.stdin, proc.stdout):
                if pipe is not None:
                    pipe.close()


def start_plot_workers(logs: Path) -> PlotWorkers | None:
    """Start the workers (from the main thread: each dies with the thread that started it);
    None where they cannot start."""
    try:
        return PlotWorkers(logs)
    except OSError:
        return None
