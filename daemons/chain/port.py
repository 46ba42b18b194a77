"""The chain port: the protocol's reads and typed, idempotent transactions.

The real adapter is `Web3Chain` (the contract binding + `TxSender`); handler unit tests plug
in an in-memory fake with the same methods (tests/daemons/fakes.py).
"""

from __future__ import annotations

import hashlib
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from contracts.state import RoundInfo

Receipt = Mapping[str, Any]
"""A mined transaction's receipt (web3's AttributeDict; `status`, `gasUsed`, `blockNumber`...)."""


@dataclass(frozen=True)
class Tx:
    """One idempotent contract call: `key` names the intent, so a re-send after a crash finds
    the transaction stored under it (signed once) instead of sending a second one."""

    key: str
    fn_name: str
    args: tuple[Any, ...]


def open_round_tx(
    round_id: int,
    base_cid: str,
    base_digest: bytes,
    deadline: int,
    min_updates: int,
    max_updates: int,
    config_cid: str,
    afresh: bool = False,
) -> Tx:
    """`openRound` of round `round_id`; `afresh` = a new intent after a refused stale deadline
    (keyed by the new deadline, so the refused one is never re-sent)."""
    key = f"open:{round_id}:{deadline}" if afresh else f"open:{round_id}"
    args = (base_cid, base_digest, deadline, min_updates, max_updates, config_cid)
    return Tx(key, "openRound", args)


def submit_update_tx(round_id: int, cid: str, digest: bytes, num_samples: int) -> Tx:
    return Tx(f"submit:{round_id}", "submitUpdate", (round_id, cid, digest, num_samples))


def close_round_tx(round_id: int, model_cid: str, model_digest: bytes, manifest_cid: str) -> Tx:
    args = (round_id, model_cid, model_digest, manifest_cid)
    return Tx(f"close:{round_id}", "closeRound", args)


def fail_round_tx(round_id: int) -> Tx:
    return Tx(f"fail:{round_id}", "failRound", (round_id,))


def add_clients_tx(clients: Sequence[str]) -> Tx:
    """`addClients`, keyed by the set it adds (the same set re-sent is the same intent)."""
    tag = hashlib.sha256(",".join(clients).encode()).hexdigest()[:12]
    return Tx(f"add_clients:{tag}", "addClients", (list(clients),))


class Chain(ABC):
    """Reads of contract state and the protocol's transactions, each idempotent by its key.

    The typed transactions build their `Tx` (and so their outbox key) with the functions above
    and go through `send(key, fn_name, *args)`; an adapter implements the reads and `send`.
    """

    address: str

    @abstractmethod
    async def current_round_id(self) -> int: ...

    @abstractmethod
    async def get_round(self, round_id: int) -> RoundInfo: ...

    @abstractmethod
    async def is_client(self, client: str) -> bool: ...

    @abstractmethod
    async def has_submitted(self, round_id: int, client: str) -> bool: ...

    @abstractmethod
    async def now_s(self) -> int: ...

    @abstractmethod
    async def send(self, key: str, fn_name: str, *args: Any) -> Any:
        """Send (or, when `key` is stored, re-send) one transaction; its receipt."""

    async def transact(self, tx: Tx) -> Receipt:
        receipt: Receipt = await self.send(tx.key, tx.fn_name, *tx.args)
        return receipt

    async def open_round(
        self,
        round_id: int,
        base_cid: str,
        base_digest: bytes,
        deadline: int,
        min_updates: int,
        max_updates: int,
        config_cid: str,
        afresh: bool = False,
    ) -> Receipt:
        return await self.transact(
            open_round_tx(
                round_id,
                base_cid,
                base_digest,
                deadline,
                min_updates,
                max_updates,
                config_cid,
                afresh,
            )
        )

    async def submit_update(
        self, round_id: int, cid: str, digest: bytes, num_samples: int
    ) -> Receipt:
        return await self.transact(submit_update_tx(round_id, cid, digest, num_samples))

    async def close_round(
        self, round_id: int, model_cid: str, model_digest: bytes, manifest_cid: str
    ) -> Receipt:
        return await self.transact(close_round_tx(round_id, model_cid, model_digest, manifest_cid))

    async def fail_round(self, round_id: int) -> Receipt:
        return await self.transact(fail_round_tx(round_id))

    async def add_clients(self, clients: Sequence[str]) -> Receipt:
        return await self.transact(add_clients_tx(clients))


class Web3Chain(Chain):
    """`Chain` over the FederatedRounds binding and the chain engineer's `TxSender`."""

    def __init__(
        self,
        binding: Any,
        sender: Any,
        address: str,
        on_receipt: Callable[[str, Any], None] | None = None,
    ) -> None:
        self.binding, self.sender, self.address = binding, sender, address
        self.on_receipt = on_receipt  # (fn_name, receipt) of every mined tx: gas metrics

    async def current_round_id(self) -> int:
        return int(await self.binding.current_round_id())

    async def get_round(self, round_id: int) -> RoundInfo:
        info: RoundInfo = await self.binding.get_round(round_id)
        return info

    async def is_client(self, client: str) -> bool:
        return bool(await self.binding.is_client(client))

    async def has_submitted(self, round_id: int, client: str) -> bool:
        return bool(await self.binding.has_submitted(round_id, client))

    async def now_s(self) -> int:
        """The latest block's timestamp: deadlines are judged by chain time, never local time."""
        block = await self.binding.w3.eth.get_block("latest")
        return int(block["timestamp"])

    async def send(self, key: str, fn_name: str, *args: Any) -> Any:
        receipt = await self.sender.send(key, fn_name, *args)
        if self.on_receipt is not None:
            self.on_receipt(fn_name, receipt)
        return receipt
