"""`fedchain init`: a federation folder (org + N clients), or one client's folder for a partner.

What a new operator otherwise pieces together by hand (docs/deployment.md, "Walkthrough"):
a key per participant in an encrypted keystore, configs that point at the right chain,
contract and local IPFS node, the client allowlist, the IPFS swarm key of a private network,
and each client's share of a data set. Every config written here passes the daemons'
start-up validation.
"""

from __future__ import annotations

import argparse
import dataclasses
import getpass
import os
import shutil
import sys
from pathlib import Path
from typing import Any

from eth_utils import is_address, to_checksum_address

from daemons.cli.init_data import check_task, split_data
from daemons.cli.init_files import (
    KEYSTORE_FILE,
    ORG_COMMENTS,
    PASSWORD_ENV,
    SWARM_KEY_FILE,
    Endpoints,
    Participant,
    client_tables,
    new_keystore,
    org_tables,
    render,
)
from daemons.errors import ConfigError
from daemons.privacy.swarm_key import new_swarm_key, read_swarm_key, write_swarm_key
from daemons.runtime.config import TrainingConfig, load_config
from models import registry

ORG = "org"
ADDRESSES_FILE = "addresses.txt"


def register(subparsers: Any) -> None:
    """Add `fedchain init` to the `fedchain` parser."""
    p = subparsers.add_parser(
        "init",
        help="create a federation folder (org + clients) or one client's folder",
        description="Create DIR with an org config and --clients N client configs, each with "
        "an encrypted keystore holding a new key; or, with --client NAME, one client's folder "
        f"to hand to a partner. Keystore password: ${PASSWORD_ENV} (else a prompt).",
    )
    p.add_argument("dir", metavar="DIR", help="the folder to create (must not exist or be empty)")
    who = p.add_mutually_exclusive_group()
    who.add_argument("--clients", type=_count, default=2, metavar="N", help="clients (default 2)")
    who.add_argument("--client", metavar="NAME", help="only one client's folder DIR/NAME")
    p.add_argument(
        "--rpc-url",
        default="http://127.0.0.1:8545",
        help="the chain's JSON-RPC URL (default: %(default)s)",
    )
    p.add_argument("--ws-url", default="", help="optional websocket URL (new-block doorbell)")
    p.add_argument(
        "--contract",
        default="",
        help="an already deployed contract (default: where the org's new key deploys it)",
    )
    p.add_argument(
        "--ipfs-api",
        default="http://127.0.0.1:5001",
        help="each host's own IPFS RPC API (default: %(default)s)",
    )
    p.add_argument(
        "--state-root", default="", help="state dirs under ROOT/NAME (default: NAME/state)"
    )
    p.add_argument("--private", action="store_true", help="write a swarm key (private IPFS net)")
    p.add_argument("--swarm-key", metavar="FILE", help="with --client: the federation's swarm.key")
    p.add_argument(
        "--task",
        default=None,
        help=f"split this task's data set for the clients: {' | '.join(registry.TASKS)} or "
        f"package.module:attr (docs/tasks.md; default {registry.DEFAULT_TASK}, no split)",
    )
    p.add_argument("--data", metavar="SOURCE", help="the task's data set (Fashion-MNIST: IDX dir)")
    p.add_argument("--partition", choices=registry.PARTITIONS, default="iid", help="(iid)")
    p.add_argument("--samples-per-client", type=_count, default=0, metavar="N", help="0 = all")
    p.add_argument("--test-samples", type=_count, default=0, metavar="N", help="org's, 0 = all")
    fed = p.add_argument_group("federation plan (the org's [federation]; edit the file for more)")
    fed.add_argument("--rounds", type=_positive, default=5, help="(default: %(default)s)")
    fed.add_argument(
        "--round-duration-s", type=_positive, default=120, help="(default: %(default)s)"
    )
    fed.add_argument("--min-updates", type=_positive, default=1, help="(default: %(default)s)")
    fed.add_argument("--model", default="", help="the task's model (default: its first)")
    fed.add_argument("--seed", type=_count, default=0, help="model init and data split seed")
    p.set_defaults(func=run_init)


