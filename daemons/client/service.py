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
from contracts.events import ContractEvent, RoundClosed, RoundOpened
from daemons.client.rounds import ClientRounds
from daemons.client.warmup import start_warmup
from daemons.ipfs.blobs import BlobCache
from daemons.privacy.keys import load_member_key, public_hex
from daemons.runtime.config import DaemonConfig
from daemons.runtime.service import log_event
from daemons.runtime.startup import Registration, load_data
from daemons.runtime.task_setup import load_task
from daemons.runtime.wiring import (
    Node,
    check_chain,
    make_tailer,
    open_storage,
    reachability,
    run_daemon,
    run_tasks,
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
    member_key = load_member_key(cfg.encryption, source=cfg.path)  # opens sealed models
    if member_key is not None:
        log_event(log, logging.INFO, "member key loaded", public_key=public_hex(member_key))
    task = await asyncio.to_thread(load_task, cfg.data.task, "", f"{cfg.path}: data.task")
    data = await asyncio.to_thread(load_data, cfg.path, "data.path", cfg.data.path, task)
    warmup = start_warmup(cfg, node.store, data, account.address)  # compiles while we wait
    await check_chain(node)
    binding = FederatedRounds(node.w3, cfg.chain.contract)
    registration = Registration(binding.is_client, account.address)
    chain = web3_chain(binding, account, node)
    async with open_storage(node) as storage:
        cache = BlobCache(f"{cfg.service.state_dir}/blobs")
        rounds = ClientRounds(
            cfg, chain, storage, node.store, cache, data, node.metrics, member_key
        )
        rounds.warmup = warmup
        # no wake-up (and chain reads) for each other client's submitUpdate; RoundClosed
        # starts fetching the next round's base (client/prefetch.py)
        tailer = make_tailer(node, binding.address, (RoundOpened, RoundClosed))

        async def on_event(event: ContractEvent) -> None:
            node.metrics.last_block.set(event.meta.block_number)
            if isinstance(event, RoundClosed):
                rounds.on_round_closed(event)
            elif isinstance(event, RoundOpened):
                await rounds.on_round_opened(event)

        reach = reachability(node, storage)

        async def tail() -> None:
            # no training before the account is registered and IPFS has answered once
            await registration.wait(binding.address, max(cfg.chain.poll_interval_s, 1.0))
            await reach.ipfs_ready.wait()
            await tailer.run(on_event)

        def health() -> dict[str, Any]:
            doc = {"round_id": rounds.round_id, "samples": len(data), **reach.health()}
            doc["activity"] = rounds.activity
            return doc | {"registered": registration.registered}

        def announce() -> None:
            log_event(
                log, logging.INFO, "client ready", contract=binding.address, samples=len(data)
            )

        await run_tasks(node, account.address, reach, [tail], health, announce)
