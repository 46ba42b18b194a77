"""Free loopback ports for servers that a process starts later (dev chains, health endpoints).

A port that `bind(("127.0.0.1", 0))` hands out comes from the kernel's ephemeral range: the
same range every outgoing connection takes its local port from. Between picking a port and the
server binding it (a testnet picks its daemons' health ports seconds before it starts them), a
connection to anvil or an IPFS node can take that port, and the server then fails with EADDRINUSE
for as long as the connection lives. So `free_port` picks below (or above) that range, where no
outgoing connection goes, and checks that nothing listens there now.
"""

from __future__ import annotations

import random
import socket
from pathlib import Path

__all__ = ["ephemeral_range", "free_port"]

EPHEMERAL_RANGE_FILE = Path("/proc/sys/net/ipv4/ip_local_port_range")
LINUX_DEFAULT_RANGE = (32768, 60999)
LOWEST = 10000  # below: ports that well-known services tend to listen on
_pick = random.SystemRandom()  # not the seeded `random`: two processes must not pick alike


def ephemeral_range(path: Path = EPHEMERAL_RANGE_FILE) -> tuple[int, int]:
    """The kernel's range of local ports for outgoing connections (Linux's default if unknown)."""
    try:
        low, high = (int(word) for word in path.read_text().split())
    except (OSError, ValueError):
        return LINUX_DEFAULT_RANGE
    return low, high


def _bound_port(port: int) -> int | None:
    """The port that binding 127.0.0.1:`port` got (`port`, or the kernel's pick for 0), or
    None if it is taken; the socket is closed again."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return None
        return int(s.getsockname()[1])


def free_port(path: Path = EPHEMERAL_RANGE_FILE, tries: int = 64) -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago and that no outgoing connection takes.

    Falls back to a kernel-chosen (ephemeral) port when the range leaves no room outside it."""
    low, high = ephemeral_range(path)
    outside = [*range(LOWEST, low), *range(high + 1, 65536)]
    for _ in range(tries if outside else 0):
        if (port := _bound_port(_pick.choice(outside))) is not None:
            return port
    port = _bound_port(0)
    if port is None:
        raise OSError("no free TCP port on 127.0.0.1")
    return port
