"""What the chain says about an outbox entry: mined, pending, or dead (its nonce taken).

A node can report an account's new nonce before it serves the receipt of the transaction
that used it (it indexes receipts after it updates state; anvil does so under load). Seeing
"nonce past, no receipt" once is therefore no proof: a transaction is dead only while that
stays true for `grace_blocks` new blocks, checked for every stored hash of the intent.
A chain that makes no blocks (automine with nothing to mine) ends the grace after
`grace_s` seconds without a single block.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Any

from eth_account.typed_transactions import TypedTransaction
from eth_typing import ChecksumAddress
from hexbytes import HexBytes
from web3 import AsyncWeb3
from web3.exceptions import TransactionNotFound
from web3.types import TxReceipt

from daemons.chain.backoff import node_call
from daemons.chain.store import OUTBOX_DEAD, OutboxEntry, StateStore

log = logging.getLogger("daemons.chain.sender")  # its lines read as the outbox's

DEAD_GRACE_BLOCKS = 3
DEAD_GRACE_S = 30.0


@dataclass(frozen=True)
class Suspicion:
    """When an intent was first seen with its nonce used and no receipt: head block, time."""

    head: int
    since_s: float


class DeadTxGrace:
    """Per-intent grace periods: `expired` is True once the suspicion held long enough."""

    def __init__(self, grace_blocks: int = DEAD_GRACE_BLOCKS, grace_s: float = DEAD_GRACE_S):
        if grace_blocks < 1 or grace_s <= 0:
            raise ValueError(
                f"dead-transaction grace needs grace_blocks >= 1 and grace_s > 0, "
                f"got {grace_blocks}, {grace_s}"
            )
        self.grace_blocks, self.grace_s = grace_blocks, grace_s
        self._suspects: dict[str, Suspicion] = {}

    def clear(self, key: str) -> None:
        """The intent is fine (nonce not yet used, or a receipt was found)."""
        self._suspects.pop(key, None)

    def first_seen(self, key: str) -> Suspicion | None:
        """The open suspicion of `key`, if any."""
        return self._suspects.get(key)

    def expired(self, key: str, head: int, now_s: float) -> bool:
        """Record the suspicion (first call) and say whether its grace period is over."""
        first = self._suspects.setdefault(key, Suspicion(head, now_s))
        if head >= first.head + self.grace_blocks:
            return True
        return head == first.head and now_s >= first.since_s + self.grace_s


class TxState:
    """Chain-state reads about one account's outbox entries: receipts of every stored hash,
    the account's nonce, the base fee; and the dead-transaction judgement with its grace."""

    def __init__(
        self,
        w3: AsyncWeb3[Any],
        url: str,
        address: ChecksumAddress,
        store: StateStore,
        grace: DeadTxGrace,
    ) -> None:
        self.w3, self.url, self.address, self.store, self.grace = w3, url, address, store, grace

    async def nonce_used(self, entry: OutboxEntry) -> bool:
        """Whether the account's mined nonce is past the entry's (its nonce is spent)."""
        address = self.address
        mined = await node_call(
            self.url, lambda: self.w3.eth.get_transaction_count(address, "latest")
        )
        return int(mined) > entry.nonce

    async def below_base_fee(self, entry: OutboxEntry) -> bool:
        """Whether the entry's max fee per gas is below the latest block's base fee."""
        fields = dict(TypedTransaction.from_bytes(HexBytes(entry.raw)).as_dict())
        if fields.get("type") != 2:
            return False
        block = await node_call(self.url, lambda: self.w3.eth.get_block("latest"))
        return int(fields["maxFeePerGas"]) < int(block.get("baseFeePerGas", 0))

    async def receipt(self, entry: OutboxEntry) -> TxReceipt | None:
        """The receipt of whichever version of the entry's transaction was mined, if any."""
        for tx_hash in self.hashes(entry):
            try:
                return await node_call(
                    self.url,
                    lambda h=tx_hash: self.w3.eth.get_transaction_receipt(h),  # type: ignore[misc]
                )
            except TransactionNotFound:
                continue
        return None

    def hashes(self, entry: OutboxEntry) -> list[str]:
        """Every stored hash of the entry's intent: the current version and the superseded."""
        current = self.store.outbox_get(entry.key)
        hashes = [entry.tx_hash, *self.store.outbox_superseded(entry.key)]
        if current is not None and current.tx_hash not in hashes:
            hashes.insert(0, current.tx_hash)
        return hashes

    async def known_mined(self, entry: OutboxEntry) -> bool:
        """Whether the node knows one of the intent's transactions as mined (in a block)."""
        for tx_hash in self.hashes(entry):
            try:
                tx = await node_call(
                    self.url,
                    lambda h=tx_hash: self.w3.eth.get_transaction(h),  # type: ignore[misc]
                )
            except TransactionNotFound:
                continue
            if tx.get("blockNumber") is not None:
                return True
        return False

    async def dead_reason(self, entry: OutboxEntry) -> str | None:
        """Why the entry can never be mined (and mark it dead), or None while it still can.

        Dead: the account's mined nonce is past the entry's, and no stored hash of the
        intent has a receipt or a block, for a grace of `dead_grace_blocks` new blocks
        (`dead_grace_s` on a chain that makes none); then every hash is checked once more.
        """
        address = self.address
        mined = await node_call(
            self.url, lambda: self.w3.eth.get_transaction_count(address, "latest")
        )
        if int(mined) <= entry.nonce or await self.settled_on_chain(entry):
            self.grace.clear(entry.key)
            return None
        head = int(await node_call(self.url, lambda: self.w3.eth.block_number))
        first = self.grace.first_seen(entry.key)
        if not self.grace.expired(entry.key, head, asyncio.get_running_loop().time()):
            if first is None:
                log.warning(
                    "outbox: nonce %d of %s is used but no version of %s (%s) has a receipt "
                    "yet at block %d; waiting %d block(s) before calling it dead",
                    entry.nonce, address, entry.key, entry.tx_hash, head,
                    self.grace.grace_blocks,
                )  # fmt: skip
            return None
        if await self.settled_on_chain(entry):  # the grace is over: look once more
            self.grace.clear(entry.key)
            return None
        self.grace.clear(entry.key)
        hashes = ", ".join(self.hashes(entry))
        detail = (
            f"transaction {entry.tx_hash} for {entry.key!r} can never be mined: nonce "
            f"{entry.nonce} of {address} was used by another transaction (no receipt for "
            f"any of its versions {hashes} after {self.grace.grace_blocks} block(s)); "
            "re-read the contract state and send again (a new transaction will be signed)"
        )
        self.store.outbox_mark(entry.key, OUTBOX_DEAD, detail)
        log.error("outbox: %s", detail)
        return detail

    async def settled_on_chain(self, entry: OutboxEntry) -> bool:
        """A receipt, or a block, for one of the intent's stored hashes."""
        return await self.receipt(entry) is not None or await self.known_mined(entry)
