"""Read a running net from the outside: contract logs (eth_getLogs) and blobs over Kubo RPC."""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
from collections.abc import Mapping, Sequence
from typing import Any

from eth_utils import to_checksum_address
from web3 import AsyncHTTPProvider, AsyncWeb3

from contracts.events import UnknownEvent, decode_log, event_key
from daemons.errors import FedchainError
from daemons.ipfs.client import IpfsStorage
from daemons.testnet.records import BlobFacts, RoundRecord
from daemons.testnet.spec import TestnetError
from models.codec import decode_blob
from models.errors import ModelsError

MAX_BLOB_BYTES = 256 * 1024 * 1024
MAX_MANIFEST_BYTES = 16 * 1024 * 1024
IPFS_TIMEOUT_S = 60.0


class ChainWatch:
    """Polls the contract's logs and remembers when this process first saw each event."""

    def __init__(self, rpc_url: str, address: str) -> None:
        self.w3 = AsyncWeb3(AsyncHTTPProvider(rpc_url))
        self.address = to_checksum_address(address)
        self.next_block = 0
        self.events: list[Any] = []
        self.seen_s: dict[str, float] = {}
        self.t0 = time.monotonic()

    async def poll(self) -> list[Any]:
        """New events since the last poll, in chain order."""
        latest = await self.w3.eth.block_number
        if latest < self.next_block:
            return []
        logs = await self.w3.eth.get_logs(
            {"address": self.address, "fromBlock": self.next_block, "toBlock": latest}
        )
        now = time.monotonic() - self.t0
        new = []
        for raw in logs:
            try:
                ev = decode_log(raw)
            except UnknownEvent:
                continue
            self.seen_s.setdefault(event_key(ev), now)
            new.append(ev)
        self.events.extend(new)
        self.next_block = latest + 1
        return new

    async def close(self) -> None:
        await self.w3.provider.disconnect()


async def fetch_manifest(ipfs: IpfsStorage, cid: str) -> dict[str, Any]:
    """A round manifest as a plain dict (lenient: extra keys are kept)."""
    doc = json.loads(await ipfs.cat(cid, MAX_MANIFEST_BYTES, IPFS_TIMEOUT_S))
    if not isinstance(doc, dict):
        raise TestnetError(f"manifest {cid} is not a JSON object")
    return doc


def _train_metrics(blob: bytes) -> dict[str, float]:
    try:
        return dict(decode_blob(blob).metadata.train_metrics)
    except ModelsError:
        return {}


async def blob_facts(
    ipfs: IpfsStorage, rounds: Sequence[RoundRecord]
) -> tuple[dict[str, BlobFacts], list[str]]:
    """Fetch every model and update blob a round names; check each against its chain digest.

    Returns the facts per CID and a list of problems (missing blobs, digest mismatches).
    """
    wanted: dict[str, str] = {}
    for r in rounds:
        wanted[r.base_cid] = r.base_digest
        if r.model_cid:
            wanted[r.model_cid] = r.model_digest
        for u in r.updates:
            wanted[u.cid] = u.digest
    facts: dict[str, BlobFacts] = {}
    problems: list[str] = []
    for cid, digest in wanted.items():
        try:
            blob = await ipfs.cat(cid, MAX_BLOB_BYTES, IPFS_TIMEOUT_S)
        except FedchainError as e:
            problems.append(f"{cid}: not retrievable ({e})")
            continue
        got = "0x" + hashlib.sha256(blob).hexdigest()
        if got != digest:
            problems.append(f"{cid}: sha256 {got} differs from the chain's digest {digest}")
        facts[cid] = BlobFacts(len(blob), _train_metrics(blob))
    return facts, problems


ROUND_EVENTS = ("RoundOpened", "UpdateSubmitted", "RoundClosed", "RoundFailed")


async def receipts(
    w3: AsyncWeb3[Any], events: Sequence[Any], parallel: int = 8
) -> tuple[dict[str, tuple[int, int]], list[str]]:
    """(gas used, effective gas price) of every round transaction, and read problems."""
    hashes = sorted({ev.meta.tx_hash for ev in events if type(ev).__name__ in ROUND_EVENTS})
    gate = asyncio.Semaphore(parallel)
    out: dict[str, tuple[int, int]] = {}
    problems: list[str] = []

    async def one(tx: str) -> None:
        async with gate:
            try:
                r = await w3.eth.get_transaction_receipt(tx)  # type: ignore[arg-type]
            except Exception as e:  # a node that pruned it: gas of that round is n/a
                problems.append(f"receipt {tx}: {type(e).__name__}: {e}")
                return
        out[tx] = (int(r["gasUsed"]), int(r.get("effectiveGasPrice", 0)))

    await asyncio.gather(*(one(tx) for tx in hashes))
    return out, problems


async def block_times(
    w3: AsyncWeb3[Any], events: Sequence[Any], parallel: int = 8
) -> dict[str, float]:
    """`event_key` -> timestamp of its block (chain time: what an offline report can know)."""
    blocks = sorted({ev.meta.block_number for ev in events if type(ev).__name__ in ROUND_EVENTS})
    gate = asyncio.Semaphore(parallel)
    stamp: dict[int, float] = {}

    async def one(n: int) -> None:
        async with gate:
            stamp[n] = float((await w3.eth.get_block(n))["timestamp"])

    await asyncio.gather(*(one(n) for n in blocks))
    return {
        event_key(ev): stamp[ev.meta.block_number] for ev in events if ev.meta.block_number in stamp
    }


async def health_docs(urls: Mapping[str, str], timeout_s: float = 1.0) -> dict[str, Any]:
    """Each daemon's /healthz JSON by name; None for one that does not answer in time."""
    import aiohttp

    timeout = aiohttp.ClientTimeout(total=timeout_s)
    async with aiohttp.ClientSession(timeout=timeout) as session:

        async def one(url: str) -> Any:
            try:
                async with session.get(f"{url}/healthz") as reply:
                    return await reply.json()
            except (aiohttp.ClientError, TimeoutError, ValueError):
                return None

        docs = await asyncio.gather(*(one(u) for u in urls.values()))
    return dict(zip(urls, docs, strict=True))
