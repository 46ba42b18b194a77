"""`fedchain report --config CFG`: report.html and plots for any federation, from the chain.

Everything comes from what any participant can read: the contract's events and their
receipts (gas) and block timestamps (round wall time, chain time), the org's manifests and
the blobs over IPFS (sizes, train metrics, digest checks). The org's config adds the names it
gives its clients (`[federation] client_names`).
"""

from __future__ import annotations

import argparse
import json
import tomllib
from dataclasses import asdict
from pathlib import Path
from typing import Any

from daemons.testnet.records import RoundRecord

DEFAULT_OUT = Path("fedchain-report")


def register(subparsers: Any) -> None:
    """Add `report` to the `fedchain` parser (shares the chain views' target options)."""
    from daemons.cli.chain import command

    report = command(
        subparsers, "report", "write report.html and plots rebuilt from chain and IPFS", _report
    )
    report.add_argument(
        "--out",
        "-o",
        type=Path,
        default=DEFAULT_OUT,
        metavar="DIR",
        help=f"output directory (default: {DEFAULT_OUT})",
    )
    report.add_argument("--ipfs-api", help="Kubo RPC API URL (overrides [ipfs] api_url)")
    report.add_argument(
        "--no-blobs",
        action="store_true",
        help="skip fetching model and update blobs (no sizes, MB moved or digest checks)",
    )
    report.add_argument("--json", action="store_true", help="print the summary as JSON")


def org_view(config: str | None) -> tuple[list[str], dict[str, str]]:
    """The clients and their names from an org config (a client config names nobody)."""
    if not config:
        return [], {}
    from daemons.runtime.config import load_config

    raw = tomllib.loads(Path(config).read_text())
    cfg = load_config(config, "org" if "federation" in raw else "client")
    if cfg.federation is None:
        return [], {}
    names = {k.lower(): v for k, v in cfg.federation.client_names.items()}
    return list(cfg.federation.clients), names


async def gather(
    target: Any, with_blobs: bool
) -> tuple[list[RoundRecord], list[str], dict[str, Any]]:
    """The round records, the problems met, and facts about the chain."""
    from daemons.chain import history
    from daemons.cli.chain import all_events, connect
    from daemons.ipfs.client import IpfsStorage
    from daemons.testnet import collect
    from daemons.testnet.facts import fold_gas
    from daemons.testnet.records import build_rounds, round_wall_times, update_offsets

    w3, binding = connect(target)
    try:
        events = await all_events(w3, target)
        got, problems = await collect.receipts(w3, events)
        seen = await collect.block_times(w3, events)
        status = await history.fetch_status(binding)
    finally:
        await w3.provider.disconnect()
    wall, offsets = round_wall_times(events, seen), update_offsets(events, seen)
    gas = fold_gas(events, got)
    async with IpfsStorage(target.ipfs_api) as ipfs:
        manifests = await _manifests(ipfs, events, problems)
        rounds = build_rounds(events, manifests, {}, wall, offsets, gas)
        if with_blobs:
            facts, blob_problems = await collect.blob_facts(ipfs, rounds)
            problems += blob_problems
            rounds = build_rounds(events, manifests, facts, wall, offsets, gas)
    clients = sorted({u.client for r in rounds for u in r.updates})
    return rounds, problems, {"status": status, "clients": clients}


async def _manifests(
    ipfs: Any, events: list[Any], problems: list[str]
) -> dict[str, dict[str, Any]]:
    """Every closed round's manifest; one that cannot be read is a problem, not a crash."""
    from contracts.events import RoundClosed
    from daemons.testnet.collect import fetch_manifest

    out: dict[str, dict[str, Any]] = {}
    for ev in events:
        if isinstance(ev, RoundClosed):
            try:
                out[ev.manifest_cid] = await fetch_manifest(ipfs, ev.manifest_cid)
            except Exception as e:  # the round is shown without its manifest's facts
                problems.append(f"manifest {ev.manifest_cid}: {type(e).__name__}: {e}")
    return out


def facts_table(
    target: Any, chain: dict[str, Any], rounds: list[RoundRecord], problems: list[str]
) -> dict[str, str]:
    """The report's 'Federation' table."""
    st = chain["status"]
    return {
        "contract": f"{st.contract} on chain id {st.chain_id} ({target.rpc_url})",
        "org": st.org,
        "head block": str(st.head),
        "rounds": f"{len(rounds)} opened, current {st.current_round}",
        "clients seen": str(len(chain["clients"])),
        "ipfs": target.ipfs_api,
        "wall times": "from block timestamps (chain time, 1 s resolution on most nodes)",
        "problems": "; ".join(problems) or "none",
    }


async def _report(args: argparse.Namespace, target: Any) -> int:
    """Rebuild the report; exit 1 when a read problem left part of it unknown."""
    from daemons.testnet.report import summarize, summary_lines, write_report

    listed, names = org_view(args.config)
    rounds, problems, chain = await gather(target, not args.no_blobs)
    clients = listed or chain["clients"]
    clients += [c for c in chain["clients"] if c.lower() not in {x.lower() for x in clients}]
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    facts = facts_table(target, chain, rounds, problems)
    path = write_report(rounds, clients, out, facts, names, "fedchain report")
    summary = summarize(rounds)
    doc = {"summary": asdict(summary), "problems": problems, "rounds": [asdict(r) for r in rounds]}
    (out / "summary.json").write_text(json.dumps(doc, indent=2, default=list))
    if args.json:
        print(json.dumps({"report": str(path), "summary": asdict(summary), "problems": problems}))
    else:
        for line in summary_lines(summary):
            print(line)
        for p in problems:
            print(f"problem: {p}")
        print(f"report: {path}")
    return 1 if problems else 0
