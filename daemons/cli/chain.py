"""Read-only chain commands for `fedchain`: events, rounds, status (model: `cli_model`).

They need only RPC (and IPFS for `model get`) access: settings come from a daemon's TOML
config (`--config`, its [chain] and [ipfs] tables) with command-line overrides.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from web3 import AsyncHTTPProvider, AsyncWeb3

from contracts.binding import FederatedRounds
from contracts.errors import ContractError
from contracts.events import ContractEvent
from daemons.chain import history
from daemons.chain.backoff import Backoff
from daemons.chain.store import StateStore
from daemons.chain.tailer import EventTailer
from daemons.errors import ConfigError, FedchainError


@dataclass(frozen=True)
class Target:
    """Where the chain views look: node, contract, tailing settings, IPFS API."""

    rpc_url: str
    contract: str
    confirmations: int = 0
    chunk_blocks: int = 1000
    poll_interval_s: float = 0.5
    ws_url: str = ""
    ipfs_api: str = "http://127.0.0.1:5001"
    ipfs_timeout_s: float = 60.0
    max_blob_bytes: int = 64 * 1024 * 1024


def register(subparsers: Any) -> None:
    """Add `events`, `rounds` and `status` to the `fedchain` parser."""
    events = command(subparsers, "events", "print the contract's event log", _events)
    events.add_argument("--follow", "-f", action="store_true", help="keep tailing until Ctrl-C")
    events.add_argument("--json", action="store_true", help="JSON lines with every field")
    events.add_argument("--from-block", type=_non_negative, default=0, metavar="N")
    rounds = command(subparsers, "rounds", "round history, rebuilt from chain events", _rounds)
    rounds.add_argument("--json", action="store_true", help="JSON lines, one round per line")
    status = command(subparsers, "status", "chain id, head, contract, org, paused, round", _status)
    status.add_argument("--json", action="store_true", help="one JSON object")


def command(sub: Any, name: str, what: str, func: Any) -> argparse.ArgumentParser:
    """Add a chain-reading subcommand with `--config/--rpc-url/--contract`, run by `guarded`."""
    parser: argparse.ArgumentParser = sub.add_parser(
        name, help=what, description=what[0].upper() + what[1:] + "."
    )
    parser.add_argument("--config", "-c", metavar="FILE", help="a daemon TOML config")
    parser.add_argument("--rpc-url", help="JSON-RPC URL (overrides [chain] rpc_url)")
    parser.add_argument("--contract", help="contract address (overrides [chain] contract)")
    parser.set_defaults(func=lambda args: guarded(func, args))
    return parser


def _non_negative(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {value}")
    return value


def guarded(func: Any, args: argparse.Namespace) -> int:
    """Run one async command; expected failures become a one-line message and exit 1."""
    try:
        return int(asyncio.run(func(args, resolve_target(args))) or 0)
    except ConfigError:
        raise  # the main CLI prints it and exits 2
    except (FedchainError, ContractError) as exc:
        print(f"fedchain: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 0


def resolve_target(args: argparse.Namespace) -> Target:
    """Settings from `--config` (if given), then the command-line overrides."""
    values: dict[str, Any] = {"rpc_url": "http://127.0.0.1:8545", "contract": ""}
    if args.config:
        values.update(_from_config(Path(args.config)))
    if args.rpc_url:
        values["rpc_url"] = args.rpc_url
    if args.contract:
        values["contract"] = args.contract
    if getattr(args, "ipfs_api", None):
        values["ipfs_api"] = args.ipfs_api
    if not values["contract"]:
        where = f"{args.config} has no [chain] contract" if args.config else "no --config"
        raise ConfigError(
            f"no contract address ({where}); pass --contract 0x… or a --config whose "
            "[chain] contract is set (or whose state dir recorded one)"
        )
    if not AsyncWeb3.is_address(values["contract"]):
        raise ConfigError(f"--contract {values['contract']!r} is not an Ethereum address")
    return Target(**values)


def _from_config(path: Path) -> dict[str, Any]:
    """[chain] and [ipfs] settings of a validated org or client config."""
    from daemons.runtime.config import load_config

    try:
        raw = tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read config: {exc}") from None
    cfg = load_config(path, "org" if "federation" in raw else "client")
    chain, ipfs = cfg.chain, cfg.ipfs
    return {
        "rpc_url": chain.rpc_url,
        "contract": chain.contract or _recorded_contract(cfg.service.state_dir, cfg.role),
        "confirmations": chain.confirmations,
        "chunk_blocks": chain.log_chunk_blocks,
        "poll_interval_s": chain.poll_interval_s,
        "ws_url": chain.ws_url,
        "ipfs_api": ipfs.api_url,
        "ipfs_timeout_s": ipfs.timeout_s,
        "max_blob_bytes": ipfs.max_blob_bytes,
    }


def _recorded_contract(state_dir: str, role: str) -> str:
    """The contract a daemon recorded in its state (the org deploys when none is configured)."""
    path = Path(state_dir) / f"{role}.sqlite"
    if not path.exists():
        return ""
    with StateStore(path) as store:
        return store.contract() or ""


def connect(target: Target) -> tuple[AsyncWeb3[Any], FederatedRounds]:
    w3 = AsyncWeb3(AsyncHTTPProvider(target.rpc_url))
    return w3, FederatedRounds(w3, target.contract)


async def _events(args: argparse.Namespace, target: Target) -> int:
    """Print events from `--from-block`; with `--follow`, keep tailing."""
    w3, _ = connect(target)
    fmt = history.event_json if args.json else history.event_line

    async def show(event: ContractEvent) -> None:
        print(fmt(event), flush=True)

    try:
        with StateStore(":memory:") as store:
            tail = EventTailer(
                w3,
                target.contract,
                store,
                confirmations=target.confirmations,
                chunk_blocks=target.chunk_blocks,
                poll_interval_s=target.poll_interval_s,
                ws_url=target.ws_url or None,
                start_block=args.from_block,
                backoff=Backoff(attempts=3 if not args.follow else 30),
            )
            await (tail.run(show) if args.follow else tail.sync(show))
    finally:  # bounded: Ctrl-C must end the command even if the node is slow to hang up
        await asyncio.wait({asyncio.ensure_future(w3.provider.disconnect())}, timeout=5)
    return 0


async def all_events(w3: AsyncWeb3[Any], target: Target) -> list[ContractEvent]:
    found: list[ContractEvent] = []

    async def keep(event: ContractEvent) -> None:
        found.append(event)

    with StateStore(":memory:") as store:
        tail = EventTailer(w3, target.contract, store, chunk_blocks=target.chunk_blocks)
        await tail.sync(keep)
    return found


async def _rounds(args: argparse.Namespace, target: Target) -> int:
    """Print the round history table."""
    w3, _ = connect(target)
    try:
        rows = history.round_rows(await all_events(w3, target))
        now = int((await w3.eth.get_block("latest"))["timestamp"])
    finally:
        await w3.provider.disconnect()
    if args.json:
        for row in rows:
            print(json.dumps(history.round_json(row) | {"deadline_passed": _passed(row, now)}))
    else:
        print(history.rounds_table(rows, now) if rows else "no rounds opened yet")
    return 0


def _passed(row: history.RoundRow, now: int) -> bool:
    return row.state == "open" and now > row.deadline


async def _status(args: argparse.Namespace, target: Target) -> int:
    """Print chain and federation status."""
    w3, binding = connect(target)
    try:
        status = await history.fetch_status(binding)
    finally:
        await w3.provider.disconnect()
    if args.json:
        print(json.dumps(history.status_json(status)))
    else:
        print("\n".join(history.status_lines(status)))
    return 0
