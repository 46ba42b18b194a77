"""A daemon's periodic look at its own standing: head, lag, pending txs, balance.

An org out of ETH stops the whole federation (it cannot open or close rounds), and a client
out of ETH silently drops out; so the balance is a gauge and a WARNING below
`[chain] low_balance_eth`, logged once per fall below the threshold, not on every sample.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from daemons.chain.store import OUTBOX_PENDING, StateStore
from daemons.runtime.metrics import WEI_PER_ETH, Metrics
from daemons.runtime.service import log_event

log = logging.getLogger("fedchain.monitor")
SAMPLE_INTERVAL_S = 15.0


@dataclass(frozen=True)
class Sample:
    """One look at the node and the daemon's state."""

    head: int
    behind: int
    pending: int
    balance_eth: float


async def take_sample(w3: Any, store: StateStore, address: str) -> Sample:
    """Head block, blocks the tailer is behind, unmined outbox entries, balance in ETH."""
    head, balance = await asyncio.gather(w3.eth.block_number, w3.eth.get_balance(address))
    cursor = store.cursor()
    behind = max(0, int(head) - cursor.block_number) if cursor else int(head)
    pending = len(store.outbox_entries(OUTBOX_PENDING))
    return Sample(int(head), behind, pending, int(balance) / WEI_PER_ETH)


def balance_warning(balance_eth: float, threshold_eth: float, warned: bool) -> tuple[bool, bool]:
    """(warn now, warned afterwards): warn on falling below the threshold, once; 0 = never."""
    low = threshold_eth > 0 and balance_eth < threshold_eth
    return low and not warned, low


def record(metrics: Metrics, sample: Sample) -> None:
    """Set the gauges from a sample."""
    metrics.head_block.set(sample.head)
    metrics.blocks_behind.set(sample.behind)
    metrics.pending_transactions.set(sample.pending)
    metrics.balance_eth.set(sample.balance_eth)


async def watch(
    sample: Callable[[], Awaitable[Sample]],
    metrics: Metrics,
    threshold_eth: float,
    interval_s: float = SAMPLE_INTERVAL_S,
) -> None:
    """Sample forever; a failed sample is skipped (the RPC error counter has it), never fatal."""
    warned = False
    while True:
        try:
            s = await sample()
        except Exception as exc:  # the node is down: the daemon's own calls will say so
            log_event(log, logging.DEBUG, "monitor sample failed", error=str(exc))
        else:
            record(metrics, s)
            warn, warned = balance_warning(s.balance_eth, threshold_eth, warned)
            if warn:
                log_event(
                    log,
                    logging.WARNING,
                    "account balance is low: fund it before it cannot pay for transactions",
                    balance_eth=s.balance_eth,
                    low_balance_eth=threshold_eth,
                )
        await asyncio.sleep(interval_s)


def count_rpc_errors(w3: Any, metrics: Metrics) -> None:
    """Count failed JSON-RPC requests of `w3`'s provider (wraps its `make_request`)."""
    provider = w3.provider
    inner = provider.make_request

    async def make_request(method: Any, params: Any) -> Any:
        try:
            reply = await inner(method, params)
        except Exception as exc:
            metrics.rpc_errors.labels(kind=type(exc).__name__).inc()
            raise
        if isinstance(reply, dict) and reply.get("error"):
            metrics.rpc_errors.labels(kind="error_reply").inc()
        return reply

    provider.make_request = make_request
