"""`fedchain clients add|remove|ls`: the client allowlist, on chain and in the org's config.

Both must change: the contract decides who may submit, and the org daemon re-registers every
client listed in its config at start (so a removal kept only on chain would be undone by
the next restart). The config is edited first, then the chain; both steps are idempotent,
so after a failure the same command is simply run again. The org daemon may keep running:
its outbox re-signs a stored transaction whose nonce this command took.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path
from typing import Any

from eth_utils import is_address, to_checksum_address
from web3 import AsyncHTTPProvider, AsyncWeb3

from contracts.binding import FederatedRounds
from contracts.errors import ContractError
from daemons.chain.store import StateStore
from daemons.errors import ConfigError, FedchainError
from daemons.runtime.config import DaemonConfig, load_config
from daemons.runtime.config_edit import read_clients, set_client


def register(subparsers: Any) -> None:
    """Add `clients add`, `clients remove` and `clients ls` to the `fedchain` parser."""
    group = subparsers.add_parser(
        "clients",
        help="the client allowlist (on chain and in the org config)",
        description="Change or show who may submit updates: on chain (signed with the org's "
        "key) and in the org config's [federation] clients.",
    )
    actions = group.add_subparsers(dest="action", metavar="ACTION", required=True)
    for name, what in (("add", "allow"), ("remove", "stop allowing")):
        p = actions.add_parser(
            name,
            help=f"{what} ADDRESS",
            description=f"{what.capitalize()} ADDRESS: on chain and in the org config.",
        )
        p.add_argument("address", metavar="ADDRESS", help="the client's 0x address")
        _config_arg(p)
        p.set_defaults(func=_run, present=name == "add")
    ls = actions.add_parser(
        "ls",
        help="the allowlist, config vs chain",
        description="List the clients of the org config and whether the contract allows each.",
    )
    _config_arg(ls)
    ls.set_defaults(func=_run_ls)


def _config_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", "-c", required=True, metavar="ORG_TOML", help="the org's config")


def _run(args: argparse.Namespace) -> int:
    if not is_address(args.address):
        raise ConfigError(f"{args.address!r} is not a 0x-prefixed 20-byte address")
    cfg = load_config(args.config, "org")
    return _guard(apply(cfg, to_checksum_address(args.address), args.present))


def _run_ls(args: argparse.Namespace) -> int:
    cfg = load_config(args.config, "org")
    return _guard(_list(cfg, read_clients(Path(args.config))))


def _guard(coro: Any) -> int:
    try:
        return int(asyncio.run(coro) or 0)
    except ConfigError:
        raise
    except (FedchainError, ContractError, OSError) as exc:
        print(f"fedchain: error: {exc}; run the command again", file=sys.stderr)
        return 1


async def apply(cfg: DaemonConfig, client: str, present: bool) -> int:
    """Check the key is the org's, edit the config, then send addClient/removeClient if needed."""
    from daemons.runtime.keys import load_account

    account = load_account(cfg.identity, source=cfg.path)
    w3 = AsyncWeb3(AsyncHTTPProvider(cfg.chain.rpc_url))
    try:
        binding = FederatedRounds(w3, contract_of(cfg))
        org = await binding.org()
        if org != account.address:
            raise ConfigError(
                f"{cfg.path}: its key {account.address} is not the contract's org {org}"
            )
        changed = set_client(Path(cfg.path), client, present)
        verb = "added to" if present else "removed from"
        print(f"{client} {verb} {cfg.path}" if changed else f"{cfg.path}: already so")
        if await binding.is_client(client) == present:
            print(f"contract {binding.address}: already so")
            return 0
        send = binding.add_client if present else binding.remove_client
        receipt = await send(account, client)
        tx_hash = receipt["transactionHash"].to_0x_hex()
        verb = "allows" if present else "no longer allows"
        print(f"contract {binding.address} {verb} {client} (tx {tx_hash})")
        return 0
    finally:
        await w3.provider.disconnect()


def contract_of(cfg: DaemonConfig) -> str:
    """[chain].contract, else the address the org recorded in its state dir when it deployed."""
    if cfg.chain.contract:
        return to_checksum_address(cfg.chain.contract)
    path = Path(cfg.service.state_dir) / "org.sqlite"
    if path.exists():
        with StateStore(path) as store:
            recorded = store.contract()
        if recorded:
            return recorded
    raise ConfigError(
        f"{cfg.path}: no contract yet: [chain] contract is empty and the org has not deployed "
        f"(start `fedchain org run --config {cfg.path}` once, or set [chain] contract)"
    )


async def _list(cfg: DaemonConfig, clients: list[str]) -> int:
    """Config clients with their on-chain state, then on-chain clients the config lacks."""
    w3 = AsyncWeb3(AsyncHTTPProvider(cfg.chain.rpc_url))
    try:
        binding = FederatedRounds(w3, contract_of(cfg))
        on_chain = await allowed_on_chain(w3, binding.address, cfg.chain.log_chunk_blocks)
        for client in clients:
            allowed = await binding.is_client(client)
            print(
                f"{client}  {'allowed' if allowed else 'NOT on chain (the org adds it at start)'}"
            )
        for client in sorted(on_chain - set(clients)):
            print(f"{client}  allowed on chain, NOT in {cfg.path}")
    finally:
        await w3.provider.disconnect()
    return 0


async def allowed_on_chain(w3: AsyncWeb3, contract: str, chunk_blocks: int) -> set[str]:
    """The allowlist replayed from ClientAdded/ClientRemoved events (the contract keeps no list)."""
    from contracts.events import ClientAdded, ClientRemoved
    from daemons.chain.tailer import EventTailer

    allowed: set[str] = set()

    async def apply_event(event: object) -> None:
        if isinstance(event, ClientAdded):
            allowed.add(to_checksum_address(event.client))
        elif isinstance(event, ClientRemoved):
            allowed.discard(to_checksum_address(event.client))

    with StateStore(":memory:") as store:
        await EventTailer(w3, contract, store, chunk_blocks=chunk_blocks).sync(apply_event)
    return allowed
