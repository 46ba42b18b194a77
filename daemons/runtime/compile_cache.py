"""JAX's persistent compilation cache in a daemon's state dir (docs/daemons.md, "First round").

XLA compiles every jitted program of a process the first time it runs: a client's training
epoch and Fisher pass, the org's evaluation and initial model. With the cache, a restarted
daemon (or the next `fedchain testnet up` with the same cache dir) loads the executables from
disk instead. Small CPU programs are cached too (no minimum compile time or entry size): on
a 2-core machine the dozens of tiny eager ops of round 1 add up.

A cache dir that cannot be created or written turns the cache off with a WARNING: the daemon
compiles as before. A corrupt entry is JAX's to handle: it warns and compiles that program.
Cached executables are the bytes XLA compiled, so results are bit-identical
(tests/daemons/test_compile_cache.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import tempfile
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from daemons.runtime.service import log_event

log = logging.getLogger("fedchain.service")
CACHE_DIR_NAME = "compile-cache"
WARMUP_NICE = 10  # a warm-up thread's niceness: it yields to the critical path


def cache_dir_for(state_dir: str, configured: str = "") -> Path:
    """The cache directory: `configured` if set, else `<state_dir>/compile-cache`."""
    return Path(configured) if configured else Path(state_dir) / CACHE_DIR_NAME


def writable_dir(path: Path) -> str | None:
    """None if `path` is (or can be made) a directory this process can write, else why not."""
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path, prefix=".probe-"):
            pass
    except OSError as exc:
        return f"{type(exc).__name__}: {exc}"
    if not os.access(path, os.R_OK | os.W_OK | os.X_OK):
        return "not readable and writable"
    return None


def enable_compile_cache(path: Path) -> bool:
    """Point JAX's persistent compilation cache at `path`; False (and a WARNING) if unusable.

    Call before the first compilation of the process (JAX reads the setting once).
    """
    problem = writable_dir(path)
    if problem is not None:
        log_event(
            log,
            logging.WARNING,
            f"compile cache disabled: {path} is not usable ({problem}); compiling without it",
            path=str(path),
            error=problem,
        )
        return False
    import jax

    jax.config.update("jax_compilation_cache_dir", str(path))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", -1)
    return True


def active_cache_dir() -> str | None:
    """The persistent cache dir this process compiles into (None: no cache)."""
    import jax

    return getattr(jax.config, "jax_compilation_cache_dir", None) or None


async def in_background_thread(fn: Callable[..., Any], *args: Any) -> Any:
    """Run `fn(*args)` in a fresh thread at nice +`WARMUP_NICE`, so that a warm-up yields the
    CPU to work on the critical path (the org opening round 1 on the same cores)."""

    def niced() -> Any:
        with contextlib.suppress(OSError):  # Linux: a thread's own niceness
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), WARMUP_NICE)
        return fn(*args)

    pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="warmup")
    try:
        return await asyncio.get_running_loop().run_in_executor(pool, niced)
    finally:
        pool.shutdown(wait=False)  # the thread (and its niceness) ends with this call
