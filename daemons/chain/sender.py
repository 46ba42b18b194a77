"""Sign-once transactions: persist the signed bytes before sending, re-send them after a crash.

The daemon rules (DESIGN.md) make every chain write idempotent: a handler names its intent
with a key (e.g. "closeRound:3"); the first `send` signs a transaction, stores it in the
outbox, and only then broadcasts it. A restart re-broadcasts the very same bytes, so the
chain sees one transaction per intent however often the daemon dies.

Fees: a transaction not mined within `bump_after_s`, or refused by the node as underpriced
(the base fee rose past its max fee), is re-signed with the same nonce and fees raised by
12.5% (and to at least 2 x base fee + tip), up to `max_fee_wei`. The new version is stored
before it is sent and the old hashes are kept: whichever version is mined settles the
intent, and the shared nonce means only one can be.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from eth_account.signers.local import LocalAccount
from eth_account.typed_transactions import TypedTransaction
from hexbytes import HexBytes
from web3.exceptions import Web3RPCError
from web3.types import TxReceipt

from contracts.binding import FederatedRounds
from daemons.chain.backoff import node_call
from daemons.chain.deadtx import DEAD_GRACE_BLOCKS, DEAD_GRACE_S, DeadTxGrace, TxState
from daemons.chain.fees import raised_fees, worth_repricing
from daemons.chain.identity import check_identity, provider_url
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
SLOW_RECEIPT_S = 30.0  # a receipt wait this long gets a WARNING (and again each as long)
FIRST_POLL_S = 0.005  # first receipt poll after a broadcast; doubles up to poll_interval_s
_HARMLESS_SEND_ERRORS = ("already known", "already imported", "known transaction", "nonce too low")
# the node will not take the transaction at its fees (anvil drops one the base fee overtook)
_UNDERPRICED_SEND_ERRORS = (
    "less than block base fee",  # anvil
    "underpriced",  # geth, anvil, Hardhat: "replacement transaction underpriced"
    "fee too low",
    "too low for the next block",  # ganache, Hardhat: "maxFeePerGas (X) is too low for ..."
)
_SIGNATURE_FIELDS = ("v", "r", "s", "yParity")


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
        bump_after_s: float = 60.0,
        max_fee_wei: int = 0,
        dead_grace_blocks: int = DEAD_GRACE_BLOCKS,
        dead_grace_s: float = DEAD_GRACE_S,
    ) -> None:
        self.binding, self.account, self.store = binding, account, store
        self.w3 = binding.w3
        self.url = provider_url(self.w3)
        self.receipt_timeout_s = receipt_timeout_s
        self.poll_interval_s, self.rebroadcast_s = poll_interval_s, rebroadcast_s
        self.bump_after_s = bump_after_s  # 0: raise fees only when the node refuses them
        self.max_fee_wei = max_fee_wei  # 0: no cap
        grace = DeadTxGrace(dead_grace_blocks, dead_grace_s)
        self.state = TxState(self.w3, self.url, account.address, store, grace)
        self._lock = asyncio.Lock()  # not re-entrant: code holding it passes locked=True

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
        async with self._lock:
            return await self._reconcile()

    async def _reconcile(self) -> list[OutboxEntry]:
        """`reconcile` for a caller holding the lock (re-pricing must not take it again)."""
        settled = []
        for entry in self.store.outbox_entries(OUTBOX_PENDING):
            receipt = await self.state.receipt(entry)
            if receipt is not None:
                self.store.outbox_mark(entry.key, OUTBOX_DONE)
            elif await self.state.dead_reason(entry) is not None:
                continue
            else:
                await self._send_or_bump(entry, locked=True)
            settled.append(entry)
        return settled

    async def _sign_and_persist(self, key: str, fn_name: str, args: tuple[Any, ...]) -> OutboxEntry:
        """Build, sign and store the transaction; nothing is sent before it is durable."""
        async with self._lock:
            existing = self.store.outbox_get(key)
            if existing is not None and existing.status != OUTBOX_DEAD:
                return existing  # a concurrent send of the same key won the race
            await self._reconcile()  # unsent older entries must go out before a higher nonce
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
        A receipt late by `rebroadcast_s` (and each as long) makes it check that the node is
        still the chain the state dir was built on: a chain reset under the daemon (a nonce
        gap on the new chain, so never mined) raises `ChainResetError` at once instead of
        waiting `receipt_timeout_s` with the daemon deaf to the reset.
        """
        loop = asyncio.get_running_loop()
        started = loop.time()
        deadline = started + self.receipt_timeout_s
        next_broadcast, wait, next_warning = started, FIRST_POLL_S, started + SLOW_RECEIPT_S
        next_bump, next_identity_check = started + self.bump_after_s, started + self.rebroadcast_s
        while True:
            if self.bump_after_s > 0 and loop.time() >= next_bump:
                why = f"not mined after {self.bump_after_s:g} s"
                entry = await self._bump(entry, why, on_time=True)
                next_bump, next_broadcast = loop.time() + self.bump_after_s, loop.time()
            if loop.time() >= next_broadcast:  # harmless if the node has (or mined) it
                entry = await self._send_or_bump(entry)
                next_broadcast = loop.time() + self.rebroadcast_s
            receipt = await self.state.receipt(entry)
            if receipt is not None:
                self.store.outbox_mark(entry.key, OUTBOX_DONE)
                return receipt
            dead = await self.state.dead_reason(entry)
            if dead is not None:
                raise TxDropped(dead)
            if loop.time() >= deadline:
                break
            if loop.time() >= next_identity_check:  # a reset chain never mines it: say so
                await check_identity(self.w3, self.store, self.binding.address)
                next_identity_check = loop.time() + self.rebroadcast_s
            if loop.time() >= next_warning:
                log.warning(
                    "outbox: %s (tx %s, nonce %d) not mined after %.0f s; still waiting "
                    "(gives up after %.0f s)",
                    entry.key, entry.tx_hash, entry.nonce, loop.time() - started,
                    self.receipt_timeout_s,
                )  # fmt: skip
                next_warning += SLOW_RECEIPT_S
            await asyncio.sleep(wait)
            wait = min(2 * wait, self.poll_interval_s)
        raise TxNotMined(
            f"transaction {entry.tx_hash} ({entry.key}, nonce {entry.nonce}) was not mined "
            f"within {self.receipt_timeout_s:.0f} s at {self.url}; it stays in the outbox and "
            "is re-sent on the next try"
        )

    async def _broadcast(self, entry: OutboxEntry) -> None:
        """Send the stored bytes unless their nonce is spent; a refusal is harmless if the
        node has or mined it.

        Both are read from the chain: the account's nonce is past the entry's (mined, or
        dead, which the receipt and dead checks settle). ganache 7 mines a re-sent mined
        transaction a second time (same hash, a new failed receipt), so a spent nonce is
        never re-sent. Nodes word refusals differently (anvil "nonce too low", ganache
        "the tx doesn't have the correct nonce"); the wording list is only a fast path.
        """
        if await self.state.nonce_used(entry):  # mined (or dead): nothing to send
            return  # ganache would even mine a re-sent mined tx again, as a failed one
        try:
            await node_call(self.url, lambda: self.w3.eth.send_raw_transaction(entry.raw))
        except Web3RPCError as exc:
            if not (_mentions(exc, _HARMLESS_SEND_ERRORS) or await self.state.nonce_used(entry)):
                raise
            log.debug("outbox: node already has %s: %s", entry.tx_hash, exc)

    async def _send_or_bump(self, entry: OutboxEntry, locked: bool = False) -> OutboxEntry:
        """Broadcast; if the node refuses the fees, re-sign higher and broadcast that.

        Refused fees are recognised by the chain's base fee (the entry's max fee is below
        it) or, for what state cannot show (a same-nonce transaction in the pool paying
        more), by the node's wording (anvil, geth, ganache, Hardhat each have their own).
        """
        try:
            await self._broadcast(entry)
            return entry
        except Web3RPCError as exc:
            if not (
                _mentions(exc, _UNDERPRICED_SEND_ERRORS) or await self.state.below_base_fee(entry)
            ):
                raise
            refused = str(exc)
        bumped = await self._bump(entry, f"refused by the node: {refused}", locked=locked)
        if bumped.tx_hash == entry.tx_hash:
            raise TxNotMined(
                f"transaction {entry.tx_hash} ({entry.key}) is refused as underpriced "
                f"({refused}) and its fees cannot rise further (max fee cap "
                f"{self.max_fee_wei} wei); it stays in the outbox and is re-sent on the next try"
            )
        await self._broadcast(bumped)
        return bumped

    async def _bump(
        self, entry: OutboxEntry, why: str, on_time: bool = False, locked: bool = False
    ) -> OutboxEntry:
        """Re-sign `entry` with the same nonce and higher fees and store it (the entry as is
        when the cap leaves no room for a >= 10% rise, when another task bumped it, or, for
        a bump `on_time`, past BLIND_BUMPS while its max fee still covers the base fee)."""
        async with contextlib.nullcontext() if locked else self._lock:
            current = self.store.outbox_get(entry.key)
            if current is None or current.status != OUTBOX_PENDING:
                return entry
            if current.tx_hash != entry.tx_hash:
                return current  # a concurrent send of the same key bumped it already
            fields = dict(TypedTransaction.from_bytes(HexBytes(current.raw)).as_dict())
            if fields.get("type") != 2:
                return current  # only EIP-1559 transactions are re-priced
            block = await node_call(self.url, lambda: self.w3.eth.get_block("latest"))
            base_fee = int(block.get("baseFeePerGas", 0))
            versions = 1 + len(self.store.outbox_superseded(entry.key))
            if on_time and not worth_repricing(fields, base_fee, versions):
                return current
            fees = raised_fees(fields, base_fee, self.max_fee_wei)
            if fees is None:
                log.warning("outbox: %s not re-priced (%s): max fee cap reached", entry.key, why)
                return current
            for name in _SIGNATURE_FIELDS:
                fields.pop(name, None)
            signed = self.account.sign_transaction({**fields, **fees})
            bumped = self.store.outbox_supersede(
                entry.key, bytes(signed.raw_transaction), signed.hash.to_0x_hex()
            )
            log.warning(
                "outbox: %s %s; re-signed as %s (nonce %d) with max fee %d, tip %d wei",
                entry.key,
                why,
                bumped.tx_hash,
                bumped.nonce,
                fees["maxFeePerGas"],
                fees["maxPriorityFeePerGas"],
            )
            return bumped


def _mentions(exc: Exception, phrases: tuple[str, ...]) -> bool:
    """Whether a node's error message contains one of `phrases` (messages vary by client)."""
    message = str(exc).lower()
    return any(phrase in message for phrase in phrases)
