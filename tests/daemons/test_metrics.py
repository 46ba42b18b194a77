"""Operator metrics: evaluation, round duration, refusals apart from rejections, the monitor."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families
from web3 import AsyncHTTPProvider, AsyncWeb3

from daemons.chain.store import Cursor, StateStore
from daemons.runtime.metrics import Metrics
from daemons.runtime.monitor import Sample, balance_warning, count_rpc_errors, take_sample, watch
from tests.daemons import test_client_rounds as client_tests
from tests.daemons.test_org_rounds import CLIENTS, make_org, submit
from tests.fixtures.anvil import Deployed

pytestmark = pytest.mark.timeout(120)


def scrape(metrics: Metrics) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of the exposition text, keyed by (name, sorted labels)."""
    out = {}
    for family in text_string_to_metric_families(metrics.render().decode()):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


async def test_org_publishes_eval_metrics_and_round_duration(tmp_path: Path) -> None:
    org, chain, storage = make_org(tmp_path)
    await org.run_until_idle()
    chain.now += 42  # the round closes 42 s (chain time) after it opened
    for i, client in enumerate(CLIENTS):
        await submit(org, chain, storage, client, 0.01 * (i + 1))
    await org.run_until_idle()
    got = scrape(org.metrics)
    assert got[("fedchain_eval_round", ())] == 1
    assert 0 <= got[("fedchain_eval_metric", (("metric", "accuracy"),))] <= 1
    assert ("fedchain_eval_metric", (("metric", "loss"),)) in got
    assert got[("fedchain_round_seconds_count", (("outcome", "closed"),))] == 1
    assert got[("fedchain_round_seconds_sum", (("outcome", "closed"),))] == 42


async def test_contract_refusals_are_not_validation_rejections(tmp_path: Path) -> None:
    client, chain, storage, _ = client_tests.make_client(tmp_path)
    event = await client_tests.open_round(chain, storage, deadline=2000)
    original = chain.now_s

    async def now_then_late() -> int:
        chain.now_s = original  # type: ignore[method-assign]
        value, chain.now = chain.now, 5000  # the deadline passes while training
        return value

    chain.now_s = now_then_late  # type: ignore[method-assign]
    await client.on_round_opened(event)
    got = scrape(client.metrics)
    assert got[("fedchain_submissions_refused_total", (("error", "DeadlinePassed"),))] == 1
    assert not [k for k in got if k[0] == "fedchain_updates_rejected_total"]


def test_balance_warning_once_per_fall() -> None:
    # (balance, threshold, warned before) -> (warn now, warned after)
    assert balance_warning(1.0, 0.05, False) == (False, False)
    assert balance_warning(0.01, 0.05, False) == (True, True)
    assert balance_warning(0.01, 0.05, True) == (False, True)  # still low: no repeat
    assert balance_warning(0.5, 0.05, True) == (False, False)  # refilled: armed again
    assert balance_warning(0.0, 0.0, False) == (False, False)  # threshold 0: never


async def test_watch_sets_gauges_and_warns_below_the_threshold(
    caplog: pytest.LogCaptureFixture,
) -> None:
    metrics = Metrics("org")
    samples = iter([Sample(10, 2, 1, 0.5), Sample(11, 0, 0, 0.01), Sample(12, 0, 0, 0.009)])
    seen: list[Sample] = []

    async def sample() -> Sample:
        try:
            s = next(samples)
        except StopIteration:
            raise asyncio.CancelledError from None
        seen.append(s)
        return s

    with caplog.at_level(logging.WARNING, logger="fedchain"), pytest.raises(asyncio.CancelledError):
        await watch(sample, metrics, 0.05, interval_s=0)
    assert len(seen) == 3
    assert caplog.text.count("account balance is low") == 1
    got = scrape(metrics)
    assert got[("fedchain_balance_eth", ())] == 0.009
    assert got[("fedchain_head_block", ())] == 12


async def test_sample_and_rpc_errors_against_anvil(deployed: Deployed, tmp_path: Path) -> None:
    metrics = Metrics("client")
    w3: Any = AsyncWeb3(AsyncHTTPProvider(deployed.anvil.rpc_url))
    count_rpc_errors(w3, metrics)
    with StateStore(tmp_path / "s.sqlite") as store:
        head = await deployed.w3.eth.block_number
        store.advance(Cursor(head - 1, "0x" + "00" * 32))
        s = await take_sample(w3, store, deployed.clients[0].address)
        assert s.head == head and s.behind == 1 and s.pending == 0
        assert 1 < s.balance_eth <= 10_000  # anvil's dev accounts start with 10000 ETH
    reply = await w3.provider.make_request("eth_getBalance", ["not-an-address", "latest"])
    assert "error" in reply
    dead: Any = AsyncWeb3(AsyncHTTPProvider("http://127.0.0.1:9"))
    count_rpc_errors(dead, metrics)
    with pytest.raises(Exception):  # noqa: B017 - any transport error
        await dead.eth.block_number
    got = scrape(metrics)
    assert got[("fedchain_rpc_errors_total", (("kind", "error_reply"),))] == 1
    transport = [
        k for k in got if k[0] == "fedchain_rpc_errors_total" and k[1][0][1] != "error_reply"
    ]
    assert transport, got
    await w3.provider.disconnect()
    await dead.provider.disconnect()


async def test_ipfs_errors_are_counted_by_kind() -> None:
    from daemons.ipfs.client import IpfsStorage, IpfsUnavailable

    metrics = Metrics("org")
    async with IpfsStorage("http://127.0.0.1:9") as storage:
        storage.on_error = lambda kind: metrics.ipfs_errors.labels(kind=kind).inc()
        with pytest.raises(IpfsUnavailable):
            await storage.put(b"x")
    assert scrape(metrics)[("fedchain_ipfs_errors_total", (("kind", "IpfsUnavailable"),))] == 1
