"""`fedchain model ls` and `fedchain model get ROUND|latest`: the federation's published models.

The list comes from chain events alone (round 1's base is round 0's initial model, then each
`RoundClosed`); a fetch checks the bytes against the digest the chain recorded.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

from contracts.errors import UnknownRound
from daemons.chain import history
from daemons.cli.chain import all_events, command, connect
from daemons.errors import FedchainError

LATEST = "latest"


def register(subparsers: Any) -> None:
    """Add `model get` and `model ls` (with the chain views' --config/--rpc-url options)."""
    model = subparsers.add_parser(
        "model", help="models published by the federation", description="Published models."
    )
    actions = model.add_subparsers(dest="action", metavar="ACTION", required=True)
    get = command(actions, "get", "fetch a round's model from IPFS (digest checked)", _model_get)
    get.add_argument(
        "round_id",
        type=round_arg,
        metavar="ROUND",
        help="round id (from 1), or `latest` (the newest closed round's model; round 0's "
        "initial model while none has closed)",
    )
    get.add_argument("-o", "--output", required=True, metavar="FILE", help="where to write it")
    get.add_argument("--ipfs-api", help="Kubo RPC API URL (overrides [ipfs] api_url)")
    get.add_argument(
        "--key-file",
        metavar="FILE",
        help="a member's or auditor's X25519 key file: decrypt a model sealed to the members "
        "(its password in the env var named by --password-env)",
    )
    get.add_argument(
        "--password-env",
        default="FEDCHAIN_ENCRYPTION_PASSWORD",
        help="env var holding the key file's password (FEDCHAIN_ENCRYPTION_PASSWORD)",
    )
    get.add_argument(
        "--key-env",
        default="FEDCHAIN_ENCRYPTION_KEY",
        help="without --key-file: env var holding the hex X25519 key (FEDCHAIN_ENCRYPTION_KEY)",
    )
    ls = command(actions, "ls", "list every published model (round 0 = initial)", _model_ls)
    ls.add_argument("--json", action="store_true", help="JSON lines, one model per line")


def round_arg(text: str) -> int | str:
    """A round id >= 1 or the word `latest`."""
    if text == LATEST:
        return LATEST
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a round id or `latest`, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"round ids start at 1, got {value}")
    return value


async def _entries(target: Any) -> list[history.ModelEntry]:
    w3, _ = connect(target)
    try:
        return history.model_entries(history.round_rows(await all_events(w3, target)))
    finally:
        await w3.provider.disconnect()


async def _model_ls(args: argparse.Namespace, target: Any) -> int:
    """Print every published model, oldest first."""
    entries = await _entries(target)
    if args.json:
        for e in entries:
            print(json.dumps(asdict(e)))
    else:
        print(history.models_table(entries) if entries else "no model published yet")
    return 0


async def _latest(target: Any) -> tuple[str, bytes, str, int]:
    entries = await _entries(target)
    if not entries:
        raise FedchainError(f"no model published yet on {target.contract} (no round opened)")
    e = entries[-1]
    what = "initial model" if e.round_id == 0 else "model"
    return e.cid, bytes.fromhex(e.digest.removeprefix("0x")), what, e.round_id


async def _by_round(target: Any, round_id: int) -> tuple[str, bytes, str, int]:
    w3, binding = connect(target)
    try:
        info = await binding.get_round(round_id)
    except UnknownRound:
        raise FedchainError(f"round {round_id} was never opened on {target.contract}") from None
    finally:
        await w3.provider.disconnect()
    cid, digest, what = history.model_of_round(info)
    return cid, digest, what, round_id


async def _model_get(args: argparse.Namespace, target: Any) -> int:
    """Fetch a round's model (closed: its new model; otherwise its base) with digest check."""
    from daemons.ipfs.client import IpfsStorage

    if args.round_id == LATEST:
        cid, digest, what, round_id = await _latest(target)
    else:
        cid, digest, what, round_id = await _by_round(target, args.round_id)
    async with IpfsStorage(target.ipfs_api) as storage:
        data = await storage.get(cid, digest, target.max_blob_bytes, target.ipfs_timeout_s)
    data, sealed = _plaintext(args, target, data, round_id)
    output = Path(args.output)
    partial = output.with_name(output.name + ".partial")
    partial.write_bytes(data)
    partial.replace(output)  # never leave a truncated model under the asked-for name
    note = " (decrypted: sealed to the members)" if sealed else ""
    print(f"round {round_id} {what} {cid} ({len(data)} bytes{note}) -> {args.output}")
    return 0


def _plaintext(args: argparse.Namespace, target: Any, data: bytes, round_id: int) -> Any:
    """(the model blob, whether it was sealed): a sealed model is opened with the given key."""
    from daemons.privacy.envelope import EnvelopeRejected
    from daemons.privacy.keys import load_private_key
    from daemons.privacy.models import NO_KEY, open_model

    key = load_private_key(
        args.key_file or "", args.key_env, args.password_env, source="--key-file"
    )
    try:
        opened = open_model(data, key, target.contract, target.max_blob_bytes)
    except EnvelopeRejected as exc:
        hint = " (pass --key-file FILE of a member or auditor)" if exc.reason == NO_KEY else ""
        raise FedchainError(f"round {round_id}'s model: {exc.reason}: {exc.detail}{hint}") from None
    return opened.plaintext, opened.sealed
