"""Faults around the daemons: a client killed mid-round, a late client, malformed updates,
and a chain restarted without its state. Real anvil, IPFS node and daemon processes."""

from __future__ import annotations

import asyncio
import hashlib
from pathlib import Path

import jax
import numpy as np
import pytest

from contracts.state import RoundStatus
from daemons.ipfs.blobs import raw_cid_digest
from daemons.ipfs.client import IpfsStorage
from daemons.wire.manifest import decode_manifest
from models.codec import BlobMetadata, decode_blob, encode_blob
from tests.integration.harness import (
    Federation,
    messages,
    notifications,
    notify_socket,
    restart_chain_fresh,
)

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]


async def manifest_of(fed: Federation, cid: str) -> object:
    digest = raw_cid_digest(cid)
    assert digest is not None
    async with IpfsStorage(fed.ipfs.api_url) as storage:  # type: ignore[union-attr]
        return decode_manifest(await storage.get(cid, digest, 1 << 20, 20))


async def test_killed_client_and_late_client(tmp_path: Path, fed_data: dict[str, Path]) -> None:
    """The round closes at the deadline with the live client; the late one is refused."""
    async with Federation(
        tmp_path,
        fed_data,
        rounds=1,
        round_duration_s=30,
        block_time_s=1,
        org_options={"exit_when_done": True},
    ) as fed:
        assert fed.org is not None
        on_time, killed, late = fed.clients
        fed.org.start()
        on_time.start()
        killed.start(FEDCHAIN_SUBMIT_DELAY_S="120")
        late.start(FEDCHAIN_SUBMIT_DELAY_S="35")
        await fed.wait_open(1)

        async def training() -> bool:
            return "training" in messages(killed)

        await fed.wait_for("the doomed client to start training", training, 90)
        killed.kill9()
        info = await fed.wait_settled(1, timeout_s=90)
        assert info.status is RoundStatus.CLOSED and info.num_updates == 1
        manifest = await manifest_of(fed, info.manifest_cid)
        assert [i.client for i in manifest.included] == [fed.accounts[1].address]  # type: ignore[attr-defined]
        assert fed.org.wait(30) == 0

        async def refused() -> bool:
            return any("submission refused by the contract" in m for m in messages(late))

        await fed.wait_for("the late client's refusal", refused, 60)
        line = next(m for m in messages(late) if "submission refused" in m)
        assert "(too late)" in line
        await asyncio.sleep(1)
        assert late.running(), "a refused submission must not stop the client"
        assert late.terminate() == 0


async def test_malformed_updates_rejected(tmp_path: Path, fed_data: dict[str, Path]) -> None:
    """NaN, wrong shape, oversize, wrong round: rejected with reasons; the round completes."""
    async with Federation(
        tmp_path,
        fed_data,
        num_clients=1,
        extra_clients=4,
        rounds=1,
        max_updates=5,
        org_options={"exit_when_done": True, "max_blob_bytes": 200_000},
    ) as fed:
        assert fed.org is not None and fed.contract is not None
        fed.start_all()
        info = await fed.wait_open(1)
        async with IpfsStorage(fed.ipfs.api_url) as storage:  # type: ignore[union-attr]
            base = decode_blob(await storage.get(info.base_cid, info.base_digest, 1 << 20, 20))
            params = base.sections["params"]
            crafted = _crafted(params, info.base_cid, [a.address for a in fed.accounts[2:6]])
            for account, blob in zip(fed.accounts[2:6], crafted.values(), strict=True):
                stored = await storage.put(blob)
                await fed.contract.submit_update(account, 1, stored.cid, stored.digest, 300)
        settled = await fed.wait_settled(1, timeout_s=120)
        assert settled.status is RoundStatus.CLOSED and settled.num_updates == 5
        manifest = await manifest_of(fed, settled.manifest_cid)
        assert [i.client for i in manifest.included] == [fed.accounts[1].address]  # type: ignore[attr-defined]
        reasons = {e.client: e.reason for e in manifest.excluded}  # type: ignore[attr-defined]
        expected = dict(zip([a.address for a in fed.accounts[2:6]], crafted, strict=True))
        assert reasons == expected
        assert fed.org.wait(30) == 0


