"""Gathering a round's facts: its events from the chain, the blobs they name from IPFS.

Everything is read from public sources with the chain's digests: the contract's events
(through the same tailer the daemons use), the senders of the open/close transactions (the
org's address goes into model metadata), and the round config, base, updates, manifest and
model from any IPFS node that has them.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from typing import Any

from web3 import AsyncWeb3

from contracts.events import ContractEvent, RoundClosed, RoundFailed, RoundOpened, UpdateSubmitted
from daemons.chain.store import StateStore
from daemons.chain.tailer import EventTailer
from daemons.errors import FedchainError, RejectedUpdate, TransientError
from daemons.ipfs.blobs import raw_cid_digest
from daemons.verify.facts import Blob, RoundFacts
from daemons.wire.round_config import decode_round_config

CONFIG_MAX_BYTES = 1 << 20
MANIFEST_MAX_BYTES = 16 << 20


@dataclass
class _Events:
    opened: RoundOpened | None = None
    updates: list[UpdateSubmitted] = field(default_factory=list)
    closed: RoundClosed | None = None
    failed: RoundFailed | None = None


async def read_events(
    w3: AsyncWeb3[Any], address: str, chunk_blocks: int = 1000
) -> list[ContractEvent]:
    """Every event of the contract, in chain order."""
    found: list[ContractEvent] = []

    async def keep(event: ContractEvent) -> None:
        found.append(event)

    with StateStore(":memory:") as store:
        await EventTailer(w3, address, store, chunk_blocks=chunk_blocks).sync(keep)
    return found


def fold_rounds(events: list[ContractEvent]) -> dict[int, _Events]:
    """Events grouped by round id."""
    rounds: dict[int, _Events] = {}
    for ev in events:
        if isinstance(ev, RoundOpened | UpdateSubmitted | RoundClosed | RoundFailed):
            slot = rounds.setdefault(ev.round_id, _Events())
            if isinstance(ev, RoundOpened):
                slot.opened = ev
            elif isinstance(ev, UpdateSubmitted):
                slot.updates.append(ev)
            elif isinstance(ev, RoundClosed):
                slot.closed = ev
            else:
                slot.failed = ev
    return rounds


async def chain_facts(
    w3: AsyncWeb3[Any], address: str, chunk_blocks: int = 1000
) -> dict[int, RoundFacts]:
    """Every opened round's events and the senders of its open/close transactions."""
    rounds = fold_rounds(await read_events(w3, address, chunk_blocks))

    async def sender(tx_hash: str) -> str:
        return str((await w3.eth.get_transaction(tx_hash))["from"])  # type: ignore[arg-type]

    out = {}
    for r, ev in sorted(rounds.items()):
        if ev.opened is None:
            continue
        opener = await sender(ev.opened.meta.tx_hash) if r == 1 else ""
        closer = await sender(ev.closed.meta.tx_hash) if ev.closed else ""
        out[r] = RoundFacts(r, ev.opened, opener, tuple(ev.updates), ev.closed, closer, ev.failed)
    return out


Getter = Callable[[str, bytes | None, int], Awaitable[bytes]]


async def _blob(get: Getter, cid: str, digest: bytes | None, max_bytes: int) -> Blob:
    """Fetch one blob; a refusal or an unreachable CID is data, not an exception."""
    try:
        return Blob(await get(cid, digest, max_bytes))
    except RejectedUpdate as exc:
        return Blob(reason=exc.reason, detail=exc.detail or str(exc))
    except TransientError as exc:
        return Blob(reason="unavailable", detail=str(exc))
    except FedchainError as exc:
        return Blob(reason="unavailable", detail=str(exc))


def storage_getter(storage: Any, timeout_s: float, keep: int = 4) -> Getter:
    """`get` with a digest (the chain's, or a raw CID's own), `cat` where there is none.

    Round configs and manifests are single raw blocks, so their CID is their sha256: they
    are checked here too, whatever the IPFS node serving them does.
    """

    recent: dict[tuple[str, bytes], bytes] = {}  # a round's model is the next one's base

    async def get(cid: str, digest: bytes | None, max_bytes: int) -> bytes:
        if digest is None:
            data: bytes = await storage.cat(cid, max_bytes, timeout_s)
            return data
        cached = recent.get((cid, digest))
        if cached is not None and len(cached) <= max_bytes:
            return cached
        data = await storage.get(cid, digest, max_bytes, timeout_s)
        recent[(cid, digest)] = data
        while len(recent) > keep:
            del recent[next(iter(recent))]
        return data

    return get


async def fetch_blobs(facts: RoundFacts, get: Getter, max_blob_bytes: int) -> RoundFacts:
    """The round's config, base, updates (with the pinned size cap), manifest and model."""
    opened = facts.opened
    config = await _blob(
        get, opened.config_cid, raw_cid_digest(opened.config_cid), CONFIG_MAX_BYTES
    )
    cap = _pinned_cap(config) or max_blob_bytes
    jobs = [_blob(get, opened.base_cid, opened.base_digest, max_blob_bytes)]
    jobs += [_blob(get, ev.update_cid, ev.digest, cap) for ev in facts.updates]
    if facts.closed is not None:
        cid = facts.closed.manifest_cid
        jobs.append(_blob(get, cid, raw_cid_digest(cid), MANIFEST_MAX_BYTES))
        jobs.append(_blob(get, facts.closed.model_cid, facts.closed.model_digest, max_blob_bytes))
    base, *rest = await asyncio.gather(*jobs)  # one round trip's latency, not one per blob
    n = len(facts.updates)
    updates = {ev.client: b for ev, b in zip(facts.updates, rest[:n], strict=True)}
    not_closed = Blob(reason="unavailable", detail="the round is not closed")
    manifest, model = rest[n:] if facts.closed is not None else (not_closed, not_closed)
    return replace(
        facts, config=config, base=base, update_blobs=updates, manifest=manifest, model=model
    )


def _pinned_cap(config: Blob) -> int | None:
    """The org's update size cap, from the round config's pins (an oversized update's reason)."""
    if config.data is None:
        return None
    try:
        pins = decode_round_config(config.data).replay or {}
        return int(pins["limits"]["max_bytes"])
    except (RejectedUpdate, KeyError, TypeError, ValueError):
        return None
