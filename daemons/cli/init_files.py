"""The files `fedchain init` writes: encrypted keystores and daemon configs.

Pure builders plus small writers, so the `init` command stays a list of steps. Every config
written here loads under `daemons.runtime.config.load_config` (a test checks it) and names its
keystore and data by paths relative to itself, so a participant's folder can be copied to
its host as it is.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import tomlkit
from eth_account import Account
from eth_utils import to_checksum_address

from daemons.errors import ConfigError

KEYSTORE_FILE = "keystore.json"
SWARM_KEY_FILE = "swarm.key"  # the bundled node and Kubo read REPO/swarm.key by themselves
PASSWORD_ENV = "FEDCHAIN_KEYSTORE_PASSWORD"


@dataclass(frozen=True)
class Endpoints:
    """What every participant's config points at."""

    rpc_url: str
    ws_url: str
    contract: str  # "" in the org's config: it deploys on first start
    ipfs_api: str


@dataclass(frozen=True)
class Participant:
    """One folder of the federation: who it is and where its files are."""

    name: str
    role: str
    address: str
    folder: Path


def new_keystore(path: Path, password: str) -> str:
    """Generate a key, write it encrypted (eth-account's scrypt keystore, mode 0600).

    Returns the checksummed address. The plain key never touches the disk.
    """
    if path.exists():
        raise ConfigError(f"{path} exists: `fedchain init` never overwrites a key")
    account = Account.create()
    keyfile = Account.encrypt(account.key, password)
    _write_private(path, json.dumps(keyfile))
    return to_checksum_address(account.address)


def _write_private(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(text)


def _common_tables(ep: Endpoints, state_dir: str) -> dict[str, dict[str, Any]]:
    return {
        "chain": {"rpc_url": ep.rpc_url, "ws_url": ep.ws_url, "contract": ep.contract},
        "identity": {"keystore": KEYSTORE_FILE, "password_env": PASSWORD_ENV},
        "ipfs": {"api_url": ep.ipfs_api},
        "service": {"state_dir": state_dir, "log_format": "human"},
    }


def org_tables(
    ep: Endpoints,
    state_dir: str,
    clients: Sequence[str],
    federation: Mapping[str, Any],
    training: Mapping[str, Any],
) -> dict[str, dict[str, Any]]:
    """The org's TOML tables: the client allowlist plus the federation and training plan."""
    tables = _common_tables(ep, state_dir)
    fed = {"clients": [to_checksum_address(c) for c in clients], **federation}
    tables["federation"] = fed
    tables["training"] = dict(training)
    return tables


def client_tables(ep: Endpoints, state_dir: str, data_path: str) -> dict[str, dict[str, Any]]:
    """One client's TOML tables."""
    tables = _common_tables(ep, state_dir)
    tables["data"] = {"path": data_path}
    return tables


COMMENTS = {
    ("chain", "contract"): "the org's FederatedRounds",
    ("identity", "keystore"): f"encrypted key; its password comes from ${PASSWORD_ENV}",
    ("ipfs", "api_url"): "this host's own IPFS node (keep its RPC API on 127.0.0.1)",
    ("service", "state_dir"): "durable cursor and outbox: back it up, never share it",
    ("federation", "clients"): "changed by `fedchain clients add/remove` (chain + this file)",
    ("data", "path"): "this client's share (`fedchain init --task` / `fedchain data split`)",
}


ORG_COMMENTS = {
    **COMMENTS,
    ("chain", "contract"): '"" = deploy on first start and remember it in state_dir',
}


def render(
    tables: Mapping[str, Mapping[str, Any]],
    header: str,
    comments: Mapping[tuple[str, str], str] = COMMENTS,
) -> str:
    """TOML text with a header comment and a comment on the keys a new operator must know."""
    doc = tomlkit.document()
    for line in header.splitlines():
        doc.add(tomlkit.comment(line))
    for name, table in tables.items():
        section = tomlkit.table()
        for key, value in table.items():
            section.add(key, _toml_item(value))
            comment = comments.get((name, key))
            if comment:
                section[key].comment(comment)
        doc.add(tomlkit.nl())
        doc.add(name, section)
    return tomlkit.dumps(doc)


def _toml_item(value: Any) -> Any:
    if isinstance(value, list) and len(value) > 1:
        array = tomlkit.array()
        array.extend(value)
        return array.multiline(True)
    if isinstance(value, dict):
        inline = tomlkit.inline_table()
        inline.update(value)
        return inline
    return value
