"""Small helpers for contract tests: chain time, digests, CIDs, a standard round."""

from __future__ import annotations

import hashlib

from web3 import AsyncWeb3

from contracts.events import ContractEvent, decode_logs
from tests.fixtures.anvil import Deployed

CID59 = "bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy"  # a real 59-char CIDv1
assert len(CID59) == 59
BASE_CID = "bafybeigdyrzt5sfp7udm7hu76uh7y26nf3efuylqabf3oclgtqy55fbzdi"
CONFIG_CID = "bafkreiconfigconfigconfigconfigconfigconfigconfigconfigabc"
MODEL_CID = "bafkreimodelmodelmodelmodelmodelmodelmodelmodelmodelmodelab"
MANIFEST_CID = "bafkreimanifestmanifestmanifestmanifestmanifestmanifestmaa"
ZERO = b"\x00" * 32
DURATION_S = 600


def sha(label: str) -> bytes:
    """A distinct 32-byte digest per label."""
    return hashlib.sha256(label.encode()).digest()


async def chain_now(w3: AsyncWeb3) -> int:
    """Timestamp of the latest block (deadlines are judged by block time)."""
    return int((await w3.eth.get_block("latest"))["timestamp"])


async def advance(w3: AsyncWeb3, seconds: int) -> None:
    """Move chain time forward and mine a block so views see the new timestamp."""
    await w3.provider.make_request("evm_increaseTime", [seconds])
    await w3.provider.make_request("evm_mine", [])


async def open_round(
    d: Deployed, min_updates: int = 1, max_updates: int = 3, duration_s: int = DURATION_S
) -> int:
    """Open the next round as the org; returns its deadline."""
    deadline = await chain_now(d.w3) + duration_s
    await d.contract.open_round(
        d.org, BASE_CID, sha("base"), deadline, min_updates, max_updates, CONFIG_CID
    )
    return deadline


async def submit(d: Deployed, client_index: int, round_id: int = 1) -> list[ContractEvent]:
    """Submit a valid update from one of the deployed clients; returns the decoded events."""
    client = d.clients[client_index]
    receipt = await d.contract.submit_update(
        client, round_id, CID59, sha(f"u{round_id}-{client_index}"), 100 + client_index
    )
    return decode_logs(receipt["logs"])


async def set_next_timestamp(w3: AsyncWeb3, timestamp: int) -> None:
    """Pin the next block's timestamp (anvil otherwise follows the wall clock)."""
    await w3.provider.make_request("evm_setNextBlockTimestamp", [timestamp])
