"""`fedchain client run`: the client daemon as an event-driven asyncio service.

The event tailer hands every `RoundOpened` to the round handler in chain order; the handler
trains in a worker thread, so the loop stays responsive (health endpoint, signals). The
local data never leaves this process: only the trained parameters and Fisher are published.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from contracts.binding import FederatedRounds
from contracts.events import ContractEvent, RoundOpened
from daemons.client.rounds import ClientRounds
from daemons.config import DaemonConfig
from daemons.ports import BlobCache
from daemons.service import log_event, race, sd_notify
from daemons.startup import load_data
from daemons.task_setup import load_task
from daemons.wiring import (
    Node,
    check_chain,
    http_task,
    make_tailer,
    monitor_task,
    open_storage,
    run_daemon,
    web3_chain,
)

log = logging.getLogger("fedchain.client")


async def run_client(cfg: DaemonConfig) -> int:
    """Run the client daemon until SIGTERM/SIGINT (exit 0) or a crash (non-zero)."""
    return await run_daemon(cfg, _main)


async def _main(node: Node, account: Any) -> None:
    cfg = node.cfg
    assert cfg.data is not None
    log_event(log, logging.INFO, "client starting", address=account.address, rpc=cfg.chain.rpc_url)
    task = await asyncio.to_thread(load_task, cfg.data.task, "", f"{cfg.path}: data.task")
    data = await asyncio.to_thread(load_data, cfg.path, "data.path", cfg.data.path, task)
    await check_chain(node)
    binding = FederatedRounds(node.w3, cfg.chain.contract)
    if not await binding.is_client(account.address):
        log_event(
            log,
            logging.WARNING,
            "this account is not (yet) a registered client",
            address=account.address,
        )
    chain = web3_chain(binding, account, node)
    async with open_storage(node) as storage:
        cache = BlobCache(f"{cfg.service.state_dir}/blobs")
        rounds = ClientRounds(cfg, chain, storage, node.store, cache, data, node.metrics)
        tailer = make_tailer(node, binding.address)

        async def on_event(event: ContractEvent) -> None:
            node.metrics.last_block.set(event.meta.block_number)
            if isinstance(event, RoundOpened):
                await rounds.on_round_opened(event)

        async def tail() -> None:
            await tailer.run(on_event)

        health = lambda: {  # noqa: E731
            "round_id": rounds.round_id,
            "samples": len(data),
            "activity": rounds.activity,
        }
        sd_notify("READY=1")
        log_event(log, logging.INFO, "client ready", contract=binding.address, samples=len(data))
        tasks = [tail, *http_task(node, health), *monitor_task(node, account.address)]
        await race(tasks, name="client")
