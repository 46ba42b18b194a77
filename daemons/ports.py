"""What the org and client daemons need from the chain and from IPFS, as small protocols.

The real implementations are the contract binding + `TxSender` (chain) and `IpfsStorage`;
handler unit tests plug in in-memory fakes with the same methods.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

from contracts.state import RoundInfo


class Chain(Protocol):
    """Reads of contract state and idempotent, keyed transactions."""

    address: str

    async def current_round_id(self) -> int: ...

    async def get_round(self, round_id: int) -> RoundInfo: ...

    async def is_client(self, client: str) -> bool: ...

    async def has_submitted(self, round_id: int, client: str) -> bool: ...

    async def now_s(self) -> int: ...

    async def send(self, key: str, fn_name: str, *args: Any) -> Any: ...


class Stored(Protocol):
    """A blob as put to IPFS."""

    cid: str
    digest: bytes
    size: int


class Storage(Protocol):
    """Content-addressed blob store (IPFS): put pins, get checks digest and size."""

    async def put(self, data: bytes) -> Any: ...

    async def get(self, cid: str, digest: bytes, max_bytes: int, timeout_s: float) -> bytes: ...

    async def pin(self, cid: str, timeout_s: float | None = None) -> None: ...

    async def unpin(self, cid: str) -> None: ...


class Web3Chain:
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

    async def broadcast_only(self, key: str, fn_name: str, *args: Any) -> None:
        """Test fault injection only: sign, persist and broadcast, but never read the receipt."""
        entry = await self.sender.prepare(key, fn_name, *args)
        await self.sender.broadcast(entry)


class BlobCache:
    """Blobs this daemon already fetched and checked, kept on disk by sha256 (crash-safe)."""

    def __init__(self, directory: str | Path) -> None:
        self.dir = Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True)

    def _path(self, digest: bytes) -> Path:
        return self.dir / digest.hex()

    def get(self, digest: bytes) -> bytes | None:
        """The cached blob with this digest, or None (a corrupt file counts as absent)."""
        path = self._path(digest)
        if not path.exists():
            return None
        data = path.read_bytes()
        return data if hashlib.sha256(data).digest() == digest else None

    def has(self, digest: bytes) -> bool:
        """Whether a blob with this digest is stored (not re-checked; `get` checks)."""
        return self._path(digest).exists()

    def put(self, data: bytes) -> bytes:
        """Store `data` atomically (write + rename); returns its digest."""
        digest = hashlib.sha256(data).digest()
        tmp = self._path(digest).with_suffix(".tmp")
        tmp.write_bytes(data)
        os.replace(tmp, self._path(digest))
        return digest

    def drop(self, digest: bytes) -> None:
        """Forget a blob (retention)."""
        self._path(digest).unlink(missing_ok=True)


async def fetch(
    storage: Storage, cache: BlobCache, cid: str, digest: bytes, max_bytes: int, timeout_s: float
) -> bytes:
    """A blob from the cache, else from IPFS (digest and size checked there), then cached."""
    data = cache.get(digest)
    if data is None:
        data = await storage.get(cid, digest, max_bytes, timeout_s)
        cache.put(data)
    return data


def raw_cid_digest(cid: str) -> bytes | None:
    """sha256 of the content of a single-block raw-leaf CIDv1 (base32), else None.

    Small blobs (the round config) are one raw block, so their CID's multihash *is* the
    sha256 of the bytes; that lets a client check them with the same digest-checked `get`.
    """
    if not cid.startswith("b"):
        return None
    text = cid[1:].upper()
    try:
        raw = base64.b32decode(text + "=" * (-len(text) % 8))
    except (ValueError, binascii.Error):
        return None
    # version 1, codec raw (0x55), multihash sha2-256 (0x12), length 32
    if len(raw) != 36 or raw[:4] != bytes([0x01, 0x55, 0x12, 0x20]):
        return None
    return raw[4:]
