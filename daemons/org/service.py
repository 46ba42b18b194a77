"""`fedchain org run`: the org daemon as an event-driven asyncio service.

Two tasks: the event tailer records `UpdateSubmitted` facts and rings a bell; the driver
re-reads the chain and steps the round protocol on every bell and every `poll_interval_s`
(no event arrives when a deadline passes, so deadlines need the periodic check).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from contracts.binding import FederatedRounds
from contracts.errors import ContractPaused
from contracts.events import ContractEvent, RoundClosed, RoundOpened, UpdateSubmitted
from daemons.chain.backoff import Backoff, retry
from daemons.ipfs.blobs import BlobCache
from daemons.org.bootstrap import attach_or_deploy, register_clients
from daemons.org.decide import Action, Decision
from daemons.org.ledger import Ledger, Submission
from daemons.org.models_seal import org_models
from daemons.org.parts import OrgParts
from daemons.org.privacy import OrgPrivacy, load_secret
from daemons.org.rounds import OrgRounds
from daemons.org.warmup import OrgWarmup
from daemons.privacy.keys import load_update_key, public_hex
from daemons.runtime.config import DaemonConfig
from daemons.runtime.service import log_event
from daemons.runtime.startup import load_data, no_clients_warning, registered_clients
from daemons.runtime.task_setup import ledger_sets, org_task
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

log = logging.getLogger("fedchain.org")
FOREVER = Backoff(attempts=None, base_s=0.2, max_s=10.0)


async def run_org(cfg: DaemonConfig) -> int:
    """Run the org daemon until SIGTERM/SIGINT (0), done with exit_when_done (0), or a crash."""
    return await run_daemon(cfg, _main)


async def _main(node: Node, account: Any) -> None:
    cfg = node.cfg
    assert cfg.federation is not None and cfg.privacy is not None
    update_key = load_update_key(cfg.encryption, source=cfg.path)  # before any chain work
    secret = load_secret(cfg.privacy, source=cfg.path) if cfg.privacy.mode == "central" else None
    log_event(log, logging.INFO, "org starting", address=account.address, rpc=cfg.chain.rpc_url)
    if update_key is not None and cfg.encryption.updates == "encrypted":
        log_event(
            log,
            logging.INFO,
            "updates are sealed to this org's key",
            public_key=public_hex(update_key),
            auditors=len(cfg.encryption.auditors),
        )
    fed = cfg.federation
    task = await asyncio.to_thread(org_task, cfg)  # a bad task or strategy: exit 2, now
    where = "federation.eval_data"
    eval_data = await asyncio.to_thread(load_data, cfg.path, where, fed.eval_data, task.task, "org")
    configured = {  # the forgetting ledger's sets, loaded (and refused if bad) before the chain
        name: await asyncio.to_thread(
            load_data, cfg.path, f"federation.heldout_data.{name}", path, task.task, "org"
        )
        for name, path in sorted(fed.heldout_data.items())
    }
    heldout = await asyncio.to_thread(ledger_sets, task.task, configured, str(cfg.path))
    with_per_class = fed.per_class_metrics
    warmup = OrgWarmup(task.task, fed.seed, task.schema.fisher, eval_data, heldout, with_per_class)
    await check_chain(node)
    address = await attach_or_deploy(node, account)
    binding = FederatedRounds(node.w3, address)
    chain = web3_chain(binding, account, node)
    async with open_storage(node) as storage:
        await register_clients(chain, cfg.federation.clients)
        chain_id = await node.w3.eth.chain_id
        models = await org_models(cfg, chain, chain_id, address, update_key)  # bad card: exit 2
        warning = no_clients_warning(fed.clients, await registered_clients(node.w3, address))
        if warning is not None:
            log_event(log, logging.WARNING, warning, contract=address)
        cache = BlobCache(f"{cfg.service.state_dir}/blobs")
        privacy = OrgPrivacy(cfg.privacy, address, secret)
        ledger = Ledger(node.store)
        parts = OrgParts(
            cfg,
            chain,
            storage,
            ledger,
            cache,
            eval_data,
            node.metrics,
            update_key,
            task,
            privacy,
            heldout=heldout,
            models=models,
        )
        parts.warmup = warmup
        org = OrgRounds(parts)
        wake = asyncio.Event()
        tailer = make_tailer(node, address)

        async def on_event(event: ContractEvent) -> None:
            node.metrics.last_block.set(event.meta.block_number)
            if isinstance(event, UpdateSubmitted):
                org.record(event.round_id, _submission(event))
            if isinstance(event, UpdateSubmitted | RoundOpened | RoundClosed):
                wake.set()

        async def tail() -> None:
            await tailer.run(on_event)

        async def drive() -> None:
            await _drive(org, wake, cfg)

        reach = reachability(node, storage)
        health = lambda: {  # noqa: E731
            "round_id": org.round_id,
            "contract": address,
            "activity": org.activity,
            **reach.health(),
        }

        def announce() -> None:
            log_event(log, logging.INFO, "org ready", contract=address)

        try:
            await run_tasks(node, account.address, reach, [tail, drive], health, announce)
        finally:
            await org.prefetch.close()


async def _drive(org: OrgRounds, wake: asyncio.Event, cfg: DaemonConfig) -> None:
    """Step the protocol whenever woken or every poll interval; return when done (if asked)."""
    assert cfg.federation is not None
    announced = False
    while True:
        try:
            decision = await retry(org.run_until_idle, "org step", FOREVER)
        except ContractPaused:
            log_event(log, logging.WARNING, "contract is paused; waiting for unpause")
            await asyncio.sleep(max(cfg.chain.poll_interval_s, 2.0))
            continue
        if decision.action in (Action.DONE, Action.BUDGET):
            if not announced:
                _announce_end(decision, cfg.federation.rounds)
                announced = True
            if cfg.federation.exit_when_done:
                return
        await idle(wake, cfg.chain.poll_interval_s)


def _announce_end(decision: Decision, rounds: int) -> None:
    """Log once why the org opens no more rounds: all done, or the privacy budget is spent."""
    if decision.action is Action.BUDGET:
        why = decision.reason
        log_event(log, logging.WARNING, "federation stopped: privacy budget", reason=why)
    else:
        log_event(log, logging.INFO, "federation complete", rounds=rounds)


def _submission(event: UpdateSubmitted) -> Submission:
    return Submission(
        client=event.client,
        cid=event.update_cid,
        digest="0x" + event.digest.hex(),
        num_samples=event.num_samples,
    )


async def idle(wake: asyncio.Event, seconds: float) -> None:
    """Sleep until woken by an event or `seconds` pass (deadlines need a periodic check)."""
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(wake.wait(), seconds)
    wake.clear()
