"""Jittered exponential backoff for `TransientError`, and mapping of node connection errors.

"Full jitter" (Brooker, AWS Architecture Blog 2015): sleep a uniform random time in
`[0, min(max_s, base_s * 2**attempt)]`, so daemons that lost the same node do not retry in
lock-step. Only transient errors are retried; everything else propagates at once.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import TypeVar

import aiohttp
from web3.exceptions import ProviderConnectionError, TimeExhausted

from daemons.errors import TransientError

T = TypeVar("T")
log = logging.getLogger(__name__)

CONNECTION_ERRORS: tuple[type[BaseException], ...] = (
    aiohttp.ClientConnectionError,
    aiohttp.ClientPayloadError,
    ConnectionError,
    TimeoutError,
    ProviderConnectionError,
    TimeExhausted,
)


class NodeUnreachable(TransientError):
    """The Ethereum JSON-RPC node did not answer (connection refused, reset, timed out)."""


@dataclass(frozen=True)
class Backoff:
    """How to retry: attempts in all (None = forever), the first and the largest delay."""

    attempts: int | None = 8
    base_s: float = 0.2
    max_s: float = 10.0

    def __post_init__(self) -> None:
        if self.attempts is not None and self.attempts < 1:
            raise ValueError(f"Backoff.attempts must be >= 1 or None, got {self.attempts}")
        if not 0 < self.base_s <= self.max_s:
            raise ValueError(f"Backoff needs 0 < base_s <= max_s, got {self.base_s}, {self.max_s}")


def delays(policy: Backoff, rand: Callable[[], float] = random.random) -> Iterator[float]:
    """The sleep before each retry: full jitter under a capped doubling ceiling."""
    attempt = 0
    while policy.attempts is None or attempt < policy.attempts - 1:
        ceiling = min(policy.max_s, policy.base_s * 2.0 ** min(attempt, 62))
        yield rand() * ceiling
        attempt += 1


async def retry(
    fn: Callable[[], Awaitable[T]],
    what: str,
    policy: Backoff = Backoff(),
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
) -> T:
    """Await `fn()`; on `TransientError` sleep a jittered delay and try again, bounded."""
    waits = delays(policy)
    while True:
        try:
            return await fn()
        except TransientError as exc:
            delay = next(waits, None)
            if delay is None:
                raise
            log.warning("%s failed (%s); retrying in %.2f s", what, exc, delay)
            await sleep(delay)


def unreachable(url: str, exc: BaseException) -> NodeUnreachable:
    """A `NodeUnreachable` that names the URL and says what to check."""
    return NodeUnreachable(
        f"cannot reach the Ethereum node at {url} ({type(exc).__name__}: {exc}); check that "
        "the node is running and that [chain] rpc_url (or --rpc-url) points at it"
    )


async def node_call(url: str, fn: Callable[[], Awaitable[T]]) -> T:
    """Await one chain call, turning connection failures into `NodeUnreachable`."""
    try:
        return await fn()
    except CONNECTION_ERRORS as exc:
        raise unreachable(url, exc) from exc