def _crafted(params: dict, base_cid: str, clients: list[str]) -> dict[str, bytes]:
    """One malformed update per rejection reason, keyed by the reason the org must give."""
    ones = jax.tree_util.tree_map(np.ones_like, params)

    def meta(client: str, round_id: int = 1) -> BlobMetadata:
        return BlobMetadata("update", round_id, client, base_cid, 300, "logreg")

    nan = jax.tree_util.tree_map(lambda a: np.full_like(a, np.nan), params)
    wide = jax.tree_util.tree_map(
        lambda a: np.zeros((*a.shape[:-1], a.shape[-1] + 1), np.float32), params
    )
    big = {**params, "padding": np.zeros(100_000, np.float32)}
    return {
        "non_finite": encode_blob({"params": nan, "fisher": ones}, meta(clients[0])),
        "shape": encode_blob({"params": wide, "fisher": ones}, meta(clients[1])),
        "too_large": encode_blob({"params": big, "fisher": ones}, meta(clients[2])),
        "metadata": encode_blob({"params": params, "fisher": ones}, meta(clients[3], 2)),
    }


async def test_chain_reset_stops_both_daemons(tmp_path: Path, fed_data: dict[str, Path]) -> None:
    """Also: sd_notify READY/STOPPING, /healthz, /metrics and SIGTERM -> exit 0 on the way."""
    notify = notify_socket(tmp_path / "notify.sock")
    async with Federation(tmp_path, fed_data, num_clients=1, max_updates=1, rounds=5) as fed:
        assert fed.org is not None
        fed.org.start(NOTIFY_SOCKET=str(tmp_path / "notify.sock"))
        fed.clients[0].start()
        await fed.wait_settled(1, timeout_s=120)
        assert notifications(notify) == ["READY=1"]

        async def logged_close() -> bool:
            return "round closed" in messages(fed.org)  # type: ignore[arg-type]

        await fed.wait_for("the org to log the close", logged_close, 30)
        await _check_http(fed)
        assert fed.org.terminate() == 0, "SIGTERM must exit 0"
        assert notifications(notify) == ["STOPPING=1"]
        notify.close()
        assert fed.clients[0].terminate() == 0
        restart_chain_fresh(fed)
        fed.start_all()
        for daemon in fed.daemons():
            assert daemon.wait(60) == 3, f"{daemon.name} should exit 3 (chain reset)"
            assert any("chain was reset" in m for m in messages(daemon)), daemon.name


def test_crafted_blobs_differ() -> None:
    """Guard for the test above: the crafted blobs really are distinct and decodable."""
    params = {"w": np.zeros((4, 3), np.float32), "b": np.zeros(3, np.float32)}
    blobs = _crafted(params, "bafy", ["0x" + "1" * 40] * 4)
    assert len({hashlib.sha256(b).digest() for b in blobs.values()}) == 4
    assert len(blobs["too_large"]) > 200_000


async def _check_http(fed: Federation) -> None:
    """/healthz and /metrics of the running org and client."""
    import aiohttp

    async with aiohttp.ClientSession() as http:
        org = f"http://127.0.0.1:{fed.health_ports['org']}"
        async with http.get(f"{org}/healthz") as resp:
            health = await resp.json()
        async with http.get(f"{org}/metrics") as resp:
            text = await resp.text()
        client = f"http://127.0.0.1:{fed.health_ports['client-0']}"
        async with http.get(f"{client}/metrics") as resp:
            client_text = await resp.text()
    assert health["status"] == "ok" and health["role"] == "org" and health["round_id"] >= 1
    org_values, client_values = _samples(text), _samples(client_text)
    assert org_values['fedchain_rounds_total{outcome="closed"}'] >= 1
    assert org_values["fedchain_updates_accepted_total"] >= 1
    assert org_values['fedchain_bytes_total{direction="in"}'] > 0
    assert org_values["fedchain_aggregate_seconds_count"] >= 1
    assert client_values["fedchain_train_seconds_count"] >= 1


def _samples(exposition: str) -> dict[str, float]:
    """`name{labels}` -> value from the Prometheus text format (the daemons go on running)."""
    out = {}
    for line in exposition.splitlines():
        if line and not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            out[name] = float(value)
    return out
