"""Helpers shared by the chain adapter tests: make real contract events on anvil."""

from __future__ import annotations

import hashlib
from typing import Any

from web3 import AsyncWeb3

from tests.fixtures.anvil import Deployed


def digest(text: str) -> bytes:
    """A sha256 digest of a label, standing in for a blob's digest."""
    return hashlib.sha256(text.encode()).digest()


async def open_round(d: Deployed, base_cid: str = "bafybase", duration_s: int = 600) -> int:
    """Open the next round (org), returning its id."""
    block = await d.w3.eth.get_block("latest")
    deadline = int(block["timestamp"]) + duration_s
    await d.contract.open_round(d.org, base_cid, digest(base_cid), deadline, 1, 3, "bafyconfig")
    return await d.contract.current_round_id()


async def submit(d: Deployed, client_index: int, round_id: int) -> None:
    """Client `client_index` submits an update to `round_id`."""
    cid = f"bafyupdate{round_id}c{client_index}"
    await d.contract.submit_update(d.clients[client_index], round_id, cid, digest(cid), 10)


async def mine(d: Deployed, blocks: int) -> None:
    """Mine empty blocks (each node kind spells it its own way)."""
    d.anvil.mine(blocks)


async def rpc(w3: AsyncWeb3[Any], method: str, *params: Any) -> Any:
    """A raw JSON-RPC call (evm_snapshot, evm_revert, ...)."""
    reply = await w3.provider.make_request(method, list(params))
    assert "error" not in reply, reply
    return reply["result"]
