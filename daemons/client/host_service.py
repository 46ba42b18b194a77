"""`fedchain client-host run`: many clients in one process, sharing what can be shared.

Each client is the client daemon's own `ClientRounds` over its own key and `TxSender`
(nonces), its own `StateStore` (cursor, handled events, outbox, update state) and blob cache
in its own state dir, and its own data. Shared: one web3 connection, one event tailer (the
host's cursor in `<host state_dir>/host.sqlite`), one IPFS client, one JAX runtime, and the
training of a round (`BatchTrainer`: one after another on a CPU, one vmapped call where
the clients' shapes agree on an accelerator; `[host] training`).

Crash safety: the tailer hands a `RoundOpened` to every client whose own store has not
recorded it as handled; each client records it (with its own cursor) when its handler is
done, and the host's cursor moves only after all have. A `kill -9` at any point replays the
event to the clients that had not finished; their handler is the single client's, safe to
run twice (it re-reads the contract, keeps the encoded update, signs each submit once).
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from contracts.binding import FederatedRounds
from contracts.events import ContractEvent, RoundClosed, RoundOpened, event_key
from daemons.chain.store import Cursor, StateStore
from daemons.client.host_config import HostConfig
from daemons.client.host_rounds import HostedRounds, SharedBases
from daemons.client.host_storage import SharedStorage
from daemons.client.host_train import BatchTrainer
from daemons.client.rounds import ClientRounds
from daemons.ipfs.blobs import BlobCache
from daemons.privacy.keys import load_member_key
from daemons.runtime.config import DaemonConfig
from daemons.runtime.keys import load_account
from daemons.runtime.metrics import Metrics
from daemons.runtime.service import log_event, race, report_crash, supervise
from daemons.runtime.startup import Registration, load_data
from daemons.runtime.task_setup import load_task
from daemons.runtime.wiring import (
    Node,
    check_chain,
    http_task,
    keep_alive,
    make_tailer,
    open_node,
    open_storage,
    reachability,
    ready_task,
    web3_chain,
)

log = logging.getLogger("fedchain.client.host")


@dataclass
class HostedClient:
    """One client of the host: its node (shared web3, own store and metrics) and rounds."""

    name: str
    node: Node
    account: Any
    rounds: ClientRounds | None = None
    registration: Registration | None = None


def host_node_config(host: HostConfig) -> DaemonConfig:
    """The host's own node config: the first client's chain and IPFS, the host's service."""
    first = host.clients[0]
    service = dataclasses.replace(
        first.service,
        state_dir=host.state_dir,
        health_host=host.health_host,
        health_port=host.health_port,
        log_format=host.log_format,
    )
    return dataclasses.replace(first, path=host.path, service=service)


async def run_host(host: HostConfig) -> int:
    """Run every client of `host` until SIGTERM/SIGINT (exit 0) or a crash (non-zero)."""
    accounts = [load_account(c.identity, source=c.path) for c in host.clients]
    node = open_node(host_node_config(host))  # the one web3 connection and the host cursor
    clients = [
        HostedClient(
            Path(c.path).stem,
            Node(
                c,
                node.w3,
                StateStore(Path(c.service.state_dir) / "client.sqlite"),
                Metrics("client"),
            ),
            account,
        )
        for c, account in zip(host.clients, accounts, strict=True)
    ]
    session = await keep_alive(node.w3)
    try:
        return await supervise(
            [lambda: _main(host, node, clients)], name="client-host", ready=False
        )
    except Exception as exc:
        return report_crash("client-host", exc)
    finally:
        await session.close()
        for c in clients:
            c.node.store.close()
        node.store.close()