def _count(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {value}")
    return value


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def run_init(args: argparse.Namespace) -> int:
    """Check the arguments, create the folder, print who is who and what to do next."""
    root = Path(args.dir)
    _check_args(args, root)
    password = read_password()
    root.mkdir(parents=True, exist_ok=True)
    try:
        if args.client:
            people = [_make_client_only(args, root, password)]
        else:
            people = _make_federation(args, root, password)
    except BaseException:
        shutil.rmtree(root)  # it was absent or empty: leave nothing half-made behind
        raise
    (root / ADDRESSES_FILE).write_text("".join(f"{p.name} {p.address}\n" for p in people))
    for person in people:
        load_config(_config_path(person), person.role)  # what the daemons will check at start
    _print_summary(args, root, people)
    return 0


def _check_args(args: argparse.Namespace, root: Path) -> None:
    if root.exists() and (not root.is_dir() or any(root.iterdir())):
        raise ConfigError(f"{root} exists and is not an empty folder: pick a new DIR")
    if args.contract and not is_address(args.contract):
        raise ConfigError(f"--contract {args.contract!r} is not a 0x-prefixed 20-byte address")
    if args.client:
        if not args.contract:
            raise ConfigError("--client needs --contract (the org's printed contract address)")
        if args.swarm_key:
            read_swarm_key(Path(args.swarm_key))  # ConfigError naming the file if it is bad
    elif args.clients < 1:
        raise ConfigError("--clients must be >= 1 (add more later with `fedchain init --client`)")
    elif args.min_updates > args.clients:
        raise ConfigError(f"--min-updates {args.min_updates} > --clients {args.clients}")
    if args.data and not Path(args.data).exists():
        raise ConfigError(f"--data {args.data}: no such file or directory")
    if args.data or args.task:
        check_task(args.task or registry.DEFAULT_TASK, args.model)


def read_password(env: dict[str, str] | None = None) -> str:
    """The keystore password: $FEDCHAIN_KEYSTORE_PASSWORD, else asked twice on the terminal."""
    env = dict(os.environ) if env is None else env
    if PASSWORD_ENV in env:
        password = env[PASSWORD_ENV]
    elif sys.stdin.isatty():
        password = getpass.getpass("keystore password: ")
        if getpass.getpass("again: ") != password:
            raise ConfigError("the two passwords differ; run `fedchain init` again")
    else:
        raise ConfigError(f"no keystore password: set {PASSWORD_ENV} or run in a terminal")
    if not password:
        raise ConfigError(f"an empty keystore password protects nothing: set {PASSWORD_ENV}")
    return password


def _state_dir(args: argparse.Namespace, name: str) -> str:
    return str(Path(args.state_root) / name) if args.state_root else "state"


def _endpoints(args: argparse.Namespace, contract: str) -> Endpoints:
    return Endpoints(args.rpc_url, args.ws_url, contract, args.ipfs_api)


def _make_federation(args: argparse.Namespace, root: Path, password: str) -> list[Participant]:
    """Keys first (the contract address follows from the org's), then data, then configs."""
    from daemons.org.bootstrap import create_address

    org = Participant(ORG, "org", new_keystore(root / ORG / KEYSTORE_FILE, password), root / ORG)
    clients = [
        Participant(
            name, "client", new_keystore(root / name / KEYSTORE_FILE, password), root / name
        )
        for name in (f"client-{i}" for i in range(args.clients))
    ]
    # The org's first transaction from this fresh key deploys the contract: nonce 0.
    contract = (
        to_checksum_address(args.contract) if args.contract else create_address(org.address, 0)
    )
    if args.data or args.task:
        split_data(args, org, clients)
    if args.private:
        key = new_swarm_key()
        for person in (org, *clients):
            write_swarm_key(person.folder / "ipfs" / SWARM_KEY_FILE, key)
    _write_org(args, org, [c.address for c in clients], args.contract)
    for client in clients:
        _write_client(args, client, contract)
    return [org, *clients]


def _make_client_only(args: argparse.Namespace, root: Path, password: str) -> Participant:
    folder = root / args.client
    person = Participant(
        args.client, "client", new_keystore(folder / KEYSTORE_FILE, password), folder
    )
    if args.swarm_key:
        write_swarm_key(folder / "ipfs" / SWARM_KEY_FILE, read_swarm_key(Path(args.swarm_key)))
    if args.data or args.task:
        split_data(args, None, [person])
    _write_client(args, person, to_checksum_address(args.contract))
    return person


def _write_org(
    args: argparse.Namespace, org: Participant, clients: list[str], contract: str
) -> None:
    federation = {
        "rounds": args.rounds,
        "round_duration_s": args.round_duration_s,
        "min_updates": args.min_updates,
        "max_updates": len(clients),
        "task": args.task or registry.DEFAULT_TASK,
        "model": args.model,
        "seed": args.seed,
        "eval_data": "data/test.npz",
    }
    training = dataclasses.asdict(TrainingConfig())
    tables = org_tables(
        _endpoints(args, contract), _state_dir(args, org.name), clients, federation, training
    )
    header = f"fedchain org daemon ({org.address}): `fedchain org run --config org.toml`"
    _config_path(org).write_text(render(tables, header, ORG_COMMENTS))


def _write_client(args: argparse.Namespace, client: Participant, contract: str) -> None:
    tables = client_tables(
        _endpoints(args, contract), _state_dir(args, client.name), "data/train.npz"
    )
    header = f"fedchain client {client.name} ({client.address})\n"
    header += "run: `fedchain client run --config client.toml`"
    _config_path(client).write_text(render(tables, header))


def _config_path(person: Participant) -> Path:
    return person.folder / ("org.toml" if person.role == "org" else "client.toml")


def _print_summary(args: argparse.Namespace, root: Path, people: list[Participant]) -> None:
    for person in people:
        print(f"{person.name:10} {person.address}  {_config_path(person)}")
    if args.client:
        print(f"send {people[0].address} to the org: it runs `fedchain clients add ADDRESS`")
    elif not args.contract:
        contract = load_config(_config_path(people[1]), "client").chain.contract
        print(f"contract   {contract}  (the org deploys it on its first start)")
    if not args.data:
        print(
            "data: put each client's .npz at CLIENT/data/train.npz, the org's at org/data/test.npz"
        )
    print(f"fund every address with ETH for gas ({root / ADDRESSES_FILE})")
    print(f"the daemons read the keystore password from ${PASSWORD_ENV}")
