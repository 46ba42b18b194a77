"""`fedchain verify`: re-derive every settled round from the chain and IPFS; exit 1 on a mismatch.

Needs only RPC access and an IPFS node that can reach the federation's blobs; no key and
no trust in the org. Held-out data (`--eval-data`, `--heldout`) and an auditor key are
optional: without them the checks that need them are reported as unchecked.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from web3 import AsyncHTTPProvider, AsyncWeb3

from daemons.errors import ConfigError, RejectedUpdate
from daemons.verify.checks import RoundReport, failed, json_report, table
from daemons.verify.facts import OpenUpdate, ReplayInputs, RoundFacts


def register(subparsers: Any) -> None:
    """Add `verify` to the `fedchain` parser."""
    from daemons.cli.chain import guarded

    p = subparsers.add_parser(
        "verify",
        help="re-derive every settled round from the chain and IPFS (exit 1 on a mismatch)",
        description="Re-derive every settled round from the chain and IPFS: digests, "
        "validation verdicts, the aggregation (bit for bit), the next round's base. "
        "Exit codes: 0 every check passed or could not be made, 1 a mismatch, 2 bad arguments.",
    )
    p.add_argument("--config", "-c", metavar="FILE", help="a daemon TOML config ([chain], [ipfs])")
    p.add_argument("--rpc", "--rpc-url", dest="rpc_url", metavar="URL", help="JSON-RPC URL")
    p.add_argument("--contract", metavar="ADDR", help="the FederatedRounds contract address")
    p.add_argument("--ipfs-api", metavar="URL", help="Kubo RPC API URL (default :5001)")
    p.add_argument("--rounds", type=round_range, metavar="A..B", help="only these rounds (or N)")
    p.add_argument("--json", action="store_true", help="every check as JSON")
    p.add_argument("--eval-data", metavar="FILE", help="the org's eval set: re-check metrics")
    p.add_argument(
        "--heldout",
        action="append",
        default=[],
        metavar="NAME=FILE",
        help="a forgetting-ledger set: re-check its metrics (repeatable)",
    )
    p.add_argument(
        "--auditor-key", metavar="FILE", help="encryption key file to open sealed updates with"
    )
    p.add_argument(
        "--auditor-password-env",
        default="FEDCHAIN_AUDITOR_PASSWORD",
        metavar="VAR",
        help="environment variable holding the key file's password",
    )
    p.add_argument(
        "--dp-secret-file",
        metavar="FILE",
        help="the org's central-DP noise secret (hex), to replay the noised merge bit for bit",
    )
    p.add_argument(
        "--tolerance",
        type=float,
        default=1e-6,
        help="largest |Δ| of a model tensor accepted on a platform other than the pinned one",
    )
    p.add_argument(
        "--metric-tolerance",
        type=float,
        default=1e-3,
        help="largest metric difference accepted on a platform other than the pinned one",
    )
    p.set_defaults(func=lambda args: guarded(_verify, args))


def round_range(text: str) -> tuple[int, int]:
    """`N` or `A..B` (inclusive, from 1)."""
    lo, sep, hi = text.partition("..")
    try:
        a, b = int(lo), int(hi) if sep else int(lo)
    except ValueError:
        raise argparse.ArgumentTypeError(f"want N or A..B, got {text!r}") from None
    if a < 1 or b < a:
        raise argparse.ArgumentTypeError(f"want 1 <= A <= B, got {text!r}")
    return a, b


def load_inputs(args: argparse.Namespace, key: Any = None) -> ReplayInputs:
    """The verifier's own held-out data and keys, checked before anything is fetched.

    `key`: the auditor key if already loaded (`auditor_key`), else read from the args."""
    from models.data import load_dataset
    from models.errors import ModelsError

    heldout = {}
    try:
        eval_data = load_dataset(args.eval_data) if args.eval_data else None
        for item in args.heldout:
            name, sep, path = item.partition("=")
            if not sep or not name or not path:
                raise ConfigError(f"--heldout {item!r}: want NAME=FILE")
            heldout[name] = load_dataset(path)
    except ModelsError as exc:
        raise ConfigError(f"held-out data: {exc}") from None
    return ReplayInputs(
        dp_secret=_dp_secret(args.dp_secret_file),
        eval_data=eval_data,
        heldout=heldout,
        tolerance=args.tolerance,
        metric_tolerance=args.metric_tolerance,
        open_update=_opener(args.auditor_key, args.auditor_password_env, key),
    )


def _dp_secret(path: str | None) -> bytes | None:
    """The org's central-noise secret from `--dp-secret-file` (hex, as the org reads it)."""
    if path is None:
        return None
    from models.dp import MIN_SECRET_BYTES

    try:
        text = Path(path).read_text()
    except OSError as exc:
        raise ConfigError(f"--dp-secret-file {path}: cannot read it: {exc.strerror}") from None
    try:
        secret = bytes.fromhex(text.strip().removeprefix("0x"))
    except ValueError:
        raise ConfigError(
            f"--dp-secret-file {path}: not hex (want the org's secret_file)"
        ) from None
    if len(secret) < MIN_SECRET_BYTES:
        raise ConfigError(
            f"--dp-secret-file {path}: {len(secret)} bytes; the org's secret has at least "
            f"{MIN_SECRET_BYTES}"
        )
    return secret