async def _main(host: HostConfig, node: Node, clients: list[HostedClient]) -> None:
    cfg = node.cfg
    log_event(
        log, logging.INFO, "client host starting", clients=len(clients), rpc=cfg.chain.rpc_url
    )
    datasets = await asyncio.to_thread(_load_datasets, clients)
    await check_chain(node)
    await asyncio.gather(*(check_chain(c.node) for c in clients))  # each state dir's chain
    binding = FederatedRounds(node.w3, cfg.chain.contract)
    trainer = BatchTrainer(host.gather_s, host.training)
    bases = SharedBases()
    async with open_storage(node) as ipfs:
        storage = SharedStorage(ipfs)
        for c, data in zip(clients, datasets, strict=True):
            c.registration = Registration(binding.is_client, c.account.address)
            chain = web3_chain(binding, c.account, c.node)
            cache = BlobCache(f"{c.node.cfg.service.state_dir}/blobs")
            member_key = load_member_key(c.node.cfg.encryption, source=c.node.cfg.path)
            c.rounds = HostedRounds(
                c.node.cfg, chain, storage, c.node.store, cache, data, c.node.metrics, member_key
            )
            c.rounds.bases = bases
            c.rounds.trainer = trainer.train
        # as the single client: RoundClosed starts fetching the next base (client/prefetch.py)
        tailer = make_tailer(node, binding.address, (RoundOpened, RoundClosed))
        reach = reachability(node, storage)

        async def on_event(event: ContractEvent) -> None:
            node.metrics.last_block.set(event.meta.block_number)
            if isinstance(event, RoundClosed):
                for c in clients:  # one fetch over IPFS: SharedStorage joins the others to it
                    if c.rounds is not None:
                        c.rounds.on_round_closed(event)
            elif isinstance(event, RoundOpened):
                await dispatch(clients, trainer, event)

        async def tail() -> None:
            interval = max(cfg.chain.poll_interval_s, 1.0)
            await asyncio.gather(
                *(c.registration.wait(binding.address, interval) for c in clients if c.registration)
            )
            await reach.ipfs_ready.wait()
            await tailer.run(on_event)

        def health() -> dict[str, Any]:
            rounds = [c.rounds for c in clients if c.rounds is not None]
            activities: dict[str, int] = {}
            for r in rounds:
                activities[r.activity] = activities.get(r.activity, 0) + 1
            doc = {"round_id": max((r.round_id for r in rounds), default=0), **reach.health()}
            doc["clients"] = len(clients)
            doc["activity"] = ", ".join(f"{n}× {a}" for a, n in sorted(activities.items()))
            doc["batches"] = trainer.batches
            registered = all(
                c.registration is not None and c.registration.registered for c in clients
            )
            return doc | {"registered": registered}

        def announce() -> None:
            log_event(
                log,
                logging.INFO,
                "client host ready",
                contract=binding.address,
                clients=len(clients),
            )

        tasks = [tail, reach.run, ready_task(reach, announce), *http_task(node, health)]
        await race(tasks, name="client-host")


def _load_datasets(clients: list[HostedClient]) -> list[Any]:
    """Each client's task and local data (a ConfigError naming the client's file)."""
    out = []
    for c in clients:
        cfg = c.node.cfg
        assert cfg.data is not None
        task = load_task(cfg.data.task, "", f"{cfg.path}: data.task")
        out.append(load_data(cfg.path, "data.path", cfg.data.path, task))
    return out


async def dispatch(clients: list[HostedClient], trainer: BatchTrainer, event: RoundOpened) -> None:
    """Hand `event` to every client that has not handled it; they train in one batch."""
    key = event_key(event)
    cursor = Cursor(event.meta.block_number, event.meta.block_hash)
    todo = [c for c in clients if c.rounds is not None and not c.node.store.is_handled(key)]
    trainer.begin(len(todo))

    async def one(c: HostedClient) -> None:
        assert c.rounds is not None
        try:
            await c.rounds.on_round_opened(event)
        finally:
            trainer.finished()
        c.node.store.advance(cursor, (key,))  # this client is done with the event

    # every client runs to its end: a failed one (e.g. an IPFS timeout) fails alone, and the
    # tailer's retry hands the event again only to the clients that did not record it
    results = await asyncio.gather(*(one(c) for c in todo), return_exceptions=True)
    failed = [(c, r) for c, r in zip(todo, results, strict=True) if isinstance(r, BaseException)]
    for c, exc in failed:
        log_event(log, logging.WARNING, "client failed on the event", client=c.name, error=str(exc))
    if failed:
        raise failed[0][1]
