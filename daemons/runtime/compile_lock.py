"""One warm-up of a recipe at a time among processes that share a compile cache.

Daemons on one machine that share JAX's persistent compilation cache (a testnet's clients,
`docs/daemons.md`, "First round") and warm up the same recipe on the same data shapes would
compile the same programs side by side: N times the CPU, on the same cores the org needs to
open round 1. A warm-up instead takes its turn on an exclusive `flock` of
`<cache dir>/locks/<recipe key>.lock`: the first process compiles (and JAX writes the cache),
then marks the key compiled (`<recipe key>.done`); the next ones see the mark, drop the lock
at once and load the programs from the cache side by side. Different recipes (another batch
size, another data size) have other keys and compile side by side as before.

The wait is bounded and logged: after `limit_s` the process compiles anyway (WARNING). A
holder that dies releases the lock with its file descriptors and leaves no mark, so the next
process compiles; a lock file that cannot be opened (read-only cache dir) means no turns,
never a failed warm-up. A mark whose cache entries are gone costs only a compilation.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import json
import logging
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from daemons.runtime.service import log_event

log = logging.getLogger("fedchain.service")
LOCKS_DIR_NAME = "locks"
WAIT_LIMIT_S = 300.0
POLL_S = 0.05


def recipe_key(*parts: Any) -> str:
    """A short stable key for what a warm-up compiles (JSON of `parts`, sha-256)."""
    text = json.dumps(parts, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:24]


@contextlib.contextmanager
def compile_turn(
    cache_dir: str | os.PathLike[str] | None,
    key: str,
    limit_s: float = WAIT_LIMIT_S,
    poll_s: float = POLL_S,
) -> Iterator[bool]:
    """Wait for this process's turn to compile `key` (None or "" cache dir: no turns).

    Yields True when the programs are already in the cache (an earlier holder compiled them:
    no lock is kept, so processes load side by side), False when this process compiles:
    then it holds the lock until the block ends, and a block that ends without an error
    marks `key` compiled. Without a usable lock (no cache dir, an unusable lock file, the
    bounded wait ran out) it yields False and holds nothing.
    """
    if not cache_dir:
        yield False
        return
    locks = Path(cache_dir) / LOCKS_DIR_NAME
    path, done = locks / f"{key}.lock", locks / f"{key}.done"
    try:
        locks.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as exc:
        log_event(
            log,
            logging.WARNING,
            "compile lock unusable; compiling without it",
            path=str(path),
            error=str(exc),
        )
        yield False
        return
    with contextlib.ExitStack() as release:
        release.callback(os.close, fd)  # closing the file releases the flock
        if not _acquire(fd, path, limit_s, poll_s):
            yield False
        elif done.exists():
            release.close()  # compiled before: release at once, load from the cache
            yield True
        else:
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
            yield False
            with contextlib.suppress(OSError):  # no marker: the next one compiles, no harm
                done.touch()


def _acquire(fd: int, path: Path, limit_s: float, poll_s: float) -> bool:
    started = time.monotonic()
    waiting = False
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            if exc.errno not in (errno.EAGAIN, errno.EACCES):
                log_event(
                    log,
                    logging.WARNING,
                    "compile lock failed; compiling without it",
                    path=str(path),
                    error=str(exc),
                )
                return False
        else:
            if waiting:
                waited = round(time.monotonic() - started, 3)
                log_event(
                    log,
                    logging.INFO,
                    "compile lock taken",
                    path=str(path),
                    waited_s=waited,
                )
            return True
        if not waiting:
            waiting = True
            log_event(
                log,
                logging.INFO,
                "another process is compiling the same programs; waiting for it",
                path=str(path),
                holder=_holder(fd),
                limit_s=limit_s,
            )
        if time.monotonic() - started >= limit_s:
            log_event(
                log,
                logging.WARNING,
                "compile lock still held; compiling alongside",
                path=str(path),
                waited_s=round(time.monotonic() - started, 3),
            )
            return False
        time.sleep(poll_s)


def _holder(fd: int) -> str:
    try:
        return os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
    except OSError:
        return "unknown"
