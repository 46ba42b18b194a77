"""The forkserver's first preload: it ignores SIGTERM, so that its forks' exit codes survive.

The supervisor stops the net by SIGTERM to its process group (`testnet up`'s end, a
`kill -TERM -<pgid>`), and the forkserver is in that group. With the default disposition it
died at once: every fork got its parent-death SIGTERM at the same moment, not in the
supervisor's order, and the fork's exit code, which only the forkserver can read, was lost
(multiprocessing reports 255, which the supervisor would take for a crash). Ignoring it, the
forkserver stays until the supervisor stops it or exits (it ends with its parent). Each fork
restores the default before it becomes a daemon (`forkserver.run_forked`).

It also blocks SIGTERM, and each fork inherits the mask: a SIGTERM sent to a fork before it
has restored the default (the supervisor stopping the net while that client is starting)
stays pending instead of being ignored, and ends the fork when `run_forked` unblocks it.
Ignored instead, it was lost: the fork ran on as a daemon nobody had stopped, saw the chain
go away and exited 1.
"""

import signal

signal.signal(signal.SIGTERM, signal.SIG_IGN)
signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM})
