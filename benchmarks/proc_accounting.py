"""CPU-seconds and I/O bytes of a process tree, per component, from /proc (Linux only).

Wall-clock figures on a shared machine move with everyone else's load; the CPU time a
process used and the bytes it read and wrote through system calls do not. A `TreeSampler`
watches every descendant of one process (a `fedchain testnet up`), keeps each one's latest
cumulative counters (so a process that exits keeps its last sample), and names it by its
command line: `anvil`, `ipfs-<node>`, `org`, `client-<i>`, `supervisor`, `watcher`.
"""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

TICK_S = 1.0 / os.sysconf("SC_CLK_TCK")
PROC = Path("/proc")


@dataclass(frozen=True)
class Counters:
    """Cumulative counters of one process: user+system CPU seconds, bytes read and written."""

    cpu_s: float
    read_b: int
    write_b: int

    def minus(self, other: Counters | None) -> Counters:
        if other is None:
            return self
        return Counters(
            self.cpu_s - other.cpu_s, self.read_b - other.read_b, self.write_b - other.write_b
        )


def read_counters(pid: int) -> Counters | None:
    """The process's counters, or None if it is gone (or not ours to read)."""
    try:
        stat = (PROC / str(pid) / "stat").read_text()
        io = (PROC / str(pid) / "io").read_text()
    except OSError:
        return None
    fields = stat[stat.rindex(")") + 2 :].split()  # after "pid (comm) "
    utime, stime = int(fields[11]), int(fields[12])
    vals = dict(line.split(": ") for line in io.splitlines() if ": " in line)
    return Counters((utime + stime) * TICK_S, int(vals["rchar"]), int(vals["wchar"]))


def descendants(root: int) -> list[int]:
    """`root` and every process below it (by parent pid)."""
    children: dict[int, list[int]] = {}
    for entry in PROC.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat[stat.rindex(")") + 2 :].split()[1])
        children.setdefault(ppid, []).append(int(entry.name))
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo.extend(children.get(pid, []))
    return out


def component(pid: int) -> str | None:
    """A name for a testnet process from its command line; None for helpers (shells)."""
    try:
        argv = (PROC / str(pid) / "cmdline").read_bytes().split(b"\0")
    except OSError:
        return None
    cmd = " ".join(a.decode(errors="replace") for a in argv)
    if m := re.search(r"--repo \S*/ipfs/([^/\s]+)", cmd):
        return f"ipfs-{m.group(1)}"
    if m := re.search(r"--config \S*/configs/([^/\s]+)\.toml", cmd):
        return m.group(1)
    if "anvil" in Path(argv[0].decode(errors="replace")).name:
        return "anvil"
    if "daemons.testnet.supervisor" in cmd:
        return "supervisor"
    if "testnet up" in cmd:
        return "watcher"
    return None


class TreeSampler:
    """Samples a process tree's counters every `interval_s` in a background thread."""

    def __init__(self, root: int, interval_s: float = 0.2) -> None:
        self.root, self.interval_s = root, interval_s
        self._latest: dict[int, tuple[str, Counters]] = {}
        self._names: dict[int, str | None] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def __enter__(self) -> TreeSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _loop(self) -> None:
        while not self._stop.is_set():
            self.sample()
            self._stop.wait(self.interval_s)

    def sample(self) -> None:
        for pid in descendants(self.root):
            if pid not in self._names:
                self._names[pid] = component(pid)
            name = self._names[pid]
            if name is None:
                continue
            counters = read_counters(pid)
            if counters is not None:
                with self._lock:
                    self._latest[pid] = (name, counters)

    def mark(self) -> dict[int, tuple[str, Counters]]:
        """A fresh sample of every process so far (exited ones keep their last counters)."""
        self.sample()
        with self._lock:
            return dict(self._latest)


def per_component(
    start: Mapping[int, tuple[str, Counters]], end: Mapping[int, tuple[str, Counters]]
) -> dict[str, Counters]:
    """Counters used between two marks, summed per component name (restarts add up)."""
    out: dict[str, Counters] = {}
    for pid, (name, counters) in end.items():
        used = counters.minus(start.get(pid, (name, None))[1])
        prev = out.get(name, Counters(0.0, 0, 0))
        out[name] = Counters(
            prev.cpu_s + used.cpu_s, prev.read_b + used.read_b, prev.write_b + used.write_b
        )
    return out


def group(name: str) -> str:
    """The component's group: clients, client IPFS nodes, and the singletons as they are."""
    if re.fullmatch(r"client-\d+", name):
        return "clients"
    if re.fullmatch(r"ipfs-client-\d+", name):
        return "ipfs-clients"
    return name
