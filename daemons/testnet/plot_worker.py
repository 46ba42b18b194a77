"""One plot worker of `testnet up` (plot_pool.py): load matplotlib, then draw the plots it is sent.

stdin: one pickled list of (plot function, arguments), from the `testnet up` process that
started this worker; stdout: the pickled list of the PNG paths drawn, in the same order.

The loading runs in a thread under SCHED_IDLE, so that it takes only CPU time the net leaves
idle (a nice value is not enough: at nice 10 two workers' loading still slowed the rounds of
`make demo`); the drawing runs in the main thread at the worker's own priority, so that at the
end of a run it is not held back by the daemons and IPFS nodes that are stopping beside it.
"""

from __future__ import annotations

import contextlib
import os
import pickle
import sys
import threading


def idle_priority() -> None:
    """Run the calling thread only when no other thread wants the CPU (else at nice 19)."""
    tid = threading.get_native_id()  # Linux: a thread id sets that thread's policy alone
    try:
        os.sched_setscheduler(tid, os.SCHED_IDLE, os.sched_param(0))
    except (AttributeError, OSError):
        with contextlib.suppress(OSError):
            os.setpriority(os.PRIO_PROCESS, tid, 19)


def warm_up_idle() -> threading.Thread:
    """Load matplotlib and draw a throwaway figure in a thread at idle priority."""

    def warm() -> None:
        idle_priority()
        from daemons.testnet.plots import warm_up

        warm_up()

    thread = threading.Thread(target=warm, name="plot-warm-up", daemon=True)
    thread.start()
    return thread


def main() -> int:
    warming = warm_up_idle()
    jobs = pickle.loads(sys.stdin.buffer.read())
    warming.join()
    paths = [draw(*args) for draw, args in jobs]
    sys.stdout.buffer.write(pickle.dumps(paths))
    return 0


if __name__ == "__main__":
    sys.exit(main())
