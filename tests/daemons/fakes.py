"""In-memory FakeChain / FakeStorage for fast org and client handler unit tests only.

The real adapters are tested against anvil and the IPFS node; these fakes follow the
contract's rules closely enough to exercise handler decisions and idempotency.
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass, replace
from typing import Any

from contracts.errors import AlreadySubmitted, DeadlinePassed, RoundNotOpen
from contracts.state import RoundInfo, RoundStatus
from daemons.chain.port import Chain
from daemons.errors import RejectedUpdate
from daemons.ipfs.client import IpfsTimeout


@dataclass(frozen=True)
class FakeStored:
    cid: str
    digest: bytes
    size: int


class FakeStorage:
    """A dict of blobs keyed by single-block raw CIDv1s (equal bytes give equal CIDs)."""

    def __init__(self) -> None:
        self.blobs: dict[str, bytes] = {}
        self.pinned: list[str] = []
        self.unpinned: list[str] = []
        self.sources: list[str | None] = []  # each get's `source` (who published it)

    async def put(self, data: bytes) -> FakeStored:
        digest = hashlib.sha256(data).digest()
        raw = bytes([0x01, 0x55, 0x12, 0x20]) + digest  # CIDv1, raw, sha2-256
        cid = "b" + base64.b32encode(raw).decode().lower().rstrip("=")
        self.blobs[cid] = data
        return FakeStored(cid, digest, len(data))

    async def get(
        self,
        cid: str,
        digest: bytes | None,
        max_bytes: int,
        timeout_s: float,
        source: str | None = None,
    ) -> bytes:
        self.sources.append(source)
        if cid not in self.blobs:  # nobody provides it: the real adapter times out
            raise IpfsTimeout(f"cat {cid}: no provider within {timeout_s} s")
        data = self.blobs[cid]
        if len(data) > max_bytes:
            raise RejectedUpdate("too_large", f"{len(data)} > {max_bytes}")
        if digest is not None and hashlib.sha256(data).digest() != digest:
            raise RejectedUpdate("digest", "sha256 mismatch")
        return data

    async def pin(self, cid: str, timeout_s: float | None = None) -> None:
        if cid not in self.blobs:
            raise IpfsTimeout(f"pin add {cid}: no provider within {timeout_s} s")
        self.pinned.append(cid)

    async def unpin(self, cid: str) -> None:
        self.unpinned.append(cid)


class FakeChain(Chain):
    """The FederatedRounds rules the handlers rely on, with a settable block time."""

    def __init__(self, address: str, now_s: int = 1000) -> None:
        self.address = address
        self.now = now_s
        self.rounds: dict[int, RoundInfo] = {}
        self.submitted: dict[tuple[int, str], tuple[str, bytes, int]] = {}
        self.clients: set[str] = set()
        self.sent: list[tuple[str, str, tuple[Any, ...]]] = []
        self.outbox: dict[str, Any] = {}

    async def current_round_id(self) -> int:
        return max(self.rounds, default=0)

    async def get_round(self, round_id: int) -> RoundInfo:
        return self.rounds[round_id]

    async def is_client(self, client: str) -> bool:
        return client in self.clients

    async def has_submitted(self, round_id: int, client: str) -> bool:
        return (round_id, client) in self.submitted

    async def now_s(self) -> int:
        return self.now

    async def send(self, key: str, fn_name: str, *args: Any) -> Any:
        if key in self.outbox:  # TxSender: the same key re-sends the same tx, no new effect
            return self.outbox[key]
        getattr(self, "_" + fn_name)(*args)
        self.sent.append((key, fn_name, args))
        self.outbox[key] = {"status": 1}
        return self.outbox[key]

    def start_round(
        self,
        base_cid: str,
        base_digest: bytes,
        deadline: int,
        config_cid: str,
        min_updates: int = 1,
        max_updates: int = 3,
    ) -> int:
        self._openRound(base_cid, base_digest, deadline, min_updates, max_updates, config_cid)
        return max(self.rounds)

    def _openRound(
        self,
        base_cid: str,
        base_digest: bytes,
        deadline: int,
        min_u: int,
        max_u: int,
        config_cid: str,
    ) -> None:
        r = max(self.rounds, default=0) + 1
        self.rounds[r] = RoundInfo(
            r,
            RoundStatus.OPEN,
            deadline,
            min_u,
            max_u,
            0,
            base_digest,
            b"",
            base_cid,
            config_cid,
            "",
            "",
        )

    def submit_as(self, client: str, r: int, cid: str, digest: bytes, num_samples: int) -> None:
        """A client's submitUpdate (the test plays the clients)."""
        me, self.address = self.address, client
        try:
            self._submitUpdate(r, cid, digest, num_samples)
        finally:
            self.address = me

    def _submitUpdate(self, r: int, cid: str, digest: bytes, num_samples: int) -> None:
        info = self.rounds[r]
        if info.status is not RoundStatus.OPEN:
            raise RoundNotOpen("RoundNotOpen", {"roundId": r})
        if self.now > info.deadline:
            raise DeadlinePassed("DeadlinePassed", {"roundId": r})
        if (r, self.address) in self.submitted:
            raise AlreadySubmitted("AlreadySubmitted", {"roundId": r})
        self.submitted[(r, self.address)] = (cid, digest, num_samples)
        self.rounds[r] = replace(info, num_updates=info.num_updates + 1)

    def _closeRound(self, r: int, cid: str, digest: bytes, manifest_cid: str) -> None:
        self.rounds[r] = replace(
            self.rounds[r],
            status=RoundStatus.CLOSED,
            model_cid=cid,
            model_digest=digest,
            manifest_cid=manifest_cid,
        )

    def _failRound(self, r: int) -> None:
        self.rounds[r] = replace(self.rounds[r], status=RoundStatus.FAILED)

    def _addClients(self, clients: list[str]) -> None:
        self.clients.update(clients)


class MemKV:
    """The key/value part of StateStore."""

    def __init__(self) -> None:
        self.data: dict[str, str] = {}

    def get(self, key: str, default: str | None = None) -> str | None:
        return self.data.get(key, default)

    def put(self, key: str, value: str) -> None:
        self.data[key] = value

    def items(self, prefix: str) -> list[tuple[str, str]]:
        return sorted((k, v) for k, v in self.data.items() if k.startswith(prefix))
