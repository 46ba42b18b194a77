"""Durable contract event tailing: chunked backfill, confirmation depth, reorg replay.

The web3.py docs' EventScanner pattern made crash-safe: events are read with bounded
`eth_getLogs` chunks from a cursor kept in SQLite, handed to the handler in chain order,
and each handled event's key is committed together with the cursor, so a restart resumes
exactly (at-least-once, with dedup of completed events). A websocket subscription, if
configured, only wakes the poll loop early; polling is always the source of truth.

A tailer given `event_types` reads only those events (`eth_getLogs` with a topic0 filter) and
its doorbell subscribes to those logs instead of every new block: a client, which acts only on
`RoundOpened`, then no longer wakes (and reads the chain) for each of the N `submitUpdate`
blocks of a round, a cost that grew with N² over the federation.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Iterator, Mapping
from typing import Any

from web3 import AsyncWeb3, WebSocketProvider
from web3.exceptions import BlockNotFound, Web3RPCError

from contracts.events import TOPIC_OF, ContractEvent, UnknownEvent, decode_log, event_key
from daemons.chain.backoff import Backoff, delays, node_call, retry
from daemons.chain.identity import check_identity, provider_url
from daemons.chain.store import Cursor, StateStore
from daemons.errors import FedchainError

DOORBELL_STOP_S = 5.0  # how long a stopping tailer waits for its websocket to close
log = logging.getLogger(__name__)
Handler = Callable[[ContractEvent], Awaitable[None]]
TAIL_BACKOFF = Backoff(attempts=30, base_s=0.2, max_s=10.0)  # about 4 min of node outage
DOORBELL_BACKOFF = Backoff(attempts=None, base_s=0.5, max_s=30.0)


class ReorgTooDeep(FedchainError):
    """A reorg reached below every stored block hash: the window cannot replay it."""


class EventTailer:
    """Hands every contract event to a handler once it is `confirmations` deep, in order."""

    def __init__(
        self,
        w3: AsyncWeb3[Any],
        address: str,
        store: StateStore,
        confirmations: int = 0,
        chunk_blocks: int = 1000,
        poll_interval_s: float = 0.5,
        ws_url: str | None = None,
        start_block: int = 0,
        backoff: Backoff = TAIL_BACKOFF,
        event_types: tuple[type[ContractEvent], ...] | None = None,
    ) -> None:
        if confirmations < 0 or chunk_blocks < 1 or poll_interval_s <= 0 or start_block < 0:
            raise ValueError(
                "EventTailer needs confirmations >= 0, chunk_blocks >= 1, poll_interval_s > 0 "
                f"and start_block >= 0; got {confirmations}, {chunk_blocks}, "
                f"{poll_interval_s}, {start_block}"
            )
        self.w3, self.store = w3, store
        self.address = AsyncWeb3.to_checksum_address(address)
        self.confirmations, self.chunk_blocks = confirmations, chunk_blocks
        self.poll_interval_s, self.ws_url = poll_interval_s, ws_url or None
        self.start_block, self.backoff = start_block, backoff
        # None: every event of the contract; else a topic0 filter (an OR over the types)
        self.topics = None if event_types is None else [[TOPIC_OF[t] for t in event_types]]
        self.url = provider_url(w3)
        self._next_block: int | None = None
        self._bell = asyncio.Event()

    async def run(self, handler: Handler) -> None:
        """Backfill, then follow new blocks forever (until cancelled)."""
        bell = None
        if self.ws_url:
            if self.topics is None:
                bell = asyncio.create_task(ring_on_new_heads(self.ws_url, self._bell))
            else:
                logs = {"address": self.address, "topics": self.topics}
                bell = asyncio.create_task(ring_on_new_heads(self.ws_url, self._bell, logs=logs))
        try:
            while True:
                caught_up = await retry(lambda: self.step(handler), "event tailing", self.backoff)
                if caught_up:
                    await self._wait_for_news()
        finally:
            if bell is not None:
                await stop_doorbell(bell)

    async def sync(self, handler: Handler) -> None:
        """Backfill up to the current safe head, then return (no following)."""
        while not await retry(lambda: self.step(handler), "event tailing", self.backoff):
            pass

    async def _wait_for_news(self) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._bell.wait(), self.poll_interval_s)
        self._bell.clear()

    async def step(self, handler: Handler) -> bool:
        """Handle at most one chunk of new events; True if caught up with the safe head."""
        head = await self._call(lambda: self.w3.eth.block_number)
        safe = int(head) - self.confirmations
        start = await self._resume_block()
        if start > safe:
            return True
        end = min(start + self.chunk_blocks - 1, safe)
        end_hash = await self._block_hash(end)
        query: dict[str, Any] = {"address": self.address, "fromBlock": start, "toBlock": end}
        if self.topics is not None:
            query["topics"] = self.topics
        try:
            logs = await self._call(lambda: self.w3.eth.get_logs(query))  # type: ignore[arg-type]
        except Web3RPCError:
            if await self._chain_shrank_below(end):
                return False
            raise
        if end_hash is None or await self._block_hash(end) != end_hash:
            log.info("chain changed while reading blocks %d-%d; reading again", start, end)
            return False
        await self._handle(handler, _decode(logs))
        self.store.advance(Cursor(end, end_hash))
        self._next_block = end + 1
        return end >= safe

    async def _handle(self, handler: Handler, events: list[ContractEvent]) -> None:
        for event in events:
            key = event_key(event)
            if self.store.is_handled(key):
                continue
            await handler(event)
            self.store.advance(Cursor(event.meta.block_number, event.meta.block_hash), (key,))

    async def _resume_block(self) -> int:
        """First block to read: after a reorg check, the cursor block (again) or the next one."""
        cursor = self.store.cursor()
        if cursor is None:
            self._next_block = None
            return self.start_block
        if await self._block_hash(cursor.block_number) != cursor.block_hash:
            return await self._rewind(cursor)
        if self._next_block is None or self._next_block <= cursor.block_number:
            # after a restart the cursor block may be half handled; its keys dedup
            return cursor.block_number
        return self._next_block

    async def _rewind(self, cursor: Cursor) -> int:
        """Walk back to the newest stored block still on the chain; forget what came after.

        First: is it the same chain at all? A chain reset under a running daemon (new
        genesis, or the contract without code) raises `ChainResetError`, not a reorg.
        """
        await check_identity(self.w3, self.store, self.address)
        for block in self.store.recent_blocks():
            if await self._block_hash(block.block_number) == block.block_hash:
                dropped = self.store.rewind(block)
                log.warning(
                    "chain reorganised below block %d: common ancestor %d, replaying %d "
                    "event(s) from block %d",
                    cursor.block_number,
                    block.block_number,
                    len(dropped),
                    block.block_number + 1,
                )
                self._next_block = block.block_number + 1
                return block.block_number + 1
        raise ReorgTooDeep(
            f"chain reorganised below every stored block (window {self.store.block_window} "
            f"blocks, cursor {cursor.block_number}); raise [chain] confirmations, or remove "
            f"the state dir {self.store.path.parent} to rebuild from the chain"
        )

    async def _chain_shrank_below(self, end: int) -> bool:
        """After a refused `eth_getLogs`: did the head fall below `end` while we read?

        A node reset (or a deep reorg to a shorter chain) between reading the head and
        reading the logs makes the node refuse the range (anvil: "BlockOutOfRangeError: block
        height is 0 but requested was 6"; other nodes word it otherwise). A reset raises
        `ChainResetError` here; a shorter chain of the same genesis is read again.
        """
        head = int(await self._call(lambda: self.w3.eth.block_number))
        if head >= end:
            return False
        await check_identity(self.w3, self.store, self.address)
        log.info("chain head fell to %d while reading up to block %d; reading again", head, end)
        return True

    async def _block_hash(self, number: int) -> str | None:
        """The chain's hash of a block, or None if the chain does not (or no longer) have it."""
        try:
            block = await self._call(lambda: self.w3.eth.get_block(number))
        except BlockNotFound:
            return None
        return _hex(block["hash"])

    async def _call(self, fn: Callable[[], Awaitable[Any]]) -> Any:
        return await node_call(self.url, fn)


async def stop_doorbell(bell: asyncio.Task[None], timeout_s: float = DOORBELL_STOP_S) -> None:
    """Cancel the doorbell and wait for it a bounded time: a websocket that is slow to close
    must not keep a stopping tailer (and a Ctrl-C'd `events --follow`) alive."""
    bell.cancel()
    done, _ = await asyncio.wait({bell}, timeout=timeout_s)
    if not done:
        log.warning("websocket doorbell did not stop within %.0f s; not waiting longer", timeout_s)


async def ring_on_new_heads(
    ws_url: str,
    bell: asyncio.Event,
    backoff: Backoff = DOORBELL_BACKOFF,
    logs: Mapping[str, Any] | None = None,
) -> None:
    """Set `bell` on every new block header from a websocket; reconnect quietly on failure.

    With `logs` (an `eth_subscribe("logs")` filter: address, topics) it rings only on
    matching logs instead of on every block.
    """
    waits: Iterator[float] = iter(())
    while True:
        try:
            async with AsyncWeb3(WebSocketProvider(ws_url)) as ws:
                if logs is None:
                    await ws.eth.subscribe("newHeads")
                else:
                    await ws.eth.subscribe("logs", dict(logs))
                waits = delays(backoff)
                async for _ in ws.socket.process_subscriptions():
                    bell.set()
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a doorbell must never stop the daemon; polling goes on
            delay = next(waits, backoff.base_s)
            log.info(
                "websocket doorbell %s failed (%s); reconnecting in %.1f s", ws_url, exc, delay
            )
            await asyncio.sleep(delay)


def _decode(logs: list[Mapping[str, Any]]) -> list[ContractEvent]:
    """Decode and order logs by (block, log index); foreign logs are skipped with a warning."""
    events = []
    for raw in logs:
        try:
            events.append(decode_log(raw))
        except UnknownEvent as exc:
            log.warning("skipping a log of the contract that does not decode: %s", exc)
    return sorted(events, key=lambda e: (e.meta.block_number, e.meta.log_index))


def _hex(value: Any) -> str:
    if isinstance(value, bytes | bytearray):
        return "0x" + bytes(value).hex()
    return "0x" + str(value).lower().removeprefix("0x")