def auditor_key(args: argparse.Namespace) -> Any:
    """The auditor's X25519 key from `--auditor-key` (None: not given)."""
    return _read_key(args.auditor_key, args.auditor_password_env)


def _read_key(path: str | None, password_env: str) -> Any:
    """An encryption keystore (`fedchain keys encryption --out FILE`), its password in the
    environment variable `password_env`; None for no path."""
    if path is None:
        return None
    import os

    from daemons.privacy.keys import read_key_file

    if not Path(path).is_file():
        raise ConfigError(f"--auditor-key {path}: no such file")
    return read_key_file(Path(path), password_env, os.environ, "--auditor-key")


def _opener(path: str | None, password_env: str, key: Any = None) -> OpenUpdate | None:
    """The privacy part's `open_update` with the auditor's key (`key`, else read from `path`;
    None: no key given)."""
    key = key if key is not None else _read_key(path, password_env)
    if key is None:
        return None
    from daemons.privacy.envelope import Binding, open_update

    mine = bytes(key.public_key)

    def opener(envelope: bytes, claim: Any, required: Sequence[Any]) -> bytes:
        if mine not in {bytes(k) for k in required}:  # not this round's org or auditor
            raise RejectedUpdate("unavailable", "the round does not seal updates to this key")
        binding = Binding(claim.round_id, claim.client, claim.base_cid)
        try:
            return open_update(envelope, key, binding, len(envelope), required)
        except RejectedUpdate as exc:
            if exc.reason != "not_recipient":
                raise
            # not sealed to a key the round requires: what the org's own check calls it
            detail = f"not sealed to required auditor {mine.hex()}"
            raise RejectedUpdate("recipients", detail) from None

    return opener


def selected(facts: dict[int, RoundFacts], rounds: tuple[int, int] | None) -> list[int]:
    """Settled rounds in the asked-for range."""
    lo, hi = rounds or (1, max(facts, default=0))
    return [r for r in sorted(facts) if lo <= r <= hi and facts[r].state != "open"]


async def _verify(args: argparse.Namespace, target: Any) -> int:
    from daemons.ipfs.client import IpfsStorage
    from daemons.verify.gather import chain_facts, fetch_blobs, storage_getter
    from daemons.verify.pins import platform_facts
    from daemons.verify.replay import verify_round
    from daemons.verify.sealed import unseal_models

    key = auditor_key(args)  # opens sealed updates and models sealed to the members
    inputs = replace(load_inputs(args, key), contract=target.contract)
    w3 = AsyncWeb3(AsyncHTTPProvider(target.rpc_url))
    try:
        facts = await chain_facts(w3, target.contract, target.chunk_blocks)
    finally:
        await w3.provider.disconnect()
    here = platform_facts()
    reports: list[RoundReport] = []
    async with IpfsStorage(target.ipfs_api) as storage:
        get = storage_getter(storage, target.ipfs_timeout_s)
        for r in selected(facts, args.rounds):
            started = time.perf_counter()
            full = await fetch_blobs(facts[r], get, target.max_blob_bytes)
            full, sealed = unseal_models(full, key, target.contract, target.max_blob_bytes)
            fetch_s = time.perf_counter() - started
            report = await asyncio.to_thread(verify_round, full, facts.get(r - 1), inputs, here)
            report = replace(report, checks=(*sealed, *report.checks))
            elapsed_s = time.perf_counter() - started
            reports.append(replace(report, elapsed_s=elapsed_s, fetch_s=fetch_s))
    if args.json:
        print(json_report(reports))
    elif reports:
        print(table(reports))
    else:
        print("no settled round to verify", file=sys.stderr)
    return 1 if failed(reports) else 0
