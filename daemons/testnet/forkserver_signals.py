"""The forkserver's first preload: it ignores SIGTERM, so that its forks' exit codes survive.

The supervisor stops the net by SIGTERM to its process group (`testnet up`'s end, a
`kill -TERM -<pgid>`), and the forkserver is in that group. With the default disposition it
died at once: every fork got its parent-death SIGTERM at the same moment, not in the
supervisor's order, and the fork's exit code, which only the forkserver can read, was lost
(multiprocessing reports 255, which the supervisor would take for a crash). Ignoring it, the
forkserver stays until the supervisor stops it or exits (it ends with its parent). Each fork
restores the default before it becomes a daemon (`forkserver.run_forked`).
"""

import signal

signal.signal(signal.SIGTERM, signal.SIG_IGN)
