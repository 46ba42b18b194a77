"""What an operator sees of a real federation: /metrics, /healthz and `fedchain report`.

Two clients, two rounds of real daemon processes on anvil and the bundled IPFS node; then the
org's and a client's endpoints are scraped and the report is rebuilt from chain and IPFS
with nothing but the org's config.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from daemons.cli.main import main
from tests.integration.harness import Federation

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]


async def scrape(port: int) -> tuple[dict[tuple[str, tuple[tuple[str, str], ...]], float], dict]:
    """A daemon's /metrics samples by (name, labels) and its /healthz document."""
    async with aiohttp.ClientSession() as session:
        async with session.get(f"http://127.0.0.1:{port}/metrics") as reply:
            text = await reply.text()
        async with session.get(f"http://127.0.0.1:{port}/healthz") as reply:
            health = await reply.json()
    samples = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            samples[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return samples, health


def name_clients(fed: Federation) -> dict[str, str]:
    """Give the org's clients names in its config, as an operator would."""
    assert fed.org is not None
    names = {a.address: f"site-{chr(97 + i)}" for i, a in enumerate(fed.accounts[1:3])}
    table = ", ".join(f'"{a}" = "{n}"' for a, n in names.items())
    text = fed.org.config.read_text().replace(
        "[training]", f"client_names = {{ {table} }}\n[training]"
    )
    fed.org.config.write_text(text)
    return names


async def test_metrics_health_and_report_of_a_real_federation(
    tmp_path: Path, fed_data: dict[str, Path]
) -> None:
    async with Federation(tmp_path, fed_data, num_clients=2, rounds=2, max_updates=2) as fed:
        names = name_clients(fed)
        fed.start_all()
        for r in (1, 2):
            await fed.wait_settled(r, timeout_s=240)
        org, org_health = await scrape(fed.health_ports["org"])
        for _ in range(60):  # the chain settles round 2 a step before the org reads it: <= 30 s
            if org_health["activity"] != "aggregating":
                break
            await asyncio.sleep(0.5)
            org, org_health = await scrape(fed.health_ports["org"])
        client, client_health = await scrape(fed.health_ports["client-0"])
        out = tmp_path / "report"
        argv = ["report", "--config", str(fed.org.config), "--out", str(out)]  # type: ignore[union-attr]
        code = await asyncio.wait_for(asyncio.to_thread(main, argv), 300)

    assert org[("fedchain_eval_round", ())] == 2
    assert 0.3 < org[("fedchain_eval_metric", (("metric", "accuracy"),))] <= 1
    assert org[("fedchain_round_seconds_count", (("outcome", "closed"),))] == 2
    assert org[("fedchain_gas_used_total", (("fn", "closeRound"),))] > 0
    assert org[("fedchain_gas_used_total", (("fn", "openRound"),))] > 0
    assert org[("fedchain_balance_eth", ())] > 1  # anvil's dev account, sampled at start
    assert ("fedchain_blocks_behind", ()) in org and ("fedchain_pending_transactions", ()) in org
    assert client[("fedchain_gas_used_total", (("fn", "submitUpdate"),))] > 0
    assert client[("fedchain_fees_eth_total", (("fn", "submitUpdate"),))] > 0
    assert org_health["activity"] in ("done", "waiting for updates")
    assert client_health["activity"] == "submitted round 2"

    assert code == 0
    html = (out / "report.html").read_text()
    for name in names.values():
        assert name in html
    assert "Per-class accuracy" in html and "initial" in html
    doc = json.loads((out / "summary.json").read_text())
    summary = doc["summary"]
    assert summary["rounds_closed"] == 2 and summary["headline"] == "accuracy"
    assert summary["baseline"] is not None and summary["final"] > summary["baseline"]
    assert summary["total_gas"] > 0 and doc["problems"] == []
    rounds = doc["rounds"]
    assert all(r["gas"]["org"] > 0 and r["gas"]["clients"] > 0 for r in rounds)
    assert all(r["bytes_moved"] and r["wall_s"] is not None for r in rounds)
    pngs = {p.name for p in (out / "plots").glob("*.png")}
    assert {"headline.png", "per_class.png", "gas.png", "participation.png"} <= pngs
