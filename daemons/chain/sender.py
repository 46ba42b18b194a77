"""Sign-once transactions: persist the signed bytes before sending, re-send them after a crash.

The daemon rules (DESIGN.md) make every chain write idempotent: a handler names its intent
with a key (e.g. "closeRound:3"); the first `send` signs a transaction, stores it in the
outbox, and only then broadcasts it. A restart re-broadcasts the very same bytes, so the
chain sees one transaction per intent however often the daemon dies.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from eth_account.signers.local import LocalAccount
from web3.exceptions import TransactionNotFound, Web3RPCError
from web3.types import TxReceipt

from contracts.binding import FederatedRounds
from daemons.chain.backoff import node_call
from daemons.chain.identity import provider_url
from daemons.chain.store import (
    OUTBOX_DEAD,
    OUTBOX_DONE,
    OUTBOX_PENDING,
    OutboxEntry,
    StateStore,
)
from daemons.errors import FedchainError, TransientError

log = logging.getLogger(__name__)

# the node already has (or already mined) this exact transaction: nothing to do
FIRST_POLL_S = 0.005  # first receipt poll after a broadcast; doubles up to poll_interval_s
_HARMLESS_SEND_ERRORS = ("already known", "already imported", "known transaction", "nonce too low")


class TxDropped(FedchainError):
    """A stored transaction can never be mined: another transaction used its nonce."""


class TxNotMined(TransientError):
    """A sent transaction was not mined in time; sending again re-broadcasts the same bytes."""


class TxSender:
    """The outbox: one signed transaction per intent key, re-sent verbatim after a restart."""

    def __init__(
        self,
        binding: FederatedRounds,
        account: LocalAccount,
        store: StateStore,
        receipt_timeout_s: float = 120.0,
        poll_interval_s: float = 0.1,
        rebroadcast_s: float = 5.0,
    ) -> None:
        self.binding, self.account, self.store = binding, account, store
        self.w3 = binding.w3
        self.url = provider_url(self.w3)
        self.receipt_timeout_s = receipt_timeout_s
        self.poll_interval_s, self.rebroadcast_s = poll_interval_s, rebroadcast_s
        self._lock = asyncio.Lock()

    async def send(self, key: str, fn_name: str, *args: Any) -> TxReceipt:
        """Send `fn_name(*args)` once per `key`; reverts raise `ContractRevert` subclasses.

        The caller re-reads contract state before calling (so a completed intent is not
        asked for again); a key already in the outbox re-sends its stored transaction.
        A dead entry (its nonce taken by another transaction) is re-signed with a new nonce.
        """
        entry = self.store.outbox_get(key)
        if entry is not None and entry.status != OUTBOX_DEAD:
            log.info("outbox: re-sending %s (tx %s, nonce %d)", key, entry.tx_hash, entry.nonce)
        entry = await self.prepare(key, fn_name, *args)
        receipt = await self._deliver(entry)
        await self.binding.check_receipt(receipt)
        return receipt

    async def prepare(self, key: str, fn_name: str, *args: Any) -> OutboxEntry:
        """Sign and persist without sending (the existing entry if `key` is known)."""
        entry = self.store.outbox_get(key)
        if entry is None or entry.status == OUTBOX_DEAD:
            entry = await self._sign_and_persist(key, fn_name, args)
        return entry

    async def broadcast(self, entry: OutboxEntry) -> None:
        """Hand a stored transaction to the node without waiting (fault-injection tests)."""
        await self._broadcast(entry)

    async def reconcile(self) -> list[OutboxEntry]:
        """Settle pending entries: mark mined ones done, dead ones dead, re-broadcast the rest."""
        settled = []
        for entry in self.store.outbox_entries(OUTBOX_PENDING):
            receipt = await self._receipt(entry)
            if receipt is not None:
                self.store.outbox_mark(entry.key, OUTBOX_DONE)
            elif await self._dead_reason(entry) is not None:
                continue
            else:
                await self._broadcast(entry)
            settled.append(entry)
        return settled

    async def _sign_and_persist(self, key: str, fn_name: str, args: tuple[Any, ...]) -> OutboxEntry:
        """Build, sign and store the transaction; nothing is sent before it is durable."""
        async with self._lock:
            existing = self.store.outbox_get(key)
            if existing is not None and existing.status != OUTBOX_DEAD:
                return existing  # a concurrent send of the same key won the race
            await self.reconcile()  # unsent older entries must go out before a higher nonce
            nonce = await self._next_nonce()
            tx = await self.binding.build_transaction(fn_name, args, self.account.address, nonce)
            signed = self.account.sign_transaction(tx)
            entry = OutboxEntry(
                key, bytes(signed.raw_transaction), signed.hash.to_0x_hex(), nonce, OUTBOX_PENDING
            )
            self.store.outbox_put(entry)
            log.info("outbox: signed %s %s (tx %s, nonce %d)", key, fn_name, entry.tx_hash, nonce)
            return entry

    async def _next_nonce(self) -> int:
        """The chain's pending nonce, but above every stored still-pending transaction."""
        address = self.account.address
        chain = await node_call(
            self.url, lambda: self.w3.eth.get_transaction_count(address, "pending")
        )
        stored = self.store.max_pending_nonce()
        return max(int(chain), -1 if stored is None else stored + 1)

    async def _deliver(self, entry: OutboxEntry) -> TxReceipt:
        """Broadcast and wait for the receipt, re-broadcasting now and then; mark it done.

        The receipt is asked for right after the broadcast (an automining node has mined the
        transaction by then), then polled with a short wait doubling up to `poll_interval_s`.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.receipt_timeout_s
        next_broadcast, wait = loop.time(), FIRST_POLL_S
        while True:
            if loop.time() >= next_broadcast:  # harmless if the node has (or mined) it
                await self._broadcast(entry)
                next_broadcast = loop.time() + self.rebroadcast_s
            receipt = await self._receipt(entry)
            if receipt is not None:
                self.store.outbox_mark(entry.key, OUTBOX_DONE)
                return receipt
            dead = await self._dead_reason(entry)
            if dead is not None:
                raise TxDropped(dead)
            if loop.time() >= deadline:
                break
            await asyncio.sleep(wait)
            wait = min(2 * wait, self.poll_interval_s)
        raise TxNotMined(
            f"transaction {entry.tx_hash} ({entry.key}, nonce {entry.nonce}) was not mined "
            f"within {self.receipt_timeout_s:.0f} s at {self.url}; it stays in the outbox and "
            "is re-sent on the next try"
        )

    async def _broadcast(self, entry: OutboxEntry) -> None:
        """Send the stored bytes; "already known" / "nonce too low" mean the node has it."""
        try:
            await node_call(self.url, lambda: self.w3.eth.send_raw_transaction(entry.raw))
        except Web3RPCError as exc:
            if not any(s in str(exc).lower() for s in _HARMLESS_SEND_ERRORS):
                raise
            log.debug("outbox: node already has %s: %s", entry.tx_hash, exc)

    async def _receipt(self, entry: OutboxEntry) -> TxReceipt | None:
        try:
            return await node_call(
                self.url,
                lambda: self.w3.eth.get_transaction_receipt(entry.tx_hash),  # type: ignore[arg-type]
            )
        except TransactionNotFound:
            return None

    async def _dead_reason(self, entry: OutboxEntry) -> str | None:
        """Why the entry can never be mined (and mark it dead), or None while it still can."""
        address = self.account.address
        mined = await node_call(
            self.url, lambda: self.w3.eth.get_transaction_count(address, "latest")
        )
        if int(mined) <= entry.nonce or await self._receipt(entry) is not None:
            return None
        detail = (
            f"transaction {entry.tx_hash} for {entry.key!r} can never be mined: nonce "
            f"{entry.nonce} of {address} was used by another transaction; re-read the "
            "contract state and send again (a new transaction will be signed)"
        )
        self.store.outbox_mark(entry.key, OUTBOX_DEAD, detail)
        log.error("outbox: %s", detail)
        return detail
