"""Reachability of the chain and IPFS, for `/healthz`, READY and a bounded IPFS outage.

A daemon that cannot reach IPFS cannot fetch a base model or publish an update; warning
about it forever while `/healthz` says "ok" hides a dead service. So a probe task checks
both every `interval_s`: `/healthz` reports each (status "degraded", HTTP 503, while one is
down), READY is sent only after the first IPFS call that succeeds, and an IPFS outage
longer than `[ipfs].unreachable_exit_s` stops the daemon non-zero (a supervisor restarts it).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from daemons.errors import FedchainError
from daemons.runtime.service import log_event

log = logging.getLogger("fedchain.service")
Probe = Callable[[], Awaitable[Any]]
OK, UNREACHABLE, UNKNOWN = "ok", "unreachable", "unknown"


class IpfsUnreachable(FedchainError):
    """IPFS was unreachable for longer than `[ipfs].unreachable_exit_s`: stop (exit 1)."""


class Reachability:
    """Probe the chain and IPFS; remember when each last answered."""

    def __init__(
        self,
        probe_chain: Probe,
        probe_ipfs: Probe,
        ipfs_url: str,
        interval_s: float,
        ipfs_exit_after_s: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.probe_chain, self.probe_ipfs, self.ipfs_url = probe_chain, probe_ipfs, ipfs_url
        self.interval_s, self.exit_after_s, self.clock = interval_s, ipfs_exit_after_s, clock
        self.chain, self.ipfs = UNKNOWN, UNKNOWN
        self.ipfs_ready = asyncio.Event()
        self._ipfs_down_since: float | None = None
        self._ipfs_error = ""

    async def run(self) -> None:
        """Probe forever; raises IpfsUnreachable after a long enough IPFS outage."""
        started = self.clock()
        while True:
            await self.probe_once()
            down_since = self._ipfs_down_since
            if self.ipfs != OK and self.exit_after_s > 0:
                since = started if down_since is None else down_since
                if self.clock() - since > self.exit_after_s:
                    raise IpfsUnreachable(
                        f"IPFS API {self.ipfs_url} unreachable for more than "
                        f"{self.exit_after_s:g} s ([ipfs] unreachable_exit_s): "
                        f"{self._ipfs_error}; start the IPFS daemon (`fedchain ipfs` or "
                        "`ipfs daemon`) or fix [ipfs].api_url"
                    )
            await asyncio.sleep(self.interval_s)

    async def probe_once(self) -> None:
        """One round of probes (each bounded by `interval_s`, at least 2 s)."""
        limit = max(self.interval_s, 2.0)
        self.chain = OK if await _answers(self.probe_chain, limit) is None else UNREACHABLE
        error = await _answers(self.probe_ipfs, limit)
        if error is None:
            if self.ipfs == UNREACHABLE:
                log_event(log, logging.INFO, "IPFS reachable again", api_url=self.ipfs_url)
            self.ipfs, self._ipfs_down_since = OK, None
            self.ipfs_ready.set()
            return
        if self.ipfs != UNREACHABLE:
            log_event(log, logging.WARNING, "IPFS unreachable", api_url=self.ipfs_url, error=error)
            self._ipfs_down_since = self.clock()
        self.ipfs, self._ipfs_error = UNREACHABLE, error

    def health(self) -> dict[str, Any]:
        """The `/healthz` fields: "ok" only while both answer."""
        status = "ok" if self.chain == OK and self.ipfs == OK else "degraded"
        if not self.ipfs_ready.is_set():
            status = "starting"
        return {"status": status, "chain": self.chain, "ipfs": self.ipfs}


async def _answers(probe: Probe, limit_s: float) -> str | None:
    """None if `probe()` answered within `limit_s`, else what went wrong."""
    try:
        async with asyncio.timeout(limit_s):
            await probe()
    except TimeoutError:
        return f"no answer in {limit_s:g} s"
    except Exception as exc:  # any failure means "not reachable" for health purposes
        return f"{type(exc).__name__}: {exc}"
    return None
