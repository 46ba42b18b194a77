"""Shared set-up of a daemon's I/O: web3, state store, chain identity, tailer, HTTP endpoint."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
from eth_account.signers.local import LocalAccount
from web3 import AsyncHTTPProvider, AsyncWeb3

from contracts.binding import FederatedRounds
from contracts.events import ContractEvent
from daemons.chain.identity import check_identity
from daemons.chain.port import Web3Chain
from daemons.chain.sender import TxSender
from daemons.chain.store import StateStore
from daemons.chain.tailer import EventTailer
from daemons.ipfs.client import IpfsStorage
from daemons.ipfs.reach import Reachability
from daemons.runtime.compile_cache import cache_dir_for, enable_compile_cache
from daemons.runtime.config import DaemonConfig
from daemons.runtime.http import serve_forever
from daemons.runtime.keys import load_account
from daemons.runtime.metrics import Metrics
from daemons.runtime.monitor import count_rpc_errors, take_sample, watch
from daemons.runtime.service import TaskFactory, log_event, race, report_crash, sd_notify, supervise
from daemons.runtime.startup import check_config

log = logging.getLogger("fedchain.service")


@dataclass
class Node:
    """The pieces every daemon has: its config, web3, durable state and metrics."""

    cfg: DaemonConfig
    w3: AsyncWeb3[Any]
    store: StateStore
    metrics: Metrics


async def run_daemon(cfg: DaemonConfig, main: Callable[[Node, Any], Awaitable[None]]) -> int:
    """Load the key, open the node, run `main(node, account)` supervised; return the exit code.

    SIGTERM/SIGINT give 0, a crash non-zero; set-up failures get the same exit-code mapping.
    """
    svc = cfg.service
    if svc.compile_cache:  # before anything compiles (docs/daemons.md, "First round")
        enable_compile_cache(cache_dir_for(svc.state_dir, svc.compile_cache_dir))
    check_config(cfg)  # registries: model, strategy and its options (exit 2 on error)
    account = load_account(cfg.identity, source=cfg.path)
    node = open_node(cfg)
    session = await keep_alive(node.w3)
    try:
        return await supervise([lambda: main(node, account)], name=cfg.role, ready=False)
    except Exception as exc:
        return report_crash(cfg.role, exc)
    finally:
        await session.close()
        node.store.close()


def open_node(cfg: DaemonConfig) -> Node:
    """Connect web3 and open `<state_dir>/<role>.sqlite`."""
    w3 = AsyncWeb3(AsyncHTTPProvider(cfg.chain.rpc_url, request_kwargs={"timeout": 30}))
    store = StateStore(Path(cfg.service.state_dir) / f"{cfg.role}.sqlite")
    metrics = Metrics(cfg.role)
    count_rpc_errors(w3, metrics)
    return Node(cfg, w3, store, metrics)


async def keep_alive(w3: AsyncWeb3[Any]) -> aiohttp.ClientSession:
    """Give web3's HTTP provider a pooled session and return it (the caller closes it).

    web3's own session opens a new TCP (and, against an https RPC, TLS) connection for every
    request. Idle connections are closed after 15 s, before common servers' keep-alive
    timeouts; a connection the server closed anyway fails as `NodeUnreachable`, retried.
    """
    session = aiohttp.ClientSession(
        raise_for_status=True, connector=aiohttp.TCPConnector(keepalive_timeout=15)
    )
    provider = w3.provider
    assert isinstance(provider, AsyncHTTPProvider)
    await provider.cache_async_session(session)
    return session


async def check_chain(node: Node) -> None:
    """Stop with `ChainResetError` if the node is not the chain the state dir was built on."""
    contract = node.cfg.chain.contract or node.store.contract()
    await check_identity(node.w3, node.store, contract)


def tx_sender(binding: FederatedRounds, account: LocalAccount, node: Node) -> TxSender:
    """The outbox for `account`, with [chain]'s fee policy."""
    chain = node.cfg.chain
    return TxSender(
        binding,
        account,
        node.store,
        bump_after_s=chain.fee_bump_after_s,
        max_fee_wei=int(chain.max_fee_gwei * 10**9),
    )


