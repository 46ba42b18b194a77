"""Read-only views of a federation for the CLI: event lines, round history, chain status.

Pure formatting over decoded events and typed contract views, plus the few reads that
gather them; the chain is the only source, so any machine with RPC access sees the same.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, fields, replace
from datetime import UTC, datetime
from typing import Any

from contracts.binding import FederatedRounds
from contracts.events import (
    ContractEvent,
    RoundClosed,
    RoundFailed,
    RoundOpened,
    UpdateSubmitted,
)
from contracts.state import RoundInfo, RoundStatus
from daemons.chain.backoff import node_call
from daemons.chain.identity import provider_url


@dataclass(frozen=True)
class RoundRow:
    """One round of the history table, rebuilt from the contract's events."""

    round_id: int
    state: str
    base_cid: str
    num_updates: int
    model_cid: str
    manifest_cid: str
    deadline: int
    base_digest: str = ""
    model_digest: str = ""


@dataclass(frozen=True)
class ModelEntry:
    """One published model: round 0's initial model or a closed round's new model."""

    round_id: int
    cid: str
    digest: str
    manifest_cid: str = ""


@dataclass(frozen=True)
class ChainStatus:
    """What `fedchain status` shows."""

    chain_id: int
    head: int
    head_timestamp: int
    contract: str
    org: str
    paused: bool
    current_round: int
    round: RoundInfo | None


def _hex_value(value: Any) -> Any:
    return "0x" + value.hex() if isinstance(value, bytes) else value


def event_fields(event: ContractEvent) -> dict[str, Any]:
    """An event's payload fields (digests as 0x-hex), without its position."""
    return {f.name: _hex_value(getattr(event, f.name)) for f in fields(event) if f.name != "meta"}


def event_json(event: ContractEvent) -> str:
    """One JSON line: event name, position and every field (digests as 0x-hex)."""
    meta = event.meta
    record = {
        "event": type(event).__name__,
        "block_number": meta.block_number,
        "block_hash": meta.block_hash,
        "tx_hash": meta.tx_hash,
        "log_index": meta.log_index,
        **event_fields(event),
    }
    return json.dumps(record, sort_keys=False)


def event_line(event: ContractEvent) -> str:
    """One human line: block, event name, fields."""
    shown = " ".join(f"{k}={v}" for k, v in event_fields(event).items())
    return f"block {event.meta.block_number:>8}  {type(event).__name__:<18} {shown}".rstrip()


def round_rows(events: list[ContractEvent]) -> list[RoundRow]:
    """Fold RoundOpened / UpdateSubmitted / RoundClosed / RoundFailed into one row per round."""
    rows: dict[int, RoundRow] = {}
    for ev in events:
        if isinstance(ev, RoundOpened):
            rows[ev.round_id] = RoundRow(
                ev.round_id, "open", ev.base_cid, 0, "", "", ev.deadline, _hex_value(ev.base_digest)
            )
        elif isinstance(ev, UpdateSubmitted | RoundClosed | RoundFailed):
            row = rows.get(ev.round_id)
            if row is not None:
                rows[row.round_id] = _apply(row, ev)
    return [rows[r] for r in sorted(rows)]


def _apply(row: RoundRow, ev: ContractEvent) -> RoundRow:
    if isinstance(ev, UpdateSubmitted):
        return replace(row, num_updates=row.num_updates + 1)
    if isinstance(ev, RoundClosed):
        return replace(
            row,
            state="closed",
            model_cid=ev.model_cid,
            manifest_cid=ev.manifest_cid,
            num_updates=ev.num_updates,
            model_digest=_hex_value(ev.model_digest),
        )
    if isinstance(ev, RoundFailed):
        return replace(row, state="failed", num_updates=ev.num_updates)
    return row


