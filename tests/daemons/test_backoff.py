"""Jittered backoff: bounded retries of TransientError only, delays under a doubling cap."""

from __future__ import annotations

import asyncio

import aiohttp
import pytest

from daemons.chain.backoff import Backoff, NodeUnreachable, delays, node_call, retry
from daemons.errors import ConfigError, TransientError


def test_delays_double_up_to_the_cap_with_jitter() -> None:
    policy = Backoff(attempts=7, base_s=0.5, max_s=3.0)
    assert list(delays(policy, rand=lambda: 1.0)) == [0.5, 1.0, 2.0, 3.0, 3.0, 3.0]
    assert list(delays(policy, rand=lambda: 0.5)) == [0.25, 0.5, 1.0, 1.5, 1.5, 1.5]
    sampled = list(delays(policy))
    assert len(sampled) == 6 and all(0 <= d <= 3.0 for d in sampled)


def test_unbounded_policy_keeps_going() -> None:
    gen = delays(Backoff(attempts=None, base_s=1, max_s=2), rand=lambda: 1.0)
    assert [next(gen) for _ in range(100)][-1] == 2


def test_bad_policy_is_refused() -> None:
    with pytest.raises(ValueError, match="attempts"):
        Backoff(attempts=0)
    with pytest.raises(ValueError, match="base_s"):
        Backoff(base_s=5, max_s=1)


async def test_retry_retries_transient_then_succeeds() -> None:
    calls, slept = [], []

    async def flaky() -> str:
        calls.append(1)
        if len(calls) < 3:
            raise TransientError("node busy")
        return "ok"

    async def fake_sleep(s: float) -> None:
        slept.append(s)

    async with asyncio.timeout(5):
        assert await retry(flaky, "flaky", Backoff(attempts=5), sleep=fake_sleep) == "ok"
    assert len(calls) == 3 and len(slept) == 2


async def test_retry_gives_up_after_attempts_and_reraises() -> None:
    calls = []

    async def down() -> None:
        calls.append(1)
        raise TransientError("still down")

    async with asyncio.timeout(5):
        with pytest.raises(TransientError, match="still down"):
            await retry(down, "down", Backoff(attempts=3, base_s=0.001, max_s=0.001))
    assert len(calls) == 3


async def test_retry_does_not_retry_other_errors() -> None:
    calls = []

    async def broken() -> None:
        calls.append(1)
        raise ConfigError("bad key")

    with pytest.raises(ConfigError):
        await retry(broken, "broken", Backoff(attempts=5, base_s=0.001, max_s=0.001))
    assert len(calls) == 1


async def test_node_call_names_the_url_when_refused() -> None:
    async def refused() -> None:
        async with aiohttp.ClientSession() as session:
            await session.get("http://127.0.0.1:9/")  # discard port: nothing listens

    async with asyncio.timeout(10):
        with pytest.raises(NodeUnreachable, match=r"http://127\.0\.0\.1:9 .*rpc_url"):
            await node_call("http://127.0.0.1:9", refused)
