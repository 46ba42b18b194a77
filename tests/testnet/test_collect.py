"""The report's IPFS reader against the real bundled node: multi-chunk blobs, pins, digests."""

import hashlib
import os

import pytest

from daemons.ipfs.bundled import BundledIpfsNode
from daemons.ipfs.client import ContentRejected, IpfsStorage
from daemons.testnet.collect import blob_facts
from daemons.testnet.records import RoundRecord, UpdateRecord


@pytest.mark.timeout(120)
async def test_cat_reads_a_multi_chunk_blob_whole_and_sees_its_pin(
    ipfs_node: BundledIpfsNode,
) -> None:
    blob = os.urandom(1_300_000)  # five 256 KiB chunks: a DAG, not one raw block
    async with IpfsStorage(ipfs_node.api_url) as store:
        stored = await store.put(blob)
        assert await store.cat(stored.cid, len(blob), timeout_s=30) == blob
        assert await store.is_pinned(stored.cid)
        with pytest.raises(ContentRejected, match="larger than 1000 bytes"):
            await store.cat(stored.cid, 1000, timeout_s=30)


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
        facts, problems = await blob_facts(store, [r])
    assert facts[g.cid].size == len(good) and facts[b.cid].size == len(bad)
    assert len(problems) == 1 and b.cid in problems[0] and "differs" in problems[0]