def utc(timestamp: int) -> str:
    """A block timestamp as ISO-8601 UTC."""
    return datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def rounds_table(rows: list[RoundRow], now: int | None = None) -> str:
    """A plain-text table; an open round past its deadline (by block time) is marked so."""
    header = ("round", "state", "base CID", "updates", "model CID", "manifest CID", "deadline")
    body: list[tuple[str, ...]] = [header]
    for r in rows:
        state = r.state
        if state == "open" and now is not None and now > r.deadline:
            state = "open (deadline passed)"
        cells = (r.round_id, state, r.base_cid, r.num_updates, r.model_cid or "-")
        body.append((*map(str, cells), r.manifest_cid or "-", utc(r.deadline)))
    widths = [max(len(row[i]) for row in body) for i in range(len(header))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)) for row in body]
    return "\n".join(line.rstrip() for line in lines)


async def fetch_status(binding: FederatedRounds) -> ChainStatus:
    """Chain id, head, org, paused and the current round, read from the node."""
    w3, url = binding.w3, provider_url(binding.w3)
    head = await node_call(url, lambda: w3.eth.get_block("latest"))
    current = await node_call(url, binding.current_round_id)
    info = await node_call(url, lambda: binding.get_round(current)) if current else None
    return ChainStatus(
        chain_id=await node_call(url, binding.chain_id),
        head=int(head["number"]),
        head_timestamp=int(head["timestamp"]),
        contract=binding.address,
        org=await node_call(url, binding.org),
        paused=await node_call(url, binding.paused),
        current_round=current,
        round=info,
    )


def status_lines(status: ChainStatus) -> list[str]:
    """`fedchain status` output, one fact per line."""
    lines = [
        f"chain id:      {status.chain_id}",
        f"head block:    {status.head} ({utc(status.head_timestamp)})",
        f"contract:      {status.contract}",
        f"org:           {status.org}",
        f"paused:        {'yes' if status.paused else 'no'}",
    ]
    if status.round is None:
        return [*lines, "current round: none opened yet"]
    info = status.round
    state = info.status.name.lower()
    if info.status is RoundStatus.OPEN and status.head_timestamp > info.deadline:
        state += " (deadline passed)"
    return [
        *lines,
        f"current round: {status.current_round} ({state}, {info.num_updates}/"
        f"{info.max_updates} updates, min {info.min_updates}, deadline {utc(info.deadline)})",
    ]


def model_of_round(info: RoundInfo) -> tuple[str, bytes, str]:
    """The CID and digest to fetch for a round: its closed model, else its base model."""
    if info.status is RoundStatus.CLOSED:
        return info.model_cid, info.model_digest, "model"
    return info.base_cid, info.base_digest, "base model"


def round_json(row: RoundRow) -> dict[str, Any]:
    """A round row as a JSON object (`fedchain rounds --json`, one per line)."""
    doc: dict[str, Any] = {f.name: getattr(row, f.name) for f in fields(row)}
    doc["deadline_utc"] = utc(row.deadline)
    return doc


def status_json(status: ChainStatus) -> dict[str, Any]:
    """`fedchain status --json`: the same facts as `status_lines`, typed (digests 0x-hex)."""
    doc: dict[str, Any] = {f.name: getattr(status, f.name) for f in fields(status)}
    info = status.round
    if info is not None:
        doc["round"] = {f.name: _hex_value(getattr(info, f.name)) for f in fields(info)}
        doc["round"]["status"] = info.status.name.lower()
        passed = info.status is RoundStatus.OPEN and status.head_timestamp > info.deadline
        doc["round"]["deadline_passed"] = passed
    return doc


def model_entries(rows: list[RoundRow]) -> list[ModelEntry]:
    """Every model the federation published: round 0 (round 1's base), then each closed round."""
    out = [ModelEntry(0, r.base_cid, r.base_digest) for r in rows if r.round_id == 1]
    out += [
        ModelEntry(r.round_id, r.model_cid, r.model_digest, r.manifest_cid)
        for r in rows
        if r.state == "closed"
    ]
    return out


def models_table(entries: list[ModelEntry]) -> str:
    """`fedchain model ls`: one line per published model."""
    body = [("round", "model CID", "digest", "manifest CID")]
    body += [(str(e.round_id), e.cid, e.digest, e.manifest_cid or "-") for e in entries]
    widths = [max(len(row[i]) for row in body) for i in range(4)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) for row in body]
    return "\n".join(line.rstrip() for line in lines)
