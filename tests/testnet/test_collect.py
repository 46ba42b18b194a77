"""The report's IPFS reader against the real bundled node: multi-chunk blobs, pins, digests."""

import hashlib
import os

import pytest

from daemons.ipfs_node import BundledIpfsNode
from daemons.storage import IpfsStorage
from daemons.testnet.collect import IpfsReader, blob_facts
from daemons.testnet.records import RoundRecord, UpdateRecord
from daemons.testnet.spec import TestnetError


@pytest.mark.timeout(120)
async def test_cat_reads_a_multi_chunk_blob_whole_and_sees_its_pin(
    ipfs_node: BundledIpfsNode,
) -> None:
    blob = os.urandom(1_300_000)  # five 256 KiB chunks: a DAG, not one raw block
    async with IpfsStorage(ipfs_node.api_url) as store:
        stored = await store.put(blob)
    reader = IpfsReader(ipfs_node.api_url, timeout_s=30)
    try:
        assert await reader.cat(stored.cid) == blob
        assert await reader.is_pinned(stored.cid)
        with pytest.raises(TestnetError, match="more than"):
            await reader.cat(stored.cid, max_bytes=1000)
    finally:
        await reader.close()


@pytest.mark.timeout(120)
async def test_blob_facts_flags_a_digest_the_chain_does_not_match(
    ipfs_node: BundledIpfsNode,
) -> None:
    good, bad = os.urandom(300_000), b"x" * 10
    async with IpfsStorage(ipfs_node.api_url) as store:
        g, b = await store.put(good), await store.put(bad)
    digest = "0x" + hashlib.sha256(good).hexdigest()
    wrong = "0x" + "00" * 32
    r = RoundRecord(1, "open", 1, g.cid, digest, (UpdateRecord("0xc", b.cid, wrong, 5),))
    reader = IpfsReader(ipfs_node.api_url, timeout_s=30)
    try:
        facts, problems = await blob_facts(reader, [r])
    finally:
        await reader.close()
    assert facts[g.cid].size == len(good) and facts[b.cid].size == len(bad)
    assert len(problems) == 1 and b.cid in problems[0] and "differs" in problems[0]