def make_tailer(
    node: Node, address: str, event_types: tuple[type[ContractEvent], ...] | None = None
) -> EventTailer:
    """An event tailer for `address` configured from [chain] (only `event_types`, if given)."""
    chain = node.cfg.chain
    return EventTailer(
        node.w3,
        address,
        node.store,
        confirmations=chain.confirmations,
        chunk_blocks=chain.log_chunk_blocks,
        poll_interval_s=chain.poll_interval_s,
        ws_url=chain.ws_url or None,
        event_types=event_types,
    )


def reachability(node: Node, storage: Any) -> Reachability:
    """Chain + IPFS probes for /healthz, READY and the IPFS outage bound ([ipfs], [service])."""
    cfg = node.cfg

    async def chain() -> None:
        await node.w3.eth.block_number

    return Reachability(
        chain,
        storage.node_id,
        cfg.ipfs.api_url,
        cfg.service.probe_interval_s,
        cfg.ipfs.unreachable_exit_s,
    )


def ready_task(reach: Reachability, announce: Callable[[], None]) -> TaskFactory:
    """A task that sends READY=1 (and runs `announce`) after the first IPFS call succeeds."""

    async def ready() -> None:
        await reach.ipfs_ready.wait()
        sd_notify("READY=1")
        announce()
        await asyncio.Event().wait()  # stay: `race` ends when any task returns

    return ready


def http_task(node: Node, health: Callable[[], dict[str, Any]]) -> list[TaskFactory]:
    """The /healthz + /metrics server task if [service].health_port is set, else nothing."""
    svc = node.cfg.service
    if not svc.health_port:
        return []

    def bound(port: int) -> None:
        log_event(log, logging.INFO, "health endpoint up", url=f"http://{svc.health_host}:{port}")

    async def serve() -> None:
        path = node.cfg.path
        await serve_forever(node.metrics, health, svc.health_host, svc.health_port, bound, path)

    return [serve]


def monitor_task(node: Node, address: str) -> list[TaskFactory]:
    """The periodic sampler of head, lag, pending txs and balance (warns when funds run low)."""

    async def run() -> None:
        sample = lambda: take_sample(node.w3, node.store, address)  # noqa: E731
        await watch(sample, node.metrics, node.cfg.chain.low_balance_eth)

    return [run]


async def run_tasks(
    node: Node,
    address: str,
    reach: Reachability,
    work: list[TaskFactory],
    health: Callable[[], dict[str, Any]],
    announce: Callable[[], None],
) -> None:
    """Run a daemon's `work` beside what every daemon runs (the reachability probes, READY
    once IPFS answered, /healthz + /metrics, the monitor of `address`) until the first
    returns or one raises."""
    tasks = [*work, reach.run, ready_task(reach, announce), *http_task(node, health)]
    tasks += monitor_task(node, address)
    await race(tasks, name=node.cfg.role)


def web3_chain(binding: FederatedRounds, account: LocalAccount, node: Node) -> Web3Chain:
    """The daemon's `Chain`: its outbox, with every mined tx's gas counted in its metrics."""
    sender = tx_sender(binding, account, node)
    return Web3Chain(binding, sender, account.address, node.metrics.observe_receipt)


def open_storage(node: Node) -> IpfsStorage:
    """The daemon's IPFS client ([ipfs]), counting failed API calls in its metrics."""
    ipfs = node.cfg.ipfs
    storage = IpfsStorage(ipfs.api_url, chunk_size=ipfs.chunk_bytes)
    storage.on_error = lambda kind: node.metrics.ipfs_errors.labels(kind=kind).inc()
    return storage
