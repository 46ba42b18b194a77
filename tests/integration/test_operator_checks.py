"""What an operator sees when the set-up is wrong (issue #10 §4), with real processes:
an org with no clients, a chain that makes no blocks, an unregistered client, IPFS down."""

from __future__ import annotations

import asyncio
import contextlib
import time
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from contracts.state import RoundStatus
from daemons.ipfs.bundled import BundledIpfsNode
from tests.integration.harness import Daemon, Federation, messages, notifications, notify_socket

pytestmark = pytest.mark.timeout(400)


def warnings(daemon: Daemon) -> list[str]:
    return [str(r.get("msg", "")) for r in daemon.records() if r.get("level") == "warning"]


async def test_no_clients_and_no_blocks_are_warned_about(
    tmp_path: Path, fed_data: dict[str, Path]
) -> None:
    # plain anvil (automine): after openRound no transaction comes, so no block comes either
    async with Federation(
        tmp_path,
        fed_data,
        num_clients=0,
        round_duration_s=3,
        chain_options={"no_block_warn_s": 2},
    ) as fed:
        assert fed.org is not None
        fed.org.start()
        opened = await fed.wait_open(1, timeout_s=120)
        assert opened.status is RoundStatus.OPEN

        async def stalled() -> bool:
            return any("no new block" in m for m in warnings(fed.org))  # type: ignore[arg-type]

        await fed.wait_for("the no-block warning", stalled, 60)
        said = warnings(fed.org)
        assert any(m.startswith("no clients") for m in said), said
        stall = next(m for m in said if "no new block" in m)
        assert "--block-time" in stall and "block time" in stall
        assert (await fed.round(1)).status is RoundStatus.OPEN  # type: ignore[union-attr]


async def test_an_unregistered_client_waits_without_training(
    tmp_path: Path, fed_data: dict[str, Path]
) -> None:
    async with Federation(tmp_path, fed_data, num_clients=1, max_updates=2) as fed:
        assert fed.org is not None and fed.contract is not None
        outsider = fed._daemon("client-4", "client", 5)  # dev account 5: never registered
        fed.clients.append(outsider)  # so teardown kills it and prints its log
        fed.org.start()
        outsider.start()
        await fed.wait_open(1, timeout_s=120)

        async def told() -> bool:
            return any("not a registered client" in m for m in warnings(outsider))

        await fed.wait_for("the unregistered client's warning", told, 90)
        await asyncio.sleep(3)  # round 1 is open: a client that trains would do so now
        said = messages(outsider)
        assert not any(m == "training" or "submitted" in m for m in said), said
        address = fed.accounts[5].address
        assert not await fed.contract.has_submitted(1, address)
        await fed.contract.add_client(fed.accounts[0], address)  # now the org registers it

        async def submitted() -> bool:
            return bool(await fed.contract.has_submitted(1, address))  # type: ignore[union-attr]

        await fed.wait_for("the client to submit once registered", submitted, 120)
        assert "registered as a client" in messages(outsider)


async def healthz(port: int) -> tuple[int, dict[str, Any]]:
    url = f"http://127.0.0.1:{port}/healthz"
    async with aiohttp.ClientSession() as http, http.get(url) as resp:
        return resp.status, await resp.json()


async def test_ipfs_down_is_reported_then_ends_the_daemons(
    tmp_path: Path, fed_data: dict[str, Path]
) -> None:
    async with Federation(
        tmp_path,
        fed_data,
        num_clients=1,
        max_updates=1,
        rounds=5,
        ipfs_options={"unreachable_exit_s": 8},
        service_options={"probe_interval_s": 0.5},
    ) as fed:
        assert fed.org is not None and fed.ipfs is not None
        fed.start_all()
        await fed.wait_settled(1, timeout_s=180)
        for name in ("org", "client-0"):
            status, doc = await healthz(fed.health_ports[name])
            assert (status, doc["status"], doc["ipfs"], doc["chain"]) == (200, "ok", "ok", "ok")
        api_port = int(fed.ipfs.api_url.rsplit(":", 1)[1])  # to bring it back on the same port
        fed.ipfs.stop()  # the IPFS node goes away under both running daemons
        await asyncio.sleep(2)
        for name in ("org", "client-0"):
            status, doc = await healthz(fed.health_ports[name])
            assert (status, doc["status"], doc["ipfs"]) == (503, "degraded", "unreachable"), doc
        for daemon in fed.daemons():
            code = await asyncio.to_thread(daemon.wait, 60)
            assert code not in (0, None), f"{daemon.name} must exit non-zero, got {code}"
            assert any("unreachable_exit_s" in m for m in messages(daemon)), daemon.name

        # a client started while IPFS is down is not ready, and says so, until IPFS answers
        sock_path = tmp_path / "notify.sock"
        notify = notify_socket(sock_path)
        client = fed.clients[0]
        text = client.config.read_text()  # time enough to bring IPFS back:
        client.config.write_text(text.replace("unreachable_exit_s = 8", "unreachable_exit_s = 300"))
        client.start(NOTIFY_SOCKET=str(sock_path))
        started = time.monotonic()
        doc: dict[str, Any] = {}
        while time.monotonic() - started < 60:
            with contextlib.suppress(aiohttp.ClientError):
                status, doc = await healthz(fed.health_ports["client-0"])
                if doc.get("ipfs") == "unreachable":
                    break
            await asyncio.sleep(0.5)
        assert (status, doc.get("status")) == (503, "starting"), doc
        assert "READY=1" not in notifications(notify)
        fed.ipfs = BundledIpfsNode(tmp_path / "ipfs", api_port=api_port, log_path=tmp_path / "i2")
        fed.ipfs.start()
        got: list[str] = []
        for _ in range(120):
            got += notifications(notify)
            if "READY=1" in got:
                break
            await asyncio.sleep(0.5)
        assert "READY=1" in got and client.running()
        status, doc = await healthz(fed.health_ports["client-0"])
        assert (status, doc["status"], doc["ipfs"]) == (200, "ok", "ok"), doc
        notify.close()
