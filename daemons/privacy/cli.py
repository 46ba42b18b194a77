"""`fedchain keys encryption|swarm`: make an org/auditor X25519 key file or an IPFS swarm key."""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
from typing import Any

from daemons.errors import ConfigError

DEFAULT_PASSWORD_ENV = "FEDCHAIN_ENCRYPTION_PASSWORD"


def register(subparsers: Any) -> None:
    """Add the `keys` command group to the `fedchain` parser."""
    keys = subparsers.add_parser(
        "keys",
        help="make encryption and swarm keys",
        description="Make secret key files (docs/security.md). They are written with mode "
        "0600 and never overwritten.",
    )
    actions = keys.add_subparsers(dest="action", metavar="ACTION", required=True)
    enc = actions.add_parser(
        "encryption",
        help="a new X25519 key file for the org or an auditor; prints its public key",
        description="Write a new X25519 key pair as a password-encrypted keystore (the "
        "password comes from an environment variable) and print the public key: the org "
        "points [encryption] key_file at it; an auditor hands the public key to the org "
        "([encryption] auditors).",
    )
    enc.add_argument("--out", "-o", type=Path, required=True, help="key file to create")
    enc.add_argument(
        "--password-env",
        default=DEFAULT_PASSWORD_ENV,
        help=f"environment variable holding the password ({DEFAULT_PASSWORD_ENV})",
    )
    enc.set_defaults(func=_cmd_encryption)
    pub = actions.add_parser("public", help="print the public key of an encryption key file")
    pub.add_argument("key_file", type=Path)
    pub.set_defaults(func=_cmd_public)
    card = actions.add_parser(
        "card",
        help="a member key card: this client's X25519 key signed by its chain account",
        description="Sign this client's encryption public key with its chain account for the "
        "federation's contract and chain id, and write the card (public) for the org's "
        "[encryption] member_cards. Reads the client's TOML: [identity] (signing key), "
        "[encryption] key_file/key_env (X25519 key), [chain] contract and rpc_url.",
    )
    card.add_argument("--config", "-c", type=Path, required=True, help="the client's TOML")
    card.add_argument("--out", "-o", type=Path, required=True, help="card file to create")
    card.add_argument(
        "--chain-id", type=int, default=0, help="the chain id (default: asked of [chain] rpc_url)"
    )
    card.set_defaults(func=_cmd_card)
    swarm = actions.add_parser(
        "swarm",
        help="a new libp2p private-network key (Kubo's swarm.key format)",
        description="Write a new pre-shared key for a private IPFS network. Give the same "
        "file to every member's node: `fedchain ipfs --swarm-key FILE`, or copy it to "
        "$IPFS_PATH/swarm.key on a Kubo node.",
    )
    swarm.add_argument("--out", "-o", type=Path, required=True, help="swarm key file to create")
    swarm.set_defaults(func=_cmd_swarm)


def _cmd_encryption(args: argparse.Namespace) -> int:
    from daemons.privacy.keys import generate, public_hex, write_key_file

    password = os.environ.get(args.password_env, "")
    if not password:
        raise ConfigError(
            f"set the key file's password in the environment variable {args.password_env} "
            "(or name another with --password-env)"
        )
    key = generate()
    try:
        write_key_file(args.out, key, password)
    except FileExistsError:
        raise ConfigError(f"{args.out} exists; refusing to overwrite a key file") from None
    print(f"key file:   {args.out} (password in ${args.password_env})")
    print(f"public key: {public_hex(key)}")
    return 0


def _cmd_public(args: argparse.Namespace) -> int:
    try:
        doc = json.loads(args.key_file.read_text())
        print(doc["fedchain"]["public_key"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        what = f"{args.key_file} is not a fedchain encryption key file"
        raise ConfigError(f"{what} ({exc})") from None
    return 0


def _cmd_card(args: argparse.Namespace) -> int:
    from daemons.privacy.cards import make_card
    from daemons.privacy.keys import load_private_key, public_hex
    from daemons.runtime.config import load_config
    from daemons.runtime.keys import load_account

    cfg = load_config(args.config, "client")
    enc, where = cfg.encryption, str(args.config)
    account = load_account(cfg.identity, source=where)
    key = load_private_key(enc.key_file, enc.key_env, enc.password_env, source=where)
    if key is None:
        raise ConfigError(
            f"{where}: no X25519 key to put on the card: set encryption.key_file "
            f"(`fedchain keys encryption --out FILE`) or the hex key in {enc.key_env}"
        )
    chain_id = args.chain_id or _chain_id(cfg.chain.rpc_url)
    card = make_card(account, public_hex(key), chain_id, cfg.chain.contract)
    try:
        with args.out.open("x") as f:
            json.dump(card.to_json(), f, indent=2)
    except FileExistsError:
        raise ConfigError(f"{args.out} exists; refusing to overwrite a key card") from None
    print(f"key card:   {args.out} (public: send it to the org for [encryption] member_cards)")
    print(f"address:    {card.address}  chain {chain_id}  contract {card.contract}")
    print(f"public key: {card.encryption_key}")
    return 0


def _chain_id(rpc_url: str) -> int:
    from web3 import HTTPProvider, Web3

    try:
        return int(Web3(HTTPProvider(rpc_url, request_kwargs={"timeout": 10})).eth.chain_id)
    except Exception as exc:  # any transport error: name the URL and the way around it
        raise ConfigError(
            f"cannot ask {rpc_url} for its chain id ({type(exc).__name__}: {exc}); pass --chain-id"
        ) from None


def _cmd_swarm(args: argparse.Namespace) -> int:
    from daemons.privacy.swarm_key import write_swarm_key

    try:
        write_swarm_key(args.out)
    except FileExistsError:
        raise ConfigError(f"{args.out} exists; refusing to overwrite a swarm key") from None
    print(f"swarm key: {args.out} (secret: copy it to every member's node, nowhere else)")
    return 0
