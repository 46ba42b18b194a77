"""What the testnet's forkserver imports once for every daemon it forks (forkserver.py).

Importing must not start JAX's runtime (no device arrays at import time anywhere here).

The imports run with the cyclic garbage collector off, and everything they created is frozen
after (`gc.freeze`, the recipe Python's gc docs give for a process that forks without exec):
the 487 collections this import triggers took 0.24–0.29 s of its ~2.6 CPU-s (timed with
`gc.callbacks`), on the path to the first fork; and no fork's collection ever walks these
objects again (nor touches their pages, which stay shared with the forkserver).
"""

import gc

_collecting = gc.isenabled()
gc.disable()

import daemons.cli.main  # noqa: E402
import daemons.client.service  # noqa: E402
import daemons.org.service  # noqa: E402
import daemons.testnet.cli  # noqa: E402, F401
import models.tasks  # noqa: E402, F401

gc.freeze()
if _collecting:
    gc.enable()
